package workstation

import (
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// After a recover on cp-a cut off cp-b and cp-c: cp-b's node is still
// there (NotReady, its etcd mirror pod too), cp-c's node was deleted, and
// cp-d joined later with a new member.
func TestCutOffAfterRecovery(t *testing.T) {
	a, d := member(1, "cp-a", "10.0.0.1"), member(4, "cp-d", "10.0.0.4")
	old := func(id uint64, name, addr string) hostapi.Member {
		return hostapi.Member{ID: id, Name: name, PeerURLs: []string{"https://" + addr + ":2380"}}
	}
	marker := &hostapi.RecoveryMarker{Verb: "recover", Host: "cp-a", Time: time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC),
		RemovedMembers: []hostapi.Member{old(2, "cp-b", "10.0.0.2"), old(3, "cp-c", "10.0.0.3")}}
	obs := &observed{
		nodes:    []Node{{"cp-a", "10.0.0.1", true}, {"cp-b", "10.0.0.2", false}, {"cp-d", "10.0.0.4", true}},
		etcdPods: []string{"cp-a", "cp-b", "cp-d"},
		members:  []etcdcluster.Member{a, d},
		statuses: healthyAll(a, d),
		marker:   marker,
	}
	for _, tc := range []struct {
		arg      string
		cut      bool
		withNode bool
	}{
		{"cp-b", true, true},   // node left, member cut off
		{"2", true, true},      // the same by hex ID
		{"cp-c", true, false},  // node deleted already: a no-op
		{"cp-a", false, false}, // has a member: the normal remove
		{"cp-d", false, false},
		{"4", false, false},
		{"cp-x", false, false}, // unknown: the normal "neither" error
	} {
		c, ok := obs.cutOffTarget(tc.arg)
		if ok != tc.cut || (ok && (c.node != nil) != tc.withNode) {
			t.Errorf("cutOffTarget(%q) = %+v, %v; want cut %v, with node %v", tc.arg, c, ok, tc.cut, tc.withNode)
		}
	}

	st := obs.report()
	if len(st.Drift) != 1 || st.Drift[0].Kind != "cut-off-by-recovery" || st.Drift[0].Node != "cp-b" ||
		!strings.Contains(st.Drift[0].Detail, "the recover on cp-a at 2026-11-27T02:00:00Z cut it off") ||
		!strings.Contains(st.Drift[0].Detail, "kubectl etcd remove cp-b --delete-node") ||
		!strings.Contains(st.Drift[0].Detail, "kubectl-etcd join --endpoints https://10.0.0.1:2379,https://10.0.0.4:2379") {
		t.Errorf("drift: %+v", st.Drift)
	}
	for _, h := range st.Hosts {
		if (h.Node == "cp-b") != (h.CutOffBy == "recover on cp-a at 2026-11-27T02:00:00Z") {
			t.Errorf("host row %+v", h)
		}
	}
	if !strings.HasSuffix(st.Summary, "3 control-plane nodes, 1 of them cut off by the recover on cp-a (cp-b)") {
		t.Errorf("summary %q", st.Summary)
	}

	// A node still shown Ready (the node lifecycle controller lags) whose
	// kubelet has not renewed its lease for minutes is down; one whose
	// kubelet renewed it just now is up, and --delete-node is not for it.
	obs.now = time.Date(2026, 11, 27, 2, 10, 0, 0, time.UTC)
	obs.nodes[1].Ready = true
	obs.leases = map[string]nodeLease{"cp-b": {renewed: obs.now.Add(-3 * time.Minute), duration: 40 * time.Second}}
	if down, why := obs.down(obs.nodes[1]); !down || why != "its kubelet last renewed its node lease 3m0s ago" {
		t.Errorf("down(cp-b) with a stale lease = %v, %q", down, why)
	}
	obs.leases["cp-b"] = nodeLease{renewed: obs.now.Add(-5 * time.Second), duration: 40 * time.Second}
	if down, _ := obs.down(obs.nodes[1]); down {
		t.Error("down(cp-b) with a fresh lease")
	}
	if st := obs.report(); len(st.Drift) != 1 || !strings.Contains(st.Drift[0].Detail, "cp-b is up (Ready, its kubelet renewed its node lease 5s ago), so its host is back: run `kubectl-etcd join") {
		t.Errorf("drift for a cut-off host that is back: %+v", st.Drift)
	}

	// Ready without a lease: nothing shows it alive.
	delete(obs.leases, "cp-b")
	if down, why := obs.down(obs.nodes[1]); !down || !strings.Contains(why, "no node lease") {
		t.Errorf("down(cp-b) Ready without a lease = %v, %q", down, why)
	}

	// A host that came back and rejoined has a member again: not cut off,
	// even though the marker still names its old member.
	b2 := member(5, "cp-b", "10.0.0.2")
	obs.members = append(obs.members, b2)
	obs.statuses = healthyAll(obs.members...)
	obs.nodes[1].Ready = true
	if c, ok := obs.cutOffTarget("cp-b"); ok {
		t.Errorf("cp-b rejoined, yet cut off: %+v", c)
	}
	if st := obs.report(); len(st.Drift) != 0 {
		t.Errorf("drift after cp-b rejoined: %+v", st.Drift)
	}
}
