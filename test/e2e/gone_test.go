//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// goneStatus is the part of `status -o json` this story reads.
type goneStatus struct {
	Members []struct {
		Host    string `json:"host"`
		Name    string `json:"name"`
		Healthy bool   `json:"healthy"`
		Learner bool   `json:"learner"`
	} `json:"members"`
	Hosts []struct {
		Node          string `json:"node"`
		Ready         bool   `json:"ready"`
		Member        string `json:"member"`
		APIServerEtcd string `json:"apiserverEtcdServers"`
		CutOffBy      string `json:"cutOffBy"`
	} `json:"hosts"`
	Drift []struct {
		Kind string `json:"kind"`
		Node string `json:"node"`
	} `json:"drift"`
	Summary string `json:"summary"`
}

func goneStatusOf(t *testing.T, b *testbed.Bed) goneStatus {
	t.Helper()
	// Once (session 4) this failed right after the recover with exit
	// status 1 and its stderr not kept; it did not happen again. A failure
	// is now logged with its stderr and retried for a minute; one that
	// lasts fails the test with it.
	var out []byte
	deadline := time.Now().Add(time.Minute)
	for {
		var stderr bytes.Buffer
		cmd := workstation(t, b, "status", "-o", "json")
		cmd.Stderr = &stderr
		var err error
		if out, err = cmd.Output(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status -o json: %v\n%s", err, stderr.String())
		}
		t.Logf("status -o json: %v (retrying)\n%s", err, stderr.String())
		time.Sleep(5 * time.Second)
	}
	var st goneStatus
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	return st
}

// waitNodesNotReady waits (up to 2 min) until the cluster shows each node
// NotReady (its Ready condition not True).
func waitNodesNotReady(t *testing.T, b *testbed.Bed, names ...string) {
	t.Helper()
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = wait.PollUntilContextTimeout(context.Background(), time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, name := range names {
			n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil || nodeReady(n) == corev1.ConditionTrue {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("nodes %v still Ready after %s: %v", names, time.Since(start).Round(time.Second), err)
	}
	t.Logf("nodes %v NotReady after %s", names, time.Since(start).Round(100*time.Millisecond))
}

func nodeExists(t *testing.T, b *testbed.Bed, name string) bool {
	t.Helper()
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("reading node %s: %v", name, err)
	}
	return err == nil
}

// storyRecoverGoneForGood: quorum loss as in storyRecoverQuorumLoss, but hosts
// 2 and 3 never return. After `recover` on h1, `kubectl etcd remove` says
// their members were cut off by the recovery, has nothing to remove in etcd,
// exits 0 (again when rerun), and with --delete-node deletes their Node
// objects and mirror pods; two new hosts join with the real
// `kubeadm join --control-plane`, which adds their members itself. The end:
// three healthy voters h1, h4, h5, every apiserver ready, kubeadm's upgrade
// health checks pass, every acknowledged write readable.
func storyRecoverGoneForGood(t *testing.T, b *testbed.Bed) {
	h1, h2, h3, h4, h5 := b.Host("h1"), b.Host("h2"), b.Host("h3"), b.Host("h4"), b.Host("h5")
	// Node names (dotted on the scale chain's bed): what the plugin's
	// arguments and output use.
	n1, n2, n3 := h1.NodeName(), h2.NodeName(), h3.NodeName()
	copyGlob := "/var/lib/etcd/.kubectl-etcd-before-recover-*/member/snap/db /var/lib/etcd.before-recover-*/member/snap/db"
	copiesBefore := pathsNow(t, h1, copyGlob)
	ctx := context.Background()
	wantVoters(t, b, "h1", "h1", "h2", "h3")

	ns := "e2e-gone"
	w := startWriter(t, b, ns)
	time.Sleep(5 * time.Second)

	// Quorum loss; h2 and h3 are never powered on again.
	lost := loseQuorum(t, h1, h2, h3)
	out, err := kectl(t, h1, "recover", "--yes")
	if err != nil || !strings.Contains(out, "Gone for good") {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	apiserverReady(t, h1)
	t.Logf("quorum lost -> h1's apiserver ready again: %s", time.Since(lost).Round(100*time.Millisecond))
	wantVoters(t, b, "h1", "h1")

	// The recovery now ends before the powered-off hosts' node leases lapse
	// (their 40 s plus slack): until then status rightly shows them up.
	// Wait for it to see them down, as an operator would.
	waitFor(t, 3*time.Minute, "status to see h2 and h3 down", func() bool {
		out, err := plugin(t, b, "status")
		return err == nil && strings.Contains(out, n2+" is down (") && strings.Contains(out, n3+" is down (")
	})

	// status: h2 and h3 are shown as cut off by the recovery, not as an
	// etcd pod that is "not a member".
	st := goneStatusOf(t, b)
	cut := map[string]string{}
	for _, h := range st.Hosts {
		cut[h.Node] = h.CutOffBy
	}
	for _, n := range []string{n2, n3} {
		if !strings.HasPrefix(cut[n], "recover on "+n1+" at ") {
			t.Errorf("status: host %s cutOffBy %q, want the recover on h1", n, cut[n])
		}
	}
	for _, d := range st.Drift {
		if d.Kind != "cut-off-by-recovery" {
			t.Errorf("status: drift %+v after the recovery, want only cut-off-by-recovery", d)
		}
	}
	if out, err := plugin(t, b, "status"); err != nil || !strings.Contains(out, "(cut off by the recover on "+n1+" at") ||
		!strings.Contains(out, "kubectl etcd remove "+n2+" --delete-node") || !strings.Contains(out, "2 of them cut off by the recover on "+n1+" ("+n2+", "+n3+")") ||
		strings.Contains(out, "not a member of the cluster") || !strings.Contains(out, n2+" is down (") || !strings.Contains(out, n3+" is down (") ||
		strings.Contains(out, "its host is back") {
		t.Errorf("status after the recovery: %v\n%s", err, out)
	}

	// remove h2: nothing left in etcd; the node is the operator's to delete.
	out, err = plugin(t, b, "remove", n2, "--dry-run")
	if err != nil || !strings.Contains(out, "(dry run: nothing will be changed)") || !strings.Contains(out, "nothing to remove in etcd") {
		t.Errorf("remove h2 --dry-run: %v\n%s", err, out)
	}
	for i := 0; i < 2; i++ { // the rerun is the same no-op
		out, err = plugin(t, b, "remove", n2)
		if err != nil || !strings.Contains(out, "is not in the member list any more: the recover on "+n1+" at ") ||
			!strings.Contains(out, "nothing to remove in etcd") || !strings.Contains(out, "`kubectl delete node "+n2+"`") {
			t.Errorf("remove h2 (run %d): %v\n%s", i+1, err, out)
		}
		if !nodeExists(t, b, n2) {
			t.Fatal("remove h2 without --delete-node deleted node h2")
		}
	}
	wantVoters(t, b, "h1", "h1")
	// kubeadm itself refuses to upgrade while h2's node is there, NotReady.
	// Its CreateJob check (a Job running `pause -v`) must pass once the
	// cluster is whole again: the bed's pod network and pause image are made
	// for it. Here, just after the recover with h2 and h3 NotReady, it
	// cannot: the scheduler puts the Job's pod on h2 or h3 (seen in session
	// 10: Pending on h3), powered off, whose nodes are not yet tainted
	// unreachable (the controller-manager restarted with the recover). So
	// it is ignored here, and costs its minute; kube-system's pods and jobs
	// are logged whenever the check fails, to show why.
	upgradePlan := func(ignore string) (string, error) {
		out, err := h1.Exec(ctx, "kubeadm", "upgrade", "plan", testbed.KubernetesVersion, "--ignore-preflight-errors="+ignore+"CoreDNSUnsupportedPlugins,CoreDNSMigration")
		t.Logf("h1: kubeadm upgrade plan: %v\n%s", err, out)
		if strings.Contains(string(out), "CreateJob") {
			pods, perr := h1.Exec(ctx, "kubectl", "-n", "kube-system", "get", "pods,jobs", "-o", "wide")
			t.Logf("h1: kubectl -n kube-system get pods,jobs: %v\n%s", perr, pods)
		}
		return string(out), err
	}
	// kubeadm reads the nodes' Ready condition, which the node lifecycle
	// controller turns only some 40 s after it took over (it restarted with
	// the recover); until then kubeadm rightly sees nothing wrong. Before
	// session 10, CreateJob's wasted minute hid that wait.
	waitNodesNotReady(t, b, n2, n3)
	if out, err := upgradePlan("CreateJob,"); err == nil || !strings.Contains(out, "there are NotReady control-planes in the cluster: ["+n2) {
		t.Errorf("kubeadm upgrade plan with h2, h3 NotReady: want it refused naming them, got %v", err)
	}

	// remove h3 --delete-node: node and mirror pods deleted; rerun a no-op.
	out, err = plugin(t, b, "remove", n3, "--delete-node")
	if err != nil || !strings.Contains(out, "nothing to remove in etcd") || !strings.Contains(out, "node "+n3+" deleted") ||
		!strings.Contains(out, "mirror pod kube-system/etcd-"+n3+" deleted") {
		t.Errorf("remove h3 --delete-node: %v\n%s", err, out)
	}
	if nodeExists(t, b, n3) {
		t.Error("node h3 still exists after remove --delete-node")
	}
	if out, err := plugin(t, b, "remove", n3, "--delete-node"); err != nil || !strings.Contains(out, "no control-plane node "+n3+" is left either\n  nothing to do") {
		t.Errorf("remove h3 again: %v\n%s", err, out)
	}
	// A wrong name is still a clear error, and changes nothing.
	if out, err := plugin(t, b, "remove", "h9"); err == nil || !strings.Contains(out, `"h9" is neither a control-plane node nor an etcd member`) {
		t.Errorf("remove h9: %v\n%s", err, out)
	}
	// --delete-node is refused for a Ready node (h1 has the only member:
	// refused either way; nothing changes).
	if out, err := plugin(t, b, "remove", n1, "--delete-node"); err == nil {
		t.Errorf("remove h1 --delete-node succeeded:\n%s", out)
	}
	if !nodeExists(t, b, n1) {
		t.Fatal("node h1 deleted")
	}
	wantVoters(t, b, "h1", "h1")

	// The operator decides h2 is gone for good, too.
	if out, err := plugin(t, b, "remove", n2, "--delete-node"); err != nil || !strings.Contains(out, "node "+n2+" deleted") {
		t.Errorf("remove h2 --delete-node: %v\n%s", err, out)
	}
	st = goneStatusOf(t, b)
	if len(st.Hosts) != 1 || st.Hosts[0].Node != n1 || len(st.Drift) != 0 {
		t.Errorf("status after both removals: hosts %+v, drift %+v", st.Hosts, st.Drift)
	}

	// New hosts join the normal way: kubeadm adds their etcd members.
	for _, h := range []*testbed.Host{h4, h5} {
		start := time.Now()
		if err := b.JoinControlPlane(ctx, h); err != nil {
			t.Fatalf("kubeadm join --control-plane on %s: %v", h.Name, err)
		}
		t.Logf("%s: kubeadm join --control-plane took %s", h.Name, time.Since(start).Round(100*time.Millisecond))
	}
	wantVoters(t, b, "h1", "h1", "h4", "h5")
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	// Their members run the image tag kubeadm-config records: 3.7.0-0
	// after the upgrade story, which wrote it there.
	tag := etcdImageTag(t, b)
	for _, h := range []*testbed.Host{h4, h5} {
		if m, err := h.ReadFile("/etc/kubernetes/manifests/etcd.yaml"); err != nil || !strings.Contains(string(m), "image: registry.k8s.io/etcd:"+tag+"\n") {
			t.Errorf("%s's new member does not run kubeadm-config's etcd image tag %s (%v)", h.Name, tag, err)
		}
	}
	waitFor(t, 2*time.Minute, "nodes h1, h4, h5 Ready", func() bool {
		for _, n := range []string{n1, h4.NodeName(), h5.NodeName()} {
			node, err := cs.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			if err != nil || nodeReady(node) != corev1.ConditionTrue {
				return false
			}
		}
		return true
	})
	for _, h := range []*testbed.Host{h1, h4, h5} {
		apiserverReady(t, h)
	}
	// status reads which etcd each apiserver reads from its mirror pod,
	// which the new hosts' kubelets may not have made yet when their
	// apiservers answer (seen once: h5's row without it, just after its join).
	for _, h := range []*testbed.Host{h4, h5} {
		waitPodRunning(t, b, "kube-system", "kube-apiserver-"+h.NodeName())
	}
	st = goneStatusOf(t, b)
	var hosts []string
	for _, m := range st.Members {
		if !m.Healthy || m.Learner {
			t.Errorf("member row %+v", m)
		}
		hosts = append(hosts, m.Host)
	}
	if strings.Join(hosts, ",") != n1+","+h4.NodeName()+","+h5.NodeName() {
		t.Errorf("status: members on %v, want h1,h4,h5", hosts)
	}
	for _, h := range st.Hosts {
		if h.Member == "" || !h.Ready || h.CutOffBy != "" || h.APIServerEtcd != h1.LocalEtcdURL() {
			t.Errorf("host row %+v", h)
		}
	}
	if len(st.Hosts) != 3 || len(st.Drift) != 0 || !strings.HasPrefix(st.Summary, "3 voting members, 3 healthy (quorum") {
		t.Errorf("status: %d hosts, drift %+v, summary %q", len(st.Hosts), st.Drift, st.Summary)
	}
	// kubeadm's own view is consistent: its upgrade health checks pass
	// (skipped: the CoreDNS checks, as the bed skips the CoreDNS addon).
	if out, err := upgradePlan(""); err != nil || strings.Contains(out, "NotReady") || strings.Contains(out, "CreateJob") {
		t.Errorf("kubeadm upgrade plan after the new hosts joined: %v", err)
	}

	w.finish(t, b, ns)
	if copies := newPaths(t, h1, copyGlob, copiesBefore); len(copies) != 1 {
		t.Errorf("want exactly one complete copy of h1's data from the recover, got %q", copies)
	}
	noHostPodsLeft(t, b)
}
