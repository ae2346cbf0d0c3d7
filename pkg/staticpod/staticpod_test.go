package staticpod

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	etcdphase "k8s.io/kubernetes/cmd/kubeadm/app/phases/etcd"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pkiutil"
	staticpodutil "k8s.io/kubernetes/cmd/kubeadm/app/util/staticpod"
)

const testClusterConfig = `apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
imageRepository: registry.example.com/k8s
etcd:
  local:
    dataDir: /data/etcd
    serverCertSANs: [etcd.example.com]
    extraArgs:
    - name: quota-backend-bytes
      value: "8589934592"
`

// testHost makes a host root in a temp dir and a config for it, as a
// control-plane host (with an apiserver manifest) at 127.0.0.1.
func testHost(t *testing.T, withAPIServer bool) (*Host, *Config) {
	t.Helper()
	root := t.TempDir()
	h := NewHost(root)
	h.Now = func() time.Time { return time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) }
	if withAPIServer {
		os.MkdirAll(h.Path(h.ManifestDir()), 0o700)
		os.WriteFile(h.Path(h.APIServerManifest()), []byte(apiserverManifest), 0o600)
	}
	cfgFile := filepath.Join(t.TempDir(), "kubeadm.yaml")
	os.WriteFile(cfgFile, []byte(testClusterConfig), 0o600)
	cfg, err := h.LoadConfig(context.Background(), ConfigOptions{ConfigFile: cfgFile, NodeName: "cp-1", AdvertiseAddress: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return h, cfg
}

const apiserverManifest = `apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: 127.0.0.1:6443
  labels:
    component: kube-apiserver
    tier: control-plane
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address=127.0.0.1
    - --etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt
    - --etcd-servers=https://127.0.0.1:2379
    - --secure-port=6443
    image: registry.k8s.io/kube-apiserver:v1.37.2
    name: kube-apiserver
  hostNetwork: true
`

func TestManifestIsKubeadms(t *testing.T) {
	_, cfg := testHost(t, false)
	for name, members := range map[string][]Member{
		"new":  nil,
		"join": {{Name: "cp-0", PeerURL: "https://10.0.0.10:2380"}, {Name: "cp-1", PeerURL: cfg.PeerURL()}},
	} {
		t.Run(name, func(t *testing.T) {
			ours, err := RenderEtcdManifest(cfg, members)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			pod := etcdphase.GetEtcdPodSpec(&cfg.Init.ClusterConfiguration, &cfg.Init.LocalAPIEndpoint, cfg.NodeName(), members)
			if err := staticpodutil.WriteStaticPodToDisk("etcd", dir, pod); err != nil {
				t.Fatal(err)
			}
			theirs, _ := os.ReadFile(filepath.Join(dir, "etcd.yaml"))
			if string(ours) != string(theirs) {
				t.Errorf("manifest differs from kubeadm's:\n--- ours\n%s\n--- kubeadm\n%s", ours, theirs)
			}
			s := string(ours)
			for _, want := range []string{"--data-dir=/data/etcd", "--quota-backend-bytes=8589934592", "image: registry.example.com/k8s/etcd:", "path: /data/etcd"} {
				if !strings.Contains(s, want) {
					t.Errorf("user setting %q lost", want)
				}
			}
			if hasState := strings.Contains(s, "--initial-cluster-state=existing"); hasState != (members != nil) {
				t.Errorf("initial-cluster-state=existing present=%v for %s", hasState, name)
			}
		})
	}
}

func TestManifestWriteAtomicAndRealPaths(t *testing.T) {
	h, cfg := testHost(t, false)
	m, _ := RenderEtcdManifest(cfg, nil)
	if err := h.WriteEtcdManifest(m); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(h.Path(h.EtcdManifest()))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("manifest mode %v (%v), want 0600", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(h.Path(h.ManifestDir()))
	if len(ents) != 1 {
		t.Errorf("manifests dir has leftovers: %v", ents)
	}
	if strings.Contains(string(m), h.Root) {
		t.Errorf("manifest names this process's root %s instead of host paths", h.Root)
	}
}

func TestCertsLikeKubeadm(t *testing.T) {
	h, cfg := testHost(t, true)
	actions, err := h.EnsureCerts(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range actions {
		got[a.Name] = a.Action
	}
	for _, n := range []string{"etcd-ca", "etcd-server", "etcd-peer", "etcd-healthcheck-client", "apiserver-etcd-client"} {
		if got[n] != "create" {
			t.Errorf("%s: %q, want create (all: %v)", n, got[n], got)
		}
	}
	pki := h.Path(cfg.CertDir())
	ca, err := pkiutil.TryLoadCertFromDisk(pki, "etcd/ca")
	if err != nil || !ca.IsCA || ca.Subject.CommonName != "etcd-ca" {
		t.Fatalf("etcd CA: %v %+v", err, ca)
	}
	check := func(base, cn string, eku []x509.ExtKeyUsage, dns []string, ips []string) {
		t.Helper()
		c, err := pkiutil.TryLoadCertFromDisk(pki, base)
		if err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		if c.Subject.CommonName != cn {
			t.Errorf("%s CN %q, want %q", base, c.Subject.CommonName, cn)
		}
		if err := c.CheckSignatureFrom(ca); err != nil {
			t.Errorf("%s not signed by the etcd CA", base)
		}
		if len(c.ExtKeyUsage) != len(eku) {
			t.Errorf("%s ext key usage %v, want %v", base, c.ExtKeyUsage, eku)
		}
		if c.KeyUsage&x509.KeyUsageDigitalSignature == 0 || c.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
			t.Errorf("%s key usage %v", base, c.KeyUsage)
		}
		if v := c.NotAfter.Sub(c.NotBefore); v < 365*24*time.Hour || v > 366*24*time.Hour {
			t.Errorf("%s validity %s, want kubeadm's 1 year", base, v)
		}
		gotDNS := append([]string{}, c.DNSNames...)
		sort.Strings(gotDNS)
		sort.Strings(dns)
		if strings.Join(gotDNS, ",") != strings.Join(dns, ",") {
			t.Errorf("%s DNS SANs %v, want %v", base, gotDNS, dns)
		}
		for _, ip := range ips {
			found := false
			for _, x := range c.IPAddresses {
				found = found || x.Equal(net.ParseIP(ip))
			}
			if !found {
				t.Errorf("%s lacks IP SAN %s (has %v)", base, ip, c.IPAddresses)
			}
		}
		for _, f := range []string{base + ".key", base + ".crt"} {
			fi, err := os.Stat(filepath.Join(pki, f))
			want := os.FileMode(0o644)
			if strings.HasSuffix(f, ".key") {
				want = 0o600
			}
			if err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s mode %v, want %v", f, fi.Mode().Perm(), want)
			}
		}
	}
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	check("etcd/server", "cp-1", both, []string{"cp-1", "localhost", "etcd.example.com"}, []string{"127.0.0.1", "::1"})
	check("etcd/peer", "cp-1", both, []string{"cp-1", "localhost"}, []string{"127.0.0.1", "::1"})
	check("etcd/healthcheck-client", "kube-etcd-healthcheck-client", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, nil)
	check("apiserver-etcd-client", "kube-apiserver-etcd-client", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, nil)

	// Running again keeps everything, byte for byte.
	before := treeHash(t, h.Root)
	again, err := h.EnsureCerts(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range again {
		if a.Action != "keep" {
			t.Errorf("second run: %s %s (%s)", a.Action, a.Name, a.Reason)
		}
	}
	if treeHash(t, h.Root) != before {
		t.Error("second run changed files")
	}
}

func TestCertReissuedWhenSANMissingOldKept(t *testing.T) {
	h, cfg := testHost(t, false)
	if _, err := h.EnsureCerts(cfg, true); err != nil {
		t.Fatal(err)
	}
	caBefore, _ := os.ReadFile(h.Path(cfg.CertDir() + "/etcd/ca.crt"))
	cfg.Init.Etcd.Local.ServerCertSANs = append(cfg.Init.Etcd.Local.ServerCertSANs, "new.example.com")
	plan, err := h.PlanCerts(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	var server CertAction
	for _, a := range plan {
		if a.Name == "etcd-server" {
			server = a
		}
	}
	if server.Action != "reissue" || !strings.Contains(server.Reason, "new.example.com") {
		t.Fatalf("plan for etcd-server: %+v", server)
	}
	done, err := h.EnsureCerts(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range done {
		if a.Name == "etcd-server" {
			server = a
		}
	}
	if server.MovedTo == "" {
		t.Fatal("old certificate not reported as moved aside")
	}
	if _, err := os.Stat(h.Path(server.MovedTo)); err != nil {
		t.Errorf("old certificate not kept at %s: %v", server.MovedTo, err)
	}
	c, _ := pkiutil.TryLoadCertFromDisk(h.Path(cfg.CertDir()), "etcd/server")
	if !strings.Contains(strings.Join(c.DNSNames, ","), "new.example.com") {
		t.Errorf("reissued cert lacks the new SAN: %v", c.DNSNames)
	}
	caAfter, _ := os.ReadFile(h.Path(cfg.CertDir() + "/etcd/ca.crt"))
	if string(caBefore) != string(caAfter) {
		t.Error("the etcd CA was overwritten")
	}
}

func TestNoCAForJoinChangesNothing(t *testing.T) {
	h, cfg := testHost(t, true)
	before := treeHash(t, h.Root)
	_, err := h.EnsureCerts(cfg, false)
	if !errors.Is(err, ErrNoEtcdCA) || !strings.Contains(err.Error(), "kubectl etcd scale") || !strings.Contains(err.Error(), "etcd/ca.crt") {
		t.Fatalf("want a missing-CA error saying how to bring it, got %v", err)
	}
	if treeHash(t, h.Root) != before {
		t.Error("a refused cert run changed files")
	}
}

func TestPlanChangesNothing(t *testing.T) {
	h, cfg := testHost(t, true)
	before := treeHash(t, h.Root)
	if _, err := h.PlanCerts(cfg, true); err != nil {
		t.Fatal(err)
	}
	if treeHash(t, h.Root) != before {
		t.Error("PlanCerts changed files")
	}
}

func TestSetAPIServerEtcdServersEditsOnlyThatFlag(t *testing.T) {
	h, _ := testHost(t, true)
	changed, err := h.SetAPIServerEtcdServers([]string{"https://10.0.0.12:2379", "https://10.0.0.13:2379"})
	if err != nil || !changed {
		t.Fatalf("changed=%v err=%v", changed, err)
	}
	got, _ := os.ReadFile(h.Path(h.APIServerManifest()))
	want := strings.Replace(apiserverManifest, "--etcd-servers=https://127.0.0.1:2379", "--etcd-servers=https://10.0.0.12:2379,https://10.0.0.13:2379", 1)
	if string(got) != want {
		t.Errorf("manifest:\n%s\nwant:\n%s", got, want)
	}
	servers, _ := h.APIServerEtcdServers()
	if len(servers) != 2 {
		t.Errorf("servers %v", servers)
	}
	if changed, _ := h.SetAPIServerEtcdServers(servers); changed {
		t.Error("setting the same servers reported a change")
	}
}

func TestBadInputsAreRefused(t *testing.T) {
	h, _ := testHost(t, true)
	ctx := context.Background()
	if _, err := h.LoadConfig(ctx, ConfigOptions{AdvertiseAddress: "192.0.2.77", NodeName: "cp-1"}); err == nil || !strings.Contains(err.Error(), "does not belong to this host") {
		t.Errorf("foreign address: %v", err)
	}
	if _, err := h.LoadConfig(ctx, ConfigOptions{AdvertiseAddress: "not-an-ip", NodeName: "cp-1"}); err == nil || !strings.Contains(err.Error(), "not an IP") {
		t.Errorf("bad address: %v", err)
	}
	os.WriteFile(h.Path(h.EtcdManifest()), []byte("apiVersion: v1\nkind: Pod\nspec: [this is: not a pod"), 0o600)
	if _, err := h.LoadConfig(ctx, ConfigOptions{NodeName: "cp-1", AdvertiseAddress: "127.0.0.1"}); err == nil || !strings.Contains(err.Error(), "cannot be parsed") {
		t.Errorf("unparseable manifest: %v", err)
	}
	if _, err := ParseClusterConfiguration([]byte("kind: InitConfiguration\n")); err == nil {
		t.Error("config without ClusterConfiguration accepted")
	}
}

func TestConfigFromManifests(t *testing.T) {
	h, _ := testHost(t, true)
	cfg, err := h.LoadConfig(context.Background(), ConfigOptions{NodeName: "cp-1", LookupTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdvertiseAddress() != "127.0.0.1" || cfg.Init.KubernetesVersion != "v1.37.2" || cfg.Init.ImageRepository != "registry.k8s.io" {
		t.Errorf("inferred %s %s %s from %s", cfg.AdvertiseAddress(), cfg.Init.KubernetesVersion, cfg.Init.ImageRepository, cfg.Source)
	}
	if !strings.Contains(cfg.Source, "manifests") {
		t.Errorf("source %q", cfg.Source)
	}
}

// treeHash fingerprints every file, mode and symlink under root.
func treeHash(t *testing.T, root string) string {
	t.Helper()
	hs := sha256.New()
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		hs.Write([]byte(rel + fi.Mode().String()))
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			hs.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(hs.Sum(nil))
}

func TestSignClientCSR(t *testing.T) {
	h, cfg := testHost(t, false)
	if _, err := h.EnsureCerts(cfg, true); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:masters-wannabe"}}, key)
	before := treeHash(t, h.Root)
	signed, err := h.SignClientCSR(cfg, csr, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if treeHash(t, h.Root) != before {
		t.Error("signing wrote to the host")
	}
	blk, _ := pem.Decode([]byte(signed.CertificatePEM))
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := pkiutil.TryLoadCertFromDisk(h.Path(cfg.CertDir()), "etcd/ca")
	if err := c.CheckSignatureFrom(ca); err != nil {
		t.Error("not signed by the etcd CA")
	}
	if c.Subject.CommonName != "kubectl-etcd" || len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("subject %q usages %v: the request's subject must be ignored", c.Subject.CommonName, c.ExtKeyUsage)
	}
	if time.Until(c.NotAfter) > time.Hour+time.Minute {
		t.Errorf("validity until %s, want about an hour", c.NotAfter)
	}
	if !c.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Error("certificate is not for the requester's key")
	}
	if _, err := h.SignClientCSR(cfg, []byte("garbage"), time.Hour); err == nil {
		t.Error("garbage request signed")
	}
	if _, err := h.SignClientCSR(cfg, csr, 48*time.Hour); err == nil {
		t.Error("a two-day certificate was signed")
	}
}

func TestWaitEtcdContainerStarted(t *testing.T) {
	h, cfg := testHost(t, true)
	dir := h.Path(filepath.Join(PodLogsDir, "kube-system_etcd-cp-1_0123abcd", "etcd"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "0.log")
	os.WriteFile(old, []byte("the stale member's last words\n"), 0o640)
	os.Chtimes(old, time.Now().Add(-time.Minute), time.Now().Add(-time.Minute))
	since := time.Now()

	// Only an older container's log: kubelet has not acted yet.
	err := h.WaitEtcdContainerStarted(context.Background(), cfg, since, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "kubelet on cp-1 started no etcd container within 300ms") {
		t.Fatalf("err = %v, want a timeout naming the host", err)
	}
	// Another pod's log does not count.
	other := h.Path(filepath.Join(PodLogsDir, "kube-system_kube-apiserver-cp-1_99", "kube-apiserver"))
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "0.log"), []byte("x\n"), 0o640)
	if err := h.WaitEtcdContainerStarted(context.Background(), cfg, since, 300*time.Millisecond); err == nil {
		t.Fatal("the apiserver's log was taken for etcd's")
	}
	// A new etcd container (a new pod UID, as a changed manifest makes) writes its first line.
	go func() {
		time.Sleep(200 * time.Millisecond)
		d := h.Path(filepath.Join(PodLogsDir, "kube-system_etcd-cp-1_4567ef", "etcd"))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "0.log"), []byte("starting etcd\n"), 0o640)
	}()
	if err := h.WaitEtcdContainerStarted(context.Background(), cfg, since, 5*time.Second); err != nil {
		t.Fatalf("a new etcd container's log was not seen: %v", err)
	}
}

func TestHostPathOfInvertsPath(t *testing.T) {
	for _, c := range []struct{ root, hostPath string }{
		{"/host", "/var/lib/etcd.before-recover-x"},
		{"/host/", "/etc/kubernetes/manifests/etcd.yaml"},
		{"/", "/var/lib/etcd"},
		{"/tmp/r", "/"},
	} {
		h := NewHost(c.root)
		if got := h.HostPathOf(h.Path(c.hostPath)); got != c.hostPath {
			t.Errorf("root %s: HostPathOf(Path(%s)) = %s", c.root, c.hostPath, got)
		}
	}
}

// Without the cluster's ClusterConfiguration (its apiserver down), the
// member's manifest is the only record of its etcd settings: a manifest
// rendered then keeps the flags kubeadm would not write by default (the
// cluster's extraArgs, hand edits), and not the host-derived ones.
func TestConfigFromManifestsKeepsEtcdFlags(t *testing.T) {
	h, withFile := testHost(t, true)
	manifest, err := RenderEtcdManifest(withFile, []Member{{Name: "cp-0", PeerURL: "https://127.0.0.2:2380"}, {Name: "cp-1", PeerURL: withFile.PeerURL()}})
	if err != nil {
		t.Fatal(err)
	}
	// The cluster's extraArgs (its quota) are in the rendering already;
	// a timing is added and a default changed by hand.
	edited := strings.Replace(string(manifest), "    - --snapshot-count=10000\n",
		"    - --snapshot-count=5000\n    - --heartbeat-interval=250\n", 1)
	if edited == string(manifest) || !strings.Contains(edited, "--quota-backend-bytes=8589934592") {
		t.Fatalf("the rendering has no --snapshot-count line to edit, or no quota:\n%s", manifest)
	}
	if err := h.WriteEtcdManifest([]byte(edited)); err != nil {
		t.Fatal(err)
	}
	cfg, err := h.LoadConfig(context.Background(), ConfigOptions{NodeName: "cp-1", LookupTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, a := range cfg.Init.Etcd.Local.ExtraArgs {
		kept = append(kept, a.Name+"="+a.Value)
	}
	if got, want := strings.Join(kept, " "), "heartbeat-interval=250 quota-backend-bytes=8589934592 snapshot-count=5000"; got != want {
		t.Errorf("kept %q, want %q (not the host's name, URLs, paths or bootstrap flags)", got, want)
	}
	if !strings.Contains(cfg.Source, "etcd's own flags kept from its manifest: --heartbeat-interval=250 --quota-backend-bytes=8589934592 --snapshot-count=5000") {
		t.Errorf("source %q does not say what it kept", cfg.Source)
	}
	again, err := RenderEtcdManifest(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--quota-backend-bytes=8589934592", "--heartbeat-interval=250", "--snapshot-count=5000", "--name=cp-1"} {
		if !strings.Contains(string(again), want) {
			t.Errorf("the re-rendered manifest lacks %s:\n%s", want, again)
		}
	}
	if strings.Contains(string(again), "--snapshot-count=10000") || strings.Contains(string(again), "initial-cluster-state") {
		t.Errorf("the re-rendered manifest keeps a default it should override, or the old bootstrap:\n%s", again)
	}
}

// TestEtcdArgs: --etcd-arg values go on top of etcd.local.extraArgs (one
// given there too takes the new value) and the plan's source says so; the
// flags kubeadm derives from the host are refused.
func TestEtcdArgs(t *testing.T) {
	_, cfg := testHost(t, false)
	args, err := ParseEtcdArgs([]string{"heartbeat-interval=250", "--quota-backend-bytes=2147483648"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetEtcdArgs(args, "what the other members run")
	m, err := RenderEtcdManifest(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := string(m)
	if !strings.Contains(s, "--heartbeat-interval=250") || !strings.Contains(s, "--quota-backend-bytes=2147483648") || strings.Contains(s, "--quota-backend-bytes=8589934592") {
		t.Errorf("manifest does not run the given flags in place of the config's:\n%s", s)
	}
	if !strings.Contains(cfg.Source, "with --heartbeat-interval=250 --quota-backend-bytes=2147483648 (what the other members run)") {
		t.Errorf("source %q does not say what it adds", cfg.Source)
	}
	for v, want := range map[string]string{
		"heartbeat-interval":  "want NAME=VALUE",
		"=250":                "want NAME=VALUE",
		"data-dir=/tmp/x":     "kubeadm sets --data-dir for the host itself",
		"--name=other-member": "kubeadm sets --name for the host itself",
	} {
		if _, err := ParseEtcdArgs([]string{v}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--etcd-arg %q: %v, want %q", v, err, want)
		}
	}
}

// TestHandedClusterConfig: the ClusterConfiguration the plugin hands over
// is the one used (no admin.conf needed), and the plan's source says so.
func TestHandedClusterConfig(t *testing.T) {
	h := NewHost(t.TempDir())
	cfg, err := h.LoadConfig(context.Background(), ConfigOptions{ClusterConfigYAML: []byte(testClusterConfig), NodeName: "cp-1", AdvertiseAddress: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source != "ConfigMap kube-system/kubeadm-config (as the plugin read it)" || cfg.DataDir() != "/data/etcd" {
		t.Errorf("source %q, data dir %s: want the handed configuration's", cfg.Source, cfg.DataDir())
	}
	if _, err := h.LoadConfig(context.Background(), ConfigOptions{ClusterConfigYAML: []byte("kind: ClusterConfiguration\nnope: ["), NodeName: "cp-1", AdvertiseAddress: "127.0.0.1"}); err == nil || !strings.Contains(err.Error(), "ConfigMap kube-system/kubeadm-config") {
		t.Errorf("an unparsable handed configuration: %v", err)
	}
}

// TestPatches: the etcd patches of the host's kubeadm patches directory go
// into every etcd manifest written, as kubeadm applies them; a directory
// with no etcd patch is not used, and a --patches directory that is not
// there is refused.
func TestPatches(t *testing.T) {
	h := NewHost(t.TempDir())
	load := func(dir string) (*Config, error) {
		return h.LoadConfig(context.Background(), ConfigOptions{ClusterConfigYAML: []byte(testClusterConfig), NodeName: "cp-1", AdvertiseAddress: "127.0.0.1", PatchesDir: dir})
	}
	pd := h.Path(DefaultPatchesDir)
	if err := os.MkdirAll(pd, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(pd, "kube-apiserver+strategic.yaml"), []byte("metadata:\n  annotations:\n    a: b\n"), 0o600)
	cfg, err := load("")
	if err != nil || cfg.Patches != "" {
		t.Fatalf("a patches dir without an etcd patch: %v, patches %q", err, cfg.Patches)
	}
	os.WriteFile(filepath.Join(pd, "etcd+strategic.yaml"), []byte("spec:\n  containers:\n  - name: etcd\n    resources:\n      requests:\n        memory: 512Mi\n"), 0o600)
	cfg, err = load("")
	if err != nil || cfg.Patches != DefaultPatchesDir || !strings.Contains(cfg.Source, "; kubeadm patches from /etc/kubernetes/patches") {
		t.Fatalf("patches %q, source %q, %v", cfg.Patches, cfg.Source, err)
	}
	m, err := RenderEtcdManifest(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(m), "memory: 512Mi") || strings.Contains(string(m), "memory: 100Mi") {
		t.Errorf("the etcd patch is not in the manifest:\n%s", m)
	}
	if _, err := load("/etc/kubernetes/no-such-patches"); err == nil || !strings.Contains(err.Error(), "--patches /etc/kubernetes/no-such-patches: not a directory on this host") {
		t.Errorf("a missing --patches dir: %v", err)
	}
}
