package testbed

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/ociimage"
	"sigs.k8s.io/yaml"
)

func TestRenderKubeadmInit(t *testing.T) {
	b := &Bed{State: State{Name: "t", Subnet: "10.9.9", Token: "abcdef.0123456789abcdef", CertificateKey: "ck", KubernetesVersion: "v1.37.2"}}
	h := &Host{HostConfig: HostConfig{Name: "h1", Address: "10.9.9.11", Role: RoleInit}, bed: b}
	out, err := renderKubeadm("init", b.params(h))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(out), "\n---\n")
	if len(docs) != 3 {
		t.Fatalf("want 3 documents (Init, Cluster, Kubelet), got %d:\n%s", len(docs), out)
	}
	var initCfg, clusterCfg, kubeletCfg map[string]any
	for i, d := range []*map[string]any{&initCfg, &clusterCfg, &kubeletCfg} {
		if err := yaml.Unmarshal([]byte(docs[i]), d); err != nil {
			t.Fatalf("document %d is not YAML: %v\n%s", i, err, docs[i])
		}
	}
	if got := initCfg["localAPIEndpoint"].(map[string]any)["advertiseAddress"]; got != "10.9.9.11" {
		t.Errorf("advertiseAddress = %v", got)
	}
	nr := initCfg["nodeRegistration"].(map[string]any)
	if nr["name"] != "h1" || nr["imagePullPolicy"] != "Never" {
		t.Errorf("nodeRegistration = %v", nr)
	}
	if clusterCfg["controlPlaneEndpoint"] != "10.9.9.1:6443" || clusterCfg["kubernetesVersion"] != "v1.37.2" {
		t.Errorf("cluster config = %v", clusterCfg)
	}
	if kubeletCfg["cgroupDriver"] != "cgroupfs" || kubeletCfg["failCgroupV1"] != false || kubeletCfg["oomScoreAdj"] != float64(0) {
		t.Errorf("kubelet config = %v", kubeletCfg)
	}
	if _, has := clusterCfg["etcd"]; has {
		t.Errorf("etcd section without EtcdExtraArgs: %v", clusterCfg["etcd"])
	}

	// EtcdExtraArgs land in etcd.local.extraArgs, kubeadm v1beta4's list form.
	b.EtcdExtraArgs = map[string]string{"quota-backend-bytes": "67108864", "snapshot-count": "5000"}
	out, err = renderKubeadm("init", b.params(h))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(strings.Split(string(out), "\n---\n")[1]), &clusterCfg); err != nil {
		t.Fatal(err)
	}
	args, _ := clusterCfg["etcd"].(map[string]any)["local"].(map[string]any)["extraArgs"].([]any)
	want := []any{map[string]any{"name": "quota-backend-bytes", "value": "67108864"}, map[string]any{"name": "snapshot-count", "value": "5000"}}
	if len(args) != 2 || fmt.Sprint(args) != fmt.Sprint(want) {
		t.Errorf("etcd.local.extraArgs = %v, want %v", args, want)
	}
}

func TestRenderKubeadmJoin(t *testing.T) {
	b := &Bed{State: State{Name: "t", Subnet: "10.9.9", Token: "abcdef.0123456789abcdef", CertificateKey: "ck"}}
	for _, cp := range []bool{false, true} {
		p := b.params(&Host{HostConfig: HostConfig{Name: "h2", Address: "10.9.9.12"}, bed: b})
		p.ControlPlane, p.CACertHash = cp, "sha256:00"
		out, err := renderKubeadm("join", p)
		if err != nil {
			t.Fatal(err)
		}
		var j map[string]any
		if err := yaml.Unmarshal(out, &j); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if _, has := j["controlPlane"]; has != cp {
			t.Errorf("controlPlane section present=%v, want %v:\n%s", has, cp, out)
		}
		bt := j["discovery"].(map[string]any)["bootstrapToken"].(map[string]any)
		if bt["apiServerEndpoint"] != "10.9.9.1:6443" {
			t.Errorf("join goes to %v, want the bed's load balancer", bt["apiServerEndpoint"])
		}
	}
}

func TestCheckSubnetFree(t *testing.T) {
	err := checkSubnetFree("127.0.0")
	if err == nil || !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), "--subnet") {
		t.Errorf("loopback's range must be refused with a hint, got %v", err)
	}
	if err := checkSubnetFree("10.99.250"); err != nil {
		t.Errorf("unused range refused: %v", err)
	}
	if err := checkSubnetFree("10.99"); err == nil {
		t.Error("malformed subnet accepted")
	}
}

func TestBuildImage(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "hello")
	if err := os.WriteFile(bin, []byte("#!hello"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := ImageSpec{Ref: "registry.k8s.io/etcd:3.7.0-0",
		Files:      []ImageFile{{Src: bin, Dst: "/usr/local/bin/hello", Mode: 0o755}},
		Symlinks:   map[string]string{"/bin/sh": "busybox"},
		Entrypoint: []string{"/usr/local/bin/hello"}}
	path, err := BuildImage(spec, filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := BuildImage(spec, filepath.Join(dir, "images"))
	if err != nil || again != path {
		t.Errorf("identical spec not reused: %s vs %s (%v)", path, again, err)
	}
	a, err := ociimage.ReadDockerArchive(path)
	if err != nil {
		t.Fatalf("image not readable: %v", err)
	}
	if len(a.RepoTags) != 1 || a.RepoTags[0] != spec.Ref {
		t.Errorf("tagged %v, want %s", a.RepoTags, spec.Ref)
	}
	if cfg := a.Image.Config; cfg.Config.Entrypoint[0] != "/usr/local/bin/hello" || cfg.Architecture != "amd64" {
		t.Errorf("config = %+v", cfg)
	}
	if f := a.Image.Files["usr/local/bin/hello"]; string(f.Data) != "#!hello" {
		t.Errorf("layer has usr/local/bin/hello = %q", f.Data)
	}
	// A changed file gives a new image.
	os.WriteFile(bin, []byte("#!changed"), 0o755)
	if p2, _ := BuildImage(spec, filepath.Join(dir, "images")); p2 == path {
		t.Error("changed content reused the old image")
	}
}

func TestEnsureToolsUninstallable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run apt-get")
	}
	err := EnsureTools(context.Background(), io.Discard, map[string]string{"/nonexistent/ketcd-tool": "kubectl-etcd-no-such-package"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/ketcd-tool") || !strings.Contains(err.Error(), "apt-get") {
		t.Errorf("want an error naming the tool and apt-get, got %v", err)
	}
}

func TestDownRefusesBadNames(t *testing.T) {
	for _, n := range []string{"", "a/b", "x y"} {
		if err := Down(context.Background(), n, t.TempDir(), io.Discard); err == nil {
			t.Errorf("Down(%q) accepted", n)
		}
	}
}

func TestProcessesInNetnsRefusesRoot(t *testing.T) {
	if pids := processesInNetns("/proc/self/ns/net"); pids != nil {
		t.Errorf("root namespace must be refused, got %d pids", len(pids))
	}
	if pids := processesInNetns("/nonexistent"); pids != nil {
		t.Errorf("missing namespace gave %v", pids)
	}
}
