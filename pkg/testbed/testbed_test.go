package testbed

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
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
	err := checkSubnetFree(addressing{subnet: "127.0.0"})
	if err == nil || !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), "--subnet") {
		t.Errorf("loopback's range must be refused with a hint, got %v", err)
	}
	if err := checkSubnetFree(addressing{subnet: "10.99.250"}); err != nil {
		t.Errorf("unused range refused: %v", err)
	}
	if err := checkSubnetFree(addressing{subnet: "fd00:99:0:250", ipv6: true}); err != nil {
		t.Errorf("unused IPv6 range refused: %v", err)
	}
	for _, bad := range []addressing{{subnet: "10.99"}, {subnet: "fd00:99:0:1"}, {subnet: "10.99.0", ipv6: true},
		{subnet: "fd00:99::", ipv6: true}, {subnet: "2001:db8:0:1", ipv6: true}} {
		if err := checkSubnetFree(bad); err == nil {
			t.Errorf("malformed subnet %+v accepted", bad)
		}
	}
}

func TestAddressing(t *testing.T) {
	for _, tc := range []struct {
		a                          addressing
		lb, h1, h3, cidr, svc, pod string
		cni                        string
	}{
		{addressing{subnet: "10.99.10"}, "10.99.10.1", "10.99.10.11", "10.99.10.13", "10.99.10.0/24", "10.96.0.0/16", "10.244.0.0/16", "10.85.0.0/24"},
		{addressing{subnet: "fd00:99:0:10", ipv6: true}, "fd00:99:0:10::1", "fd00:99:0:10::11", "fd00:99:0:10::13", "fd00:99:0:10::/64",
			"fd00:10:96::/112", "fd00:10:244::/56", "fd00:85::/64"},
		{addressing{subnet: "fd00:99:0:0", ipv6: true}, "fd00:99::1", "fd00:99::11", "fd00:99::13", "fd00:99:0:0::/64",
			"fd00:10:96::/112", "fd00:10:244::/56", "fd00:85::/64"},
	} {
		if err := tc.a.validate(); err != nil {
			t.Fatal(err)
		}
		got := []string{tc.a.lb(), tc.a.host(0), tc.a.host(2), tc.a.cidr(), tc.a.serviceSubnet(), tc.a.podSubnet(), tc.a.cniSubnet()}
		want := []string{tc.lb, tc.h1, tc.h3, tc.cidr, tc.svc, tc.pod, tc.cni}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%+v: got %v, want %v", tc.a, got, want)
		}
		_, network, _ := net.ParseCIDR(tc.a.cidr())
		for _, ip := range []string{tc.a.lb(), tc.a.host(0), tc.a.host(tc.a.maxHosts() - 1)} {
			p := net.ParseIP(ip)
			if p == nil || !network.Contains(p) || (p.To4() == nil) != tc.a.ipv6 {
				t.Errorf("%s is not an address of %s's family in %s", ip, tc.a.subnet, network)
			}
		}
		for _, r := range []string{tc.svc, tc.pod, tc.cni} {
			ip, _, err := net.ParseCIDR(r)
			if err != nil || (ip.To4() == nil) != tc.a.ipv6 {
				t.Errorf("range %s is not of the bed's family (%v)", r, err)
			}
		}
	}
}

func TestNetworkStepsIPv6(t *testing.T) {
	a := addressing{subnet: "fd00:99:0:10", ipv6: true}
	b := &Bed{State: State{Name: "t", Subnet: a.subnet, IPv6: true}}
	h := &Host{HostConfig: newHostConfig(a, "cp.example.internal", 0, RoleInit), bed: b}
	var lines []string
	for _, s := range networkSteps("t-br", a, []*Host{h}) {
		lines = append(lines, strings.Join(s, " "))
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{
		"ip -n t-br addr add fd00:99:0:10::1/64 nodad dev br0",
		"ip -n t-br link add h1 type veth peer name eth0 netns t-h1", // the veth keeps the short name (15 bytes at most)
		"ip -n t-h1 addr add fd00:99:0:10::11/64 nodad dev eth0",
		"ip -6 -n t-h1 route add default via fd00:99:0:10::1",
		"net.ipv6.conf.default.forwarding=1",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no step %q in:\n%s", want, all)
		}
	}
	if strings.Contains(all, "/24") {
		t.Errorf("an IPv4 prefix in an IPv6 bed's steps:\n%s", all)
	}
	v4 := networkSteps("t-br", addressing{subnet: "10.99.10"}, []*Host{{HostConfig: newHostConfig(addressing{subnet: "10.99.10"}, "", 0, RoleInit), bed: &Bed{State: State{Name: "t"}}}})
	for _, s := range v4 {
		if l := strings.Join(s, " "); strings.Contains(l, "nodad") || strings.Contains(l, "ipv6") || strings.Contains(l, "-6") {
			t.Errorf("an IPv6 step in an IPv4 bed: %s", l)
		}
	}
}

func TestRenderKubeadmIPv6DottedNames(t *testing.T) {
	a := addressing{subnet: "fd00:99:0:10", ipv6: true}
	b := &Bed{State: State{Name: "t", Subnet: a.subnet, IPv6: true, Domain: "cp.example.internal", Token: "abcdef.0123456789abcdef", CertificateKey: "ck", KubernetesVersion: "v1.37.2"}}
	h := &Host{HostConfig: newHostConfig(a, b.Domain, 1, RoleControlPlane), bed: b}
	if h.Name != "h2" || h.NodeName() != "h2.cp.example.internal" || h.Address != "fd00:99:0:10::12" {
		t.Fatalf("host %+v", h.HostConfig)
	}
	if h.LocalEtcdURL() != "https://[::1]:2379" {
		t.Errorf("an IPv6 host's local etcd at %s", h.LocalEtcdURL())
	}
	b.Hosts = []*Host{h}
	if b.Host("h2") != h || b.Host("h2.cp.example.internal") != h || b.Host("h2.cp") != nil {
		t.Error("Bed.Host finds a host by its bed name and its node name only")
	}
	out, err := renderKubeadm("init", b.params(h))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(out), "\n---\n")
	var initCfg, clusterCfg map[string]any
	if err := yaml.Unmarshal([]byte(docs[0]), &initCfg); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(docs[1]), &clusterCfg); err != nil {
		t.Fatal(err)
	}
	if got := initCfg["localAPIEndpoint"].(map[string]any)["advertiseAddress"]; got != "fd00:99:0:10::12" {
		t.Errorf("advertiseAddress = %v", got)
	}
	nr := initCfg["nodeRegistration"].(map[string]any)
	if nr["name"] != "h2.cp.example.internal" {
		t.Errorf("node name %v", nr["name"])
	}
	if args := fmt.Sprint(nr["kubeletExtraArgs"]); args != "[map[name:node-ip value:fd00:99:0:10::12]]" {
		t.Errorf("kubeletExtraArgs = %s", args)
	}
	if clusterCfg["controlPlaneEndpoint"] != "[fd00:99:0:10::1]:6443" {
		t.Errorf("controlPlaneEndpoint = %v", clusterCfg["controlPlaneEndpoint"])
	}
	nw := clusterCfg["networking"].(map[string]any)
	if nw["serviceSubnet"] != "fd00:10:96::/112" || nw["podSubnet"] != "fd00:10:244::/56" {
		t.Errorf("networking = %v", nw)
	}
	if sans := fmt.Sprint(clusterCfg["apiServer"].(map[string]any)["certSANs"]); sans != "[127.0.0.1 localhost fd00:99:0:10::1]" {
		t.Errorf("certSANs = %s", sans)
	}
	p := b.params(h)
	p.ControlPlane, p.CACertHash = true, "sha256:00"
	out, err = renderKubeadm("join", p)
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	if err := yaml.Unmarshal(out, &j); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := j["discovery"].(map[string]any)["bootstrapToken"].(map[string]any)["apiServerEndpoint"]; got != "[fd00:99:0:10::1]:6443" {
		t.Errorf("join goes to %v", got)
	}
	if got := j["controlPlane"].(map[string]any)["localAPIEndpoint"].(map[string]any)["advertiseAddress"]; got != "fd00:99:0:10::12" {
		t.Errorf("join advertises %v", got)
	}
	if c := cniConfig(a); !strings.Contains(c, `"subnet": "fd00:85::/64"`) {
		t.Errorf("CNI config:\n%s", c)
	}
}

func TestValidDomain(t *testing.T) {
	for _, ok := range []string{"", "cp.example.internal", "a", "x-1.y"} {
		if err := validDomain(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"Cp.example", "a..b", ".a", "a.", "-a.b", "a_b", strings.Repeat("a", 64)} {
		if err := validDomain(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
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

func TestSSHDConfigAndSudoers(t *testing.T) {
	for _, tc := range []struct{ addr, listen string }{
		{"10.9.9.11", "ListenAddress 10.9.9.11:22\n"},
		{"fd00:99:0:0::11", "ListenAddress [fd00:99:0:0::11]:22\n"},
	} {
		cfg := sshdConfig(net.JoinHostPort(tc.addr, "22"), "/bed/bin:/usr/bin")
		for _, want := range []string{tc.listen, "PermitRootLogin prohibit-password\n", "PasswordAuthentication no\n", "SetEnv PATH=/bed/bin:/usr/bin\n"} {
			if !strings.Contains(cfg, want) {
				t.Errorf("sshd config for %s lacks %q:\n%s", tc.addr, want, cfg)
			}
		}
	}
	visudo, err := exec.LookPath("visudo")
	if err != nil {
		t.Skip("no visudo here (the bed installs sudo)")
	}
	f := filepath.Join(t.TempDir(), "testbed")
	if err := os.WriteFile(f, []byte(sudoersConfig("/bed/bin:/usr/bin")), 0o440); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(visudo, "-c", "-f", f).CombinedOutput(); err != nil {
		t.Fatalf("visudo -c: %v\n%s", err, out)
	}
}

func TestSeedUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chowns the users' homes: needs root")
	}
	etc, home := t.TempDir(), filepath.Join(t.TempDir(), "upper")
	if err := seedUsers(etc, home, SSHUserSudo, SSHUserNoSudo); err != nil {
		t.Fatal(err)
	}
	machine, _ := os.ReadFile("/etc/passwd")
	passwd, _ := os.ReadFile(filepath.Join(etc, "passwd"))
	if !strings.HasPrefix(string(passwd), string(machine)) {
		t.Errorf("the host's passwd does not start with the machine's")
	}
	for _, u := range []string{SSHUserSudo, SSHUserNoSudo} {
		if !strings.Contains(string(passwd), "\n"+u+":x:") {
			t.Errorf("no %s in the host's passwd:\n%s", u, passwd)
		}
		if _, err := os.Stat(filepath.Join(home, u)); err != nil {
			t.Error(err)
		}
	}
	if st, err := os.Stat(home); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("the host's /home must let its users through: %v %v", st.Mode(), err)
	}
	if shadow, _ := os.ReadFile(filepath.Join(etc, "shadow")); !strings.Contains(string(shadow), "\n"+SSHUserSudo+":*:") {
		t.Errorf("%s is locked or missing in the host's shadow:\n%s", SSHUserSudo, shadow)
	}
	if again, _ := os.ReadFile("/etc/passwd"); string(again) != string(machine) {
		t.Errorf("the machine's /etc/passwd changed")
	}
}
