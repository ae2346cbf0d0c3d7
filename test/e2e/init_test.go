//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

func hostTree(t *testing.T, h *testbed.Host) string {
	t.Helper()
	// Everything under /etc/kubernetes, and the data dir's layout: names
	// and modes only there, as a running etcd grows its own WAL and db on
	// its own (CI once saw raft index 5 become 6 between two inits).
	out, err := h.Exec(context.Background(), "sh", "-c",
		"{ find /etc/kubernetes -exec stat -c '%n %s %Y %a' {} +; find /var/lib/etcd /var/lib/etcd.* -maxdepth 2 -exec stat -c '%n %a' {} +; } 2>/dev/null | sort | md5sum")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// copyCA gives a host the etcd CA as `kubeadm join --control-plane` would.
func copyCA(t *testing.T, from, to *testbed.Host) {
	t.Helper()
	for _, f := range []string{"ca.crt", "ca.key"} {
		b, err := from.ReadFile("/etc/kubernetes/pki/etcd/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if err := to.WriteFile("/etc/kubernetes/pki/etcd/"+f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHostLocalInit: first bootstrap on hosts with only a kubelet (no
// cluster): init one member (kubeadm's manifest, byte for byte), then join
// others; and the bad inputs init and join must refuse without changing
// anything: no CA, a port taken, an unparseable manifest, another cluster's data.
func TestHostLocalInit(t *testing.T) {
	ctx := context.Background()
	b := upBed(t, "e2einit", "10.99.4", testbed.RoleBare, testbed.RoleBare, testbed.RoleBare)
	h1, h2, h3 := b.Host("h1"), b.Host("h2"), b.Host("h3")
	for _, h := range b.Hosts {
		if err := b.StandaloneKubelet(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	id := func(h *testbed.Host) []string {
		return []string{"--node-name=" + h.Name, "--advertise-address=" + h.Address}
	}

	before := hostTree(t, h1)
	out, err := kectl(t, h1, append([]string{"init", "--dry-run"}, id(h1)...)...)
	if err != nil || !strings.Contains(out, "create etcd-ca") || !strings.Contains(out, "new single-member cluster h1=https://10.99.4.11:2380") {
		t.Fatalf("init --dry-run: %v\n%s", err, out)
	}
	if hostTree(t, h1) != before {
		t.Error("init --dry-run changed h1")
	}

	if _, err := kectl(t, h1, append([]string{"init"}, id(h1)...)...); err != nil {
		t.Fatal(err)
	}
	wantVoters(t, b, "h1", "h1")

	// The manifest is what the real kubeadm writes for the same configuration.
	kcfg := `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration: {name: h1}
localAPIEndpoint: {advertiseAddress: 10.99.4.11}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.0
`
	if err := h1.WriteFile("/etc/testbed/kcfg.yaml", []byte(kcfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := h1.Exec(ctx, "env", "KUBEADM_INIT_DRYRUN_DIR=/etc/testbed/kubeadm-dryrun", "kubeadm", "init", "phase", "etcd", "local", "--config=/etc/testbed/kcfg.yaml", "--dry-run"); err != nil {
		t.Fatal(err)
	}
	theirs, err1 := h1.ReadFile("/etc/testbed/kubeadm-dryrun/etcd.yaml")
	ours, err2 := h1.ReadFile("/etc/kubernetes/manifests/etcd.yaml")
	if err1 != nil || err2 != nil || string(theirs) != string(ours) {
		t.Errorf("manifest differs from kubeadm's (%v %v):\n--- ours\n%s\n--- kubeadm\n%s", err1, err2, ours, theirs)
	}

	// init again: nothing to do, nothing changed.
	before = hostTree(t, h1)
	if out, err := kectl(t, h1, append([]string{"init"}, id(h1)...)...); err != nil || !strings.Contains(out, "nothing to do") {
		t.Errorf("second init: %v\n%s", err, out)
	}
	if hostTree(t, h1) != before {
		t.Error("second init changed h1")
	}

	ep := "--endpoints=https://10.99.4.11:2379"
	// No CA on h2: refused, with how to bring it.
	before = hostTree(t, h2)
	if out, err := kectl(t, h2, append([]string{"join", ep}, id(h2)...)...); err == nil || !strings.Contains(out, "no etcd CA") || !strings.Contains(out, "kubectl etcd scale") {
		t.Errorf("join without CA: %v\n%s", err, out)
	}
	if hostTree(t, h2) != before {
		t.Error("a refused join changed h2")
	}

	copyCA(t, h1, h2)
	copyCA(t, h1, h3)

	// A port taken on h2: refused, nothing changed.
	holder, err := h2.Command(ctx, "python3", "-c", "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('10.99.4.12',2380)); s.listen(); time.sleep(120)")
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	before = hostTree(t, h2)
	out, err = kectl(t, h2, append([]string{"join", ep}, id(h2)...)...)
	holder.Process.Kill()
	h2.Exec(ctx, "pkill", "-f", "s.bind")
	if err == nil || !strings.Contains(out, "10.99.4.12:2380 is already in use") {
		t.Errorf("join with the peer port taken: %v\n%s", err, out)
	}
	if hostTree(t, h2) != before {
		t.Error("a refused join changed h2")
	}
	wantVoters(t, b, "h1", "h1")

	for _, h := range []*testbed.Host{h2, h3} {
		if _, err := kectl(t, h, append([]string{"join", ep}, id(h)...)...); err != nil {
			t.Fatalf("join on %s: %v", h.Name, err)
		}
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")

	// An unparseable manifest is refused, not overwritten.
	if _, err := kectl(t, h3, append([]string{"leave"}, id(h3)...)...); err != nil {
		t.Fatal(err)
	}
	garbage := []byte("apiVersion: v1\nkind: Pod\nspec: {containers: [oops\n")
	if err := h3.WriteFile("/etc/kubernetes/manifests/etcd.yaml", garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := kectl(t, h3, append([]string{"join", ep}, id(h3)...)...); err == nil || !strings.Contains(out, "cannot be parsed") {
		t.Errorf("join over an unparseable manifest: %v\n%s", err, out)
	}
	if got, _ := h3.ReadFile("/etc/kubernetes/manifests/etcd.yaml"); string(got) != string(garbage) {
		t.Error("the unparseable manifest was changed")
	}
	h3.Exec(ctx, "rm", "/etc/kubernetes/manifests/etcd.yaml")

	// h3 now runs a cluster of its own; joining h1's cluster must not
	// silently discard it.
	if _, err := kectl(t, h3, append([]string{"init"}, id(h3)...)...); err != nil {
		t.Fatal(err)
	}
	out, err = kectl(t, h3, append([]string{"join", ep}, id(h3)...)...)
	if err == nil || !strings.Contains(out, "belongs to etcd cluster") || !strings.Contains(out, "--move-aside-foreign-data") {
		t.Errorf("join over another cluster's data: %v\n%s", err, out)
	}
	wantVoters(t, b, "h1", "h1", "h2")
	wantVoters(t, b, "h3", "h3") // its own cluster still runs, untouched
	if _, err := kectl(t, h3, append([]string{"join", ep, "--move-aside-foreign-data"}, id(h3)...)...); err != nil {
		t.Fatal(err)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")
	if out, _ := h3.Exec(ctx, "sh", "-c", "ls -d /var/lib/etcd/.kubectl-etcd-foreign-cluster-*/member /var/lib/etcd.foreign-cluster-*/member"); !strings.Contains(string(out), "foreign-cluster-") {
		t.Errorf("the other cluster's data was not kept: %s", out)
	}

	out, err = kectl(t, h3, "status", "--local", "-o", "json", "--node-name=h3", "--advertise-address=10.99.4.13")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Members []json.RawMessage `json:"members"`
		Summary string            `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Members) != 3 || !strings.Contains(st.Summary, "3 healthy") {
		t.Errorf("status: %v %s", err, out)
	}
}
