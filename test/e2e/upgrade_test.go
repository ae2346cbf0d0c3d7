//go:build e2e

package e2e

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// storyUpgrade: the scale chain's three members run etcd's previous minor
// (the bed's kubeadm-config sets etcd.local.imageTag to it). An upgrade
// two minors ahead is refused and changes nothing; the dry run shows the
// image change per host and changes nothing; `upgrade --version 3.7.0`,
// SIGKILLed as its second member's turn begins and run again, rolls every
// member while a writer runs: every acknowledged write is kept, every
// member reports 3.7.0, kubeadm-config records 3.7.0-0. A third run has
// nothing to do.
func storyUpgrade(t *testing.T, b *testbed.Bed) {
	ctx := context.Background()
	versions := func() string {
		t.Helper()
		var v []string
		for _, m := range pluginStatus(t, b).Members {
			v = append(v, m.Host+"="+m.Version)
		}
		return strings.Join(v, " ")
	}
	n1, n2, n3 := node(b, "h1"), node(b, "h2"), node(b, "h3")
	all := func(v string) string { return n1 + "=" + v + " " + n2 + "=" + v + " " + n3 + "=" + v }
	if v := versions(); v != all("3.6.16") {
		t.Fatalf("the members run %s, want 3.6.16 on h1, h2, h3", v)
	}
	out, err := plugin(t, b, "upgrade", "--version", "3.8.0")
	if err == nil || !strings.Contains(out, "etcd 3.8.0 is more than one minor version ahead of the members (3.6.16 on "+n1+", "+n2+", "+n3+"): etcd upgrades one minor at a time; upgrade to 3.7 first") ||
		!strings.Contains(out, "nothing was changed") {
		t.Errorf("upgrade two minors ahead: %v, want it refused with the reason", err)
	}
	out, err = plugin(t, b, "upgrade", "--version", "3.7.0", "--dry-run")
	if err != nil || !strings.Contains(out, "set etcd.local.imageTag to 3.7.0-0 in ConfigMap kube-system/kubeadm-config") ||
		strings.Count(out, "image registry.k8s.io/etcd:3.6.16-0 (kubeadm: registry.k8s.io/etcd:3.7.0-0)") < 3 {
		t.Errorf("upgrade --dry-run: %v, want the kubeadm-config change and each host's image change", err)
	}
	if got := etcdImageTag(t, b); got != testbed.EtcdPreviousTag {
		t.Errorf("the dry run changed kubeadm-config's etcd imageTag to %q", got)
	}
	for _, h := range []string{"h1", "h2", "h3"} {
		if m, err := b.Host(h).ReadFile("/etc/kubernetes/manifests/etcd.yaml"); err != nil || !strings.Contains(string(m), "image: registry.k8s.io/etcd:"+testbed.EtcdPreviousTag) {
			t.Errorf("the dry run changed %s's etcd manifest (%v)", h, err)
		}
	}

	// The third member's host, in the plan's order: the leader's, last.
	third := ""
	if _, after, ok := strings.Cut(out, "5. upgrade "); ok {
		third, _, _ = strings.Cut(after, ":")
	}
	if b.Host(third) == nil {
		t.Fatalf("no third member's host in the dry run's plan (%q)", third)
	}
	for _, m := range pluginStatus(t, b).Members {
		if m.Leader && m.Host != third {
			t.Errorf("the plan upgrades %s last, not the leader's host %s", third, m.Host)
		}
	}

	// The upgrade, SIGKILLed as its second member's turn begins; the third
	// member upgraded on its host with the host-local face; then the
	// plugin run again once every member answers: it goes on from there.
	w := startWriter(t, b, "e2e-upgrade")
	out = interruptPlugin(t, b, syscall.SIGKILL, "[4/6] upgrade ", "upgrade", "--version", "3.7.0")
	if !strings.Contains(out, "[4/6] upgrade ") {
		w.finish(t, b, "e2e-upgrade")
		t.Fatalf("the upgrade never got to its second member")
	}
	waitHealthy(t, b, 3)
	local, err := b.Host(third).Exec(ctx, "kubectl-etcd", "upgrade", "--local", "--version", "3.7.0")
	t.Logf("%s: kubectl-etcd upgrade --local --version 3.7.0: %v\n%s", third, err, local)
	if err != nil || !strings.Contains(string(local), "image registry.k8s.io/etcd:3.6.16-0 (kubeadm: registry.k8s.io/etcd:3.7.0-0)") {
		t.Errorf("the host-local upgrade on %s: %v, want its member moved to 3.7.0-0", third, err)
	}
	waitHealthy(t, b, 3)
	// h1's apiserver was down for its member's switch: the bed's other
	// kubelets, which reach the apiservers through its load balancer, may
	// be NotReady for a while, as a real cluster's would be behind a load
	// balancer that does not check them.
	if err := b.WaitNodesReady(ctx, 2*time.Minute); err != nil {
		t.Fatalf("nodes after the host-local upgrade: %v", err)
	}
	out, err = plugin(t, b, "upgrade", "--version", "3.7.0")
	w.finish(t, b, "e2e-upgrade")
	if err != nil {
		t.Fatalf("upgrade --version 3.7.0 after the SIGKILL: %v", err)
	}
	if strings.Contains(out, "set etcd.local.imageTag") {
		t.Error("the rerun records the tag again: the interrupted run had")
	}
	if v := versions(); v != all("3.7.0") {
		t.Errorf("after the upgrade the members run %s", v)
	}
	if got := etcdImageTag(t, b); got != "3.7.0-0" {
		t.Errorf("kubeadm-config's etcd imageTag is %q after the upgrade, want 3.7.0-0", got)
	}
	out, err = plugin(t, b, "upgrade", "--version", "3.7.0")
	if err != nil || !strings.Contains(out, "every member runs 3.7.0 already") || strings.Contains(out, "[1/") {
		t.Errorf("a rerun: %v, want nothing to do", err)
	}
	// A member added later runs the recorded version: RecoverGoneForGood
	// checks the ones kubeadm join adds to this bed (kubectl etcd scale
	// renders from the same kubeadm-config: PluginScaleUp).
}

// etcdImageTag is kubeadm-config's etcd.local.imageTag now.
func etcdImageTag(t *testing.T, b *testbed.Bed) string {
	t.Helper()
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "kubeadm-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := staticpod.ParseClusterConfiguration([]byte(cm.Data["ClusterConfiguration"]))
	if err != nil {
		t.Fatal(err)
	}
	return cc.Etcd.Local.ImageTag
}
