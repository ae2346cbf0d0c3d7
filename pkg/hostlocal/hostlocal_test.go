package hostlocal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

func tree(t *testing.T, root string) string {
	t.Helper()
	hs := sha256.New()
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		hs.Write([]byte(p + fi.Mode().String()))
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			hs.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(hs.Sum(nil))
}

func testEnv(t *testing.T, dryRun bool) (*Env, *bytes.Buffer) {
	t.Helper()
	h := staticpod.NewHost(t.TempDir())
	cfgFile := filepath.Join(t.TempDir(), "kubeadm.yaml")
	os.WriteFile(cfgFile, []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.2\n"), 0o600)
	cfg, err := h.LoadConfig(context.Background(), staticpod.ConfigOptions{ConfigFile: cfgFile, NodeName: "cp-1", AdvertiseAddress: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	return &Env{Host: h, Config: cfg, Out: &out, DryRun: dryRun, Timeouts: DefaultTimeouts()}, &out
}

// TestInitDryRunChangesNothing: the plan names every step and file, and the
// host tree is byte-for-byte the same afterwards.
func TestInitDryRunChangesNothing(t *testing.T) {
	e, out := testEnv(t, true)
	before := tree(t, e.Host.Root)
	res, err := e.Init(context.Background())
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if tree(t, e.Host.Root) != before {
		t.Error("init --dry-run changed the host")
	}
	for _, want := range []string{"dry run", "certificates: create etcd-ca", "create etcd-server", "data dir: create /var/lib/etcd", "/etc/kubernetes/manifests/etcd.yaml", "new single-member cluster cp-1=https://127.0.0.1:2380"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	for _, s := range res.Steps {
		if s.Outcome != "planned" {
			t.Errorf("step %s outcome %s", s.Name, s.Outcome)
		}
	}
}

// TestInitRefusesForeignDataDir: a data dir that is not empty and not etcd's
// is refused and left alone.
func TestInitRefusesForeignDataDir(t *testing.T) {
	e, _ := testEnv(t, false)
	dd := e.Host.Path(e.Config.DataDir())
	os.MkdirAll(dd, 0o700)
	os.WriteFile(filepath.Join(dd, "precious"), []byte("x"), 0o600)
	before := tree(t, e.Host.Root)
	_, err := e.Init(context.Background())
	if err == nil || !strings.Contains(err.Error(), "/var/lib/etcd") {
		t.Fatalf("want a refusal naming the data dir, got %v", err)
	}
	if tree(t, e.Host.Root) != before {
		t.Error("a refused init changed the host")
	}
}

// TestJoinWithoutCAExplains: no etcd CA on the host is refused with how to bring it.
func TestJoinWithoutCAExplains(t *testing.T) {
	e, _ := testEnv(t, false)
	before := tree(t, e.Host.Root)
	_, err := e.Join(context.Background(), JoinOptions{Endpoints: []string{"https://127.0.0.1:1"}})
	if err == nil || !strings.Contains(err.Error(), "no etcd CA") || !strings.Contains(err.Error(), "certificate-key") {
		t.Fatalf("got %v", err)
	}
	if tree(t, e.Host.Root) != before {
		t.Error("a refused join changed the host")
	}
}

// TestJoinUnreachableEndpoints: endpoints that do not answer are named.
func TestJoinUnreachableEndpoints(t *testing.T) {
	e, _ := testEnv(t, false)
	if _, err := e.Host.EnsureCerts(e.Config, true); err != nil { // a CA, as a joining host has
		t.Fatal(err)
	}
	e.Timeouts.ClusterCall = 3e9
	before := tree(t, e.Host.Root)
	_, err := e.Join(context.Background(), JoinOptions{Endpoints: []string{"https://127.0.0.1:1", "https://127.0.0.1:2"}})
	if err == nil || !strings.Contains(err.Error(), "no etcd endpoint answered") || !strings.Contains(err.Error(), "127.0.0.1:2") {
		t.Fatalf("got %v", err)
	}
	if tree(t, e.Host.Root) != before {
		t.Error("a failed join changed the host")
	}
}

// TestKeepOwnSettings: a member rebuilt in place keeps its hand-set
// timings (a setting every member must share), from its manifest or the
// one an interrupted stop parked, and not its host-specific flags; without
// a manifest nothing is kept.
func TestKeepOwnSettings(t *testing.T) {
	e, _ := testEnv(t, false)
	if note, err := e.KeepOwnSettings(); err != nil || note != "" {
		t.Fatalf("without a manifest: %q, %v", note, err)
	}
	m, err := staticpod.RenderEtcdManifest(e.Config, nil)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(m), "    - etcd\n", "    - etcd\n    - --heartbeat-interval=250\n    - --log-level=debug\n", 1)
	if edited == string(m) {
		t.Fatal("could not edit the manifest")
	}
	if err := e.Host.WriteEtcdManifest([]byte(edited)); err != nil {
		t.Fatal(err)
	}
	if err := e.Host.StopEtcd(); err != nil { // parked, as an interrupted run leaves it
		t.Fatal(err)
	}
	note, err := e.KeepOwnSettings()
	if err != nil || !strings.Contains(note, "keeps its --heartbeat-interval=250") {
		t.Fatalf("note %q, %v", note, err)
	}
	out, err := staticpod.RenderEtcdManifest(e.Config, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "--heartbeat-interval=250") || strings.Contains(string(out), "--log-level") {
		t.Errorf("the rewritten manifest keeps the wrong flags:\n%s", out)
	}
}

// TestReconfigureLeavesKubeadmsManifest: a manifest that is kubeadm's for
// this configuration (first member or joined, its bootstrap flags read
// back from it) needs no change and the cluster is not even asked; a host
// without a member, or with its manifest parked, is refused and left
// alone.
func TestReconfigureLeavesKubeadmsManifest(t *testing.T) {
	for name, members := range map[string][]staticpod.Member{
		"first member": nil,
		"joined":       {{Name: "cp-0", PeerURL: "https://10.0.0.10:2380"}, {Name: "cp-1", PeerURL: "https://127.0.0.1:2380"}},
	} {
		e, _ := testEnv(t, false)
		m, err := staticpod.RenderEtcdManifest(e.Config, members)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Host.WriteEtcdManifest(m); err != nil {
			t.Fatal(err)
		}
		res, err := e.Reconfigure(context.Background(), ReconfigureOptions{Endpoints: []string{"https://127.0.0.1:1"}})
		if err != nil || len(res.Steps) != 0 || !strings.Contains(strings.Join(res.Notes, " "), "already what kubeadm writes") {
			t.Errorf("%s: %v, steps %v, notes %v", name, err, res.Steps, res.Notes)
		}
		if after, _ := os.ReadFile(e.Host.Path(e.Host.EtcdManifest())); string(after) != string(m) {
			t.Errorf("%s: reconfigure changed a kubeadm manifest", name)
		}
	}

	e, _ := testEnv(t, false)
	if _, err := e.Reconfigure(context.Background(), ReconfigureOptions{}); err == nil || !strings.Contains(err.Error(), "runs no etcd member") {
		t.Errorf("without a member: %v", err)
	}
	m, _ := staticpod.RenderEtcdManifest(e.Config, nil)
	e.Host.WriteEtcdManifest(m)
	if err := e.Host.StopEtcd(); err != nil {
		t.Fatal(err)
	}
	before := tree(t, e.Host.Root)
	if _, err := e.Reconfigure(context.Background(), ReconfigureOptions{}); err == nil || !strings.Contains(err.Error(), "parked by an interrupted run") {
		t.Errorf("parked manifest: %v", err)
	}
	if tree(t, e.Host.Root) != before {
		t.Error("a refused reconfigure changed the host")
	}
}

// TestUpgradeLocalRefusals: a version that is not one, and a cluster that
// does not answer (no member's version to check against), are refused and
// change nothing.
func TestUpgradeLocalRefusals(t *testing.T) {
	e, _ := testEnv(t, false)
	m, _ := staticpod.RenderEtcdManifest(e.Config, nil)
	e.Host.WriteEtcdManifest(m)
	before := tree(t, e.Host.Root)
	for v, want := range map[string]string{
		"3.7":   `etcd version "3.7": want major.minor.patch`,
		"3.7.0": "cannot reach the etcd cluster from cp-1 to read the members' versions",
	} {
		if _, err := e.Upgrade(context.Background(), UpgradeOptions{Version: v, Endpoints: []string{"https://127.0.0.1:1"}}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("upgrade --local --version %s: %v, want %q", v, err, want)
		}
	}
	if tree(t, e.Host.Root) != before {
		t.Error("a refused upgrade changed the host")
	}
}
