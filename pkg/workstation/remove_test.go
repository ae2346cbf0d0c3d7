package workstation

import (
	"context"
	"fmt"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster/etcdfake"
)

// observedAt is the moment the tests' observations are made.
var observedAt = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// bedNode is a node of a test cluster at 10.0.0.<id>, where
// etcdfake.Member(id, ...) puts its member: a control-plane node when cp,
// with an etcd mirror pod when etcd; its kubelet renewed its node lease
// renewedAgo before observedAt.
type bedNode struct {
	name       string
	id         uint64
	cp, etcd   bool
	ready      bool
	renewedAgo time.Duration
}

// objects are the API objects kubeadm and kubelet keep for n: its Node and
// lease, and on a control-plane node its mirror pods.
func (n bedNode) objects() []runtime.Object {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: map[string]string{}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("10.0.0.%d", n.id)}}}}
	ready := corev1.ConditionFalse
	if n.ready {
		ready = corev1.ConditionTrue
	}
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}
	renewed := metav1.NewMicroTime(observedAt.Add(-n.renewedAgo))
	out := []runtime.Object{node, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: n.name, Namespace: "kube-node-lease"},
		Spec: coordinationv1.LeaseSpec{RenewTime: &renewed}}}
	if !n.cp {
		return out
	}
	node.Labels[ControlPlaneLabel] = ""
	mirror := func(component string, args ...string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: component + "-" + n.name, Namespace: "kube-system",
			Labels: map[string]string{"component": component, "tier": "control-plane"}},
			Spec: corev1.PodSpec{NodeName: n.name, Containers: []corev1.Container{{Name: component, Command: append([]string{component}, args...)}}}}
	}
	out = append(out, mirror("kube-apiserver", "--etcd-servers=https://127.0.0.1:2379"))
	if n.etcd {
		out = append(out, mirror("etcd", "--data-dir=/var/lib/etcd"))
	}
	return out
}

var (
	// The e2e bed of TestPluginBadInputAndInterrupts: h1 with the only
	// member, h2 a control-plane node without one, h3 a worker.
	h1     = bedNode{name: "h1", id: 1, cp: true, etcd: true, ready: true, renewedAgo: 5 * time.Second}
	h2None = bedNode{name: "h2", id: 2, cp: true, ready: true, renewedAgo: 5 * time.Second}
	h3Work = bedNode{name: "h3", id: 3, ready: true, renewedAgo: 5 * time.Second}
	// Three members' hosts, all up; h3Gone is h3 powered off minutes ago.
	h2     = bedNode{name: "h2", id: 2, cp: true, etcd: true, ready: true, renewedAgo: 5 * time.Second}
	h3     = bedNode{name: "h3", id: 3, cp: true, etcd: true, ready: true, renewedAgo: 5 * time.Second}
	h3Gone = bedNode{name: "h3", id: 3, cp: true, etcd: true, ready: false, renewedAgo: 3 * time.Minute}

	m1, m2, m3 = etcdfake.Member(1, "h1"), etcdfake.Member(2, "h2"), etcdfake.Member(3, "h3")
	// mGone is a member whose node was deleted.
	mGone = etcdfake.Member(0x1a, "old-cp")
)

// fakeObserve makes the observation Remove and Replace decide on, the way
// observe does, from a fake apiserver holding nodes and an etcd answering
// with view (etcdfake).
func fakeObserve(t *testing.T, nodes []bedNode, view etcdfake.View) (*Session, *fake.Clientset, *observed) {
	t.Helper()
	var objs []runtime.Object
	for _, n := range nodes {
		objs = append(objs, n.objects()...)
	}
	cs := fake.NewClientset(objs...)
	s := &Session{Clientset: cs}
	ctx := context.Background()
	obs, err := s.observeAPI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := obs.readEtcd(ctx, &etcdfake.Cluster{Views: []etcdfake.View{view}}); err != nil {
		t.Fatal(err)
	}
	obs.leases, obs.now = s.nodeLeases(ctx), observedAt
	return s, cs, obs
}

// mutations lists the requests that would have changed the cluster.
func mutations(cs *fake.Clientset) []string {
	var out []string
	for _, a := range cs.Actions() {
		switch a.GetVerb() {
		case "get", "list", "watch":
		default:
			out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
		}
	}
	return out
}

func up(ms ...etcdcluster.Member) []etcdcluster.Status {
	var out []etcdcluster.Status
	for _, m := range ms {
		out = append(out, etcdfake.Up(m, ms[0].ID))
	}
	return out
}

const lastMember = "refusing to remove member h1 (1): it is the last member of the cluster, and removing it would leave no cluster to remove it from; to replace it, add the new member first"

// TestRemoveTarget: what `kubectl etcd remove NAME` removes, or why it
// refuses, decided before anything changes: the apiserver was only read.
func TestRemoveTarget(t *testing.T) {
	threeDown := etcdfake.View{Statuses: append(up(m1, m2), etcdfake.Down(m3))}
	for _, tc := range []struct {
		name       string
		nodes      []bedNode
		view       etcdfake.View
		arg        string
		deleteNode bool
		member     uint64
		node       string
		err        string
	}{
		// The e2e bed's bad input.
		{name: "unknown name", nodes: []bedNode{h1, h2None, h3Work}, view: etcdfake.View{Statuses: up(m1)}, arg: "nope",
			err: `"nope" is neither a control-plane node nor an etcd member (control-plane nodes: h1, h2; members: h1 (1))`},
		{name: "a worker node", nodes: []bedNode{h1, h2None, h3Work}, view: etcdfake.View{Statuses: up(m1)}, arg: "h3",
			err: "node h3 is not a control-plane node (it has no node-role.kubernetes.io/control-plane label): stacked etcd members run only on control-plane nodes"},
		{name: "a control-plane node without a member", nodes: []bedNode{h1, h2None, h3Work}, view: etcdfake.View{Statuses: up(m1)}, arg: "h2",
			err: "control-plane node h2 has no etcd member (members: h1 (1))"},
		{name: "the last member", nodes: []bedNode{h1, h2None, h3Work}, view: etcdfake.View{Statuses: up(m1)}, arg: "h1", err: lastMember},
		{name: "the last member by hex ID", nodes: []bedNode{h1, h2None, h3Work}, view: etcdfake.View{Statuses: up(m1)}, arg: "1", err: lastMember},

		// Names that resolve.
		{name: "by node", nodes: []bedNode{h1, h2, h3}, view: etcdfake.View{Statuses: up(m1, m2, m3, mGone)}, arg: "h2", member: 2, node: "h2"},
		{name: "by hex ID", nodes: []bedNode{h1, h2, h3}, view: etcdfake.View{Statuses: up(m1, m2, m3, mGone)}, arg: "3", member: 3, node: "h3"},
		{name: "a member whose node is gone, by name", nodes: []bedNode{h1, h2, h3}, view: etcdfake.View{Statuses: up(m1, m2, m3, mGone)}, arg: "old-cp", member: 0x1a},
		{name: "a member whose node is gone, by hex ID", nodes: []bedNode{h1, h2, h3}, view: etcdfake.View{Statuses: up(m1, m2, m3, mGone)}, arg: "1a", member: 0x1a},

		// Quorum: with h3 down, removing a healthy member stops the cluster;
		// removing h3 itself does not.
		{name: "a healthy member while another is down", nodes: []bedNode{h1, h2, h3Gone}, view: threeDown, arg: "h2",
			err: "refusing to remove member h2 (2): afterwards only 1 of the 2 remaining voting members would be healthy, and a quorum of 2 is 2, so the cluster would stop; " +
				"unhealthy: h3 (status of member h3: cannot connect to https://10.0.0.3:2379: connection refused). Bring those members back, or remove them first"},
		{name: "the member that is down", nodes: []bedNode{h1, h2, h3Gone}, view: threeDown, arg: "h3", member: 3, node: "h3"},

		// --delete-node is for a host that is gone: its kubelet's lease says so.
		{name: "--delete-node for a host that is up", nodes: []bedNode{h1, h2, h3}, view: etcdfake.View{Statuses: up(m1, m2, m3)}, arg: "h2", deleteNode: true,
			err: "--delete-node: node h2 is up (Ready, its kubelet renewed its node lease 5s ago), so its host is not gone; remove the member without --delete-node (the host leaves cleanly), then `kubeadm reset` the host before deleting its node"},
		{name: "--delete-node for a host that is gone", nodes: []bedNode{h1, h2, h3Gone}, view: threeDown, arg: "h3", deleteNode: true, member: 3, node: "h3"},
		{name: "--delete-node for a member without a node", nodes: []bedNode{h1, h2, h3}, view: etcdfake.View{Statuses: up(m1, m2, m3, mGone)}, arg: "old-cp", deleteNode: true, member: 0x1a},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, cs, obs := fakeObserve(t, tc.nodes, tc.view)
			m, node, err := s.removeTarget(context.Background(), obs, MemberOptions{Target: tc.arg, DeleteNode: tc.deleteNode})
			switch {
			case tc.err != "" && (err == nil || err.Error() != tc.err):
				t.Errorf("error %v\nwant %s", err, tc.err)
			case tc.err == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.err == "" && (m.ID != tc.member || node != tc.node):
				t.Errorf("removes member %x on %q, want %x on %q", m.ID, node, tc.member, tc.node)
			}
			if ch := mutations(cs); len(ch) != 0 {
				t.Errorf("deciding changed the cluster: %v", ch)
			}
		})
	}
}

// TestReplaceTarget: which node's member `kubectl etcd replace NODE` starts
// over, or why it refuses, decided before anything changes.
func TestReplaceTarget(t *testing.T) {
	for _, tc := range []struct {
		name   string
		nodes  []bedNode
		view   etcdfake.View
		arg    string
		member uint64
		err    string
	}{
		{name: "unknown name", nodes: []bedNode{h1, h2None, h3Work}, view: etcdfake.View{Statuses: up(m1)}, arg: "nope",
			err: `"nope" is not a control-plane node of this cluster (control-plane nodes: h1, h2)`},
		{name: "a worker node", nodes: []bedNode{h1, h2None, h3Work}, view: etcdfake.View{Statuses: up(m1)}, arg: "h3",
			err: "node h3 is not a control-plane node (it has no node-role.kubernetes.io/control-plane label): stacked etcd members run only on control-plane nodes"},
		{name: "a control-plane node without a member", nodes: []bedNode{h1, h2None, h3Work}, view: etcdfake.View{Statuses: up(m1)}, arg: "h2",
			err: "node h2 has no etcd member to replace; `kubectl etcd scale --nodes ...` adds one"},
		{name: "the last member", nodes: []bedNode{h1, h2None, h3Work}, view: etcdfake.View{Statuses: up(m1)}, arg: "h1",
			err: "replacing h1's member: " + lastMember + " (to rebuild a cluster from its only member's loss, restore a snapshot)"},
		// A member's name or ID is not a node: replace runs on the node.
		{name: "a member named, not a node", nodes: []bedNode{h1, h2, h3}, view: etcdfake.View{Statuses: up(m1, m2, m3)}, arg: "2",
			err: `"2" is not a control-plane node of this cluster (control-plane nodes: h1, h2, h3)`},
		{name: "a healthy member while another is down", nodes: []bedNode{h1, h2, h3Gone}, view: etcdfake.View{Statuses: append(up(m1, m2), etcdfake.Down(m3))}, arg: "h1",
			err: "replacing h1's member: refusing to remove member h1 (1): afterwards only 1 of the 2 remaining voting members would be healthy, and a quorum of 2 is 2, so the cluster would stop; " +
				"unhealthy: h3 (status of member h3: cannot connect to https://10.0.0.3:2379: connection refused). Bring those members back, or remove them first (to rebuild a cluster from its only member's loss, restore a snapshot)"},
		{name: "the member that is down", nodes: []bedNode{h1, h2, h3Gone}, view: etcdfake.View{Statuses: append(up(m1, m2), etcdfake.Down(m3))}, arg: "h3", member: 3},
		{name: "three healthy members", nodes: []bedNode{h1, h2, h3}, view: etcdfake.View{Statuses: up(m1, m2, m3)}, arg: "h2", member: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, cs, obs := fakeObserve(t, tc.nodes, tc.view)
			n, m, err := s.replaceTarget(context.Background(), obs, tc.arg)
			switch {
			case tc.err != "" && (err == nil || err.Error() != tc.err):
				t.Errorf("error %v\nwant %s", err, tc.err)
			case tc.err == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.err == "" && (m == nil || m.ID != tc.member || n.Name != tc.arg):
				t.Errorf("replaces %+v on %q, want member %x on %s", m, n.Name, tc.member, tc.arg)
			}
			if ch := mutations(cs); len(ch) != 0 {
				t.Errorf("deciding changed the cluster: %v", ch)
			}
		})
	}
}

// TestObserveAPI: the control-plane nodes are those with kubeadm's label
// (with their address and readiness), the etcd pods' nodes and the
// apiservers' etcd servers come from the mirror pods, and a cluster without
// an etcd pod is refused.
func TestObserveAPI(t *testing.T) {
	_, _, obs := fakeObserve(t, []bedNode{h1, h2None, h3Work}, etcdfake.View{Statuses: up(m1)})
	if got := fmt.Sprint(obs.nodes); got != "[{h1 10.0.0.1 true} {h2 10.0.0.2 true}]" {
		t.Errorf("nodes %s", got)
	}
	if got := fmt.Sprint(obs.etcdPods, obs.apis); got != "[h1] map[h1:https://127.0.0.1:2379 h2:https://127.0.0.1:2379]" {
		t.Errorf("etcd pods, apiservers: %s", got)
	}
	var objs []runtime.Object
	for _, n := range []bedNode{h2None, h3Work} {
		objs = append(objs, n.objects()...)
	}
	s := &Session{Clientset: fake.NewClientset(objs...)}
	if _, err := s.observeAPI(context.Background()); err == nil || err.Error() != "no etcd static pod in kube-system: this is not a kubeadm cluster with stacked etcd, or every member's host is down" {
		t.Errorf("no etcd pod: %v", err)
	}
}
