package workstation

import (
	"strings"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

func member(id uint64, name, addr string) etcdcluster.Member {
	return etcdcluster.Member{ID: id, Name: name, PeerURLs: []string{"https://" + addr + ":2380"}, ClientURLs: []string{"https://" + addr + ":2379"}}
}

func learner(m etcdcluster.Member) etcdcluster.Member {
	m.IsLearner = true
	return m
}

func healthyAll(ms ...etcdcluster.Member) []etcdcluster.Status {
	var out []etcdcluster.Status
	for _, m := range ms {
		out = append(out, etcdcluster.Status{Member: m, Healthy: true})
	}
	return out
}

var threeNodes = []Node{{"cp-b", "10.0.0.2", true}, {"cp-a", "10.0.0.1", true}, {"cp-c", "10.0.0.3", true}}

// cNotReady: cp-c's kubelet is not Ready.
var cNotReady = []Node{{"cp-a", "10.0.0.1", true}, {"cp-b", "10.0.0.2", true}, {"cp-c", "10.0.0.3", false}}

// changes lists the plan as "add|resume|remove <node>".
func changes(p *ScaleChanges) string {
	var s []string
	for _, c := range p.Changes {
		kind := c.Kind
		if c.Resume {
			kind = "resume"
		}
		s = append(s, kind+" "+c.Node)
	}
	return strings.Join(s, ", ")
}

func TestScalePlan(t *testing.T) {
	a, b, c := member(1, "cp-a", "10.0.0.1"), member(2, "cp-b", "10.0.0.2"), member(3, "cp-c", "10.0.0.3")
	orphan := member(9, "gone", "10.0.0.9")
	// Added, never started (a failed join): no name, no client URL.
	unstartedC := etcdcluster.Member{ID: 7, PeerURLs: []string{"https://10.0.0.3:2380"}}
	unstartedElsewhere := etcdcluster.Member{ID: 8, PeerURLs: []string{"https://10.0.0.9:2380"}}
	// Its peer URL is no node's (the failed join's host is gone).
	unstartedGone := etcdcluster.Member{ID: 6, PeerURLs: []string{"https://10.0.0.8:2380"}}
	down := func(ms ...etcdcluster.Member) []etcdcluster.Status {
		var out []etcdcluster.Status
		for _, m := range ms {
			out = append(out, etcdcluster.Status{Member: m})
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		nodes    []Node
		members  []etcdcluster.Member
		statuses []etcdcluster.Status
		target   Target
		want     string
		warn     bool
		err      string
	}{
		{name: "1 to 3 in name order", nodes: threeNodes, members: []etcdcluster.Member{a}, statuses: healthyAll(a), target: Target{Replicas: 3}, want: "add cp-b, add cp-c"},
		{name: "already 3", nodes: threeNodes, members: []etcdcluster.Member{a, b, c}, statuses: healthyAll(a, b, c), target: Target{Replicas: 3}, want: ""},
		{name: "3 to 1 keeps the first", nodes: threeNodes, members: []etcdcluster.Member{a, b, c}, statuses: healthyAll(a, b, c), target: Target{Replicas: 1}, want: "remove cp-c, remove cp-b"},
		{name: "unhealthy member goes first", nodes: threeNodes, members: []etcdcluster.Member{a, b, c}, statuses: append(healthyAll(a, c), etcdcluster.Status{Member: b}), target: Target{Replicas: 1}, want: "remove cp-b, remove cp-c"},
		{name: "member without node removed", nodes: threeNodes, members: []etcdcluster.Member{a, b, c, orphan}, statuses: healthyAll(a, b, c, orphan), target: Target{Replicas: 3}, want: "remove "},
		{name: "exact nodes: move", nodes: threeNodes, members: []etcdcluster.Member{a, b}, statuses: healthyAll(a, b), target: Target{Nodes: []string{"cp-a", "cp-c"}}, want: "add cp-c, remove cp-b", warn: true},
		{name: "even count warns", nodes: threeNodes, members: []etcdcluster.Member{a}, statuses: healthyAll(a), target: Target{Replicas: 2}, want: "add cp-b", warn: true},
		{name: "zero", nodes: threeNodes, members: []etcdcluster.Member{a}, target: Target{Replicas: 0}, err: "at least 1"},
		{name: "beyond candidates", nodes: threeNodes, members: []etcdcluster.Member{a}, target: Target{Replicas: 5}, err: "more than the 3 control-plane nodes"},
		{name: "unknown node", nodes: threeNodes, members: []etcdcluster.Member{a}, target: Target{Nodes: []string{"cp-a", "worker-1"}}, err: `"worker-1" is not a control-plane node`},
		{name: "not ready node skipped", nodes: []Node{{"cp-a", "10.0.0.1", true}, {"cp-b", "10.0.0.2", false}, {"cp-c", "10.0.0.3", true}}, members: []etcdcluster.Member{a}, statuses: healthyAll(a), target: Target{Replicas: 2}, want: "add cp-c", warn: true},
		{name: "interrupted add resumes", nodes: threeNodes, members: []etcdcluster.Member{a, learner(b)}, statuses: healthyAll(a, learner(b)), target: Target{Replicas: 2}, want: "resume cp-b", warn: true},
		{name: "interrupted add resumes, then the next", nodes: threeNodes, members: []etcdcluster.Member{a, learner(b)}, statuses: healthyAll(a, learner(b)), target: Target{Replicas: 3}, want: "resume cp-b, add cp-c"},
		{name: "unwanted learner removed", nodes: threeNodes, members: []etcdcluster.Member{a, learner(c)}, statuses: healthyAll(a, learner(c)), target: Target{Nodes: []string{"cp-a"}}, want: "remove cp-c"},
		{name: "unstarted voter on a Ready node is started", nodes: threeNodes, members: []etcdcluster.Member{a, b, unstartedC},
			statuses: append(healthyAll(a, b), down(unstartedC)...), target: Target{Replicas: 3}, want: "resume cp-c"},
		{name: "unstarted voter on a Ready node is started, not replaced by a member on a free node", nodes: threeNodes, members: []etcdcluster.Member{a, unstartedC},
			statuses: append(healthyAll(a), down(unstartedC)...), target: Target{Replicas: 2}, want: "resume cp-c", warn: true},
		{name: "unstarted voter on a node that is not Ready is removed", nodes: cNotReady, members: []etcdcluster.Member{a, b, unstartedC},
			statuses: append(healthyAll(a, b), down(unstartedC)...), target: Target{Replicas: 2}, want: "remove cp-c", warn: true},
		{name: "unstarted voter on a node that is not Ready: nothing to put in its place", nodes: cNotReady, members: []etcdcluster.Member{a, b, unstartedC},
			statuses: append(healthyAll(a, b), down(unstartedC)...), target: Target{Replicas: 3}, err: "only 2 control-plane nodes are Ready"},
		{name: "unstarted voter without a node is removed", nodes: threeNodes, members: []etcdcluster.Member{a, b, c, unstartedElsewhere},
			statuses: append(healthyAll(a, b, c), down(unstartedElsewhere)...), target: Target{Replicas: 3}, want: "remove "},
		{name: "unstarted voter of a gone host: replaced by a member on a Ready node", nodes: threeNodes, members: []etcdcluster.Member{a, unstartedGone},
			statuses: append(healthyAll(a), down(unstartedGone)...), target: Target{Replicas: 2}, want: "add cp-b, remove ", warn: true},
		{name: "unstarted voter on a Ready node not wanted is removed", nodes: threeNodes, members: []etcdcluster.Member{a, unstartedC},
			statuses: append(healthyAll(a), down(unstartedC)...), target: Target{Nodes: []string{"cp-a"}}, want: "remove cp-c"},
		{name: "both flags", nodes: threeNodes, members: []etcdcluster.Member{a}, target: Target{Replicas: 1, Nodes: []string{"cp-a"}}, err: "give either --replicas or --nodes, not both"},
		{name: "short of healthy members, an unhealthy one stays", nodes: cNotReady, members: []etcdcluster.Member{a, b}, statuses: append(healthyAll(a), etcdcluster.Status{Member: b}), target: Target{Replicas: 2}, want: "", warn: true},
		{name: "not enough Ready nodes", nodes: cNotReady, members: []etcdcluster.Member{a}, statuses: healthyAll(a), target: Target{Replicas: 3},
			err: "--replicas 3: only 2 control-plane nodes are Ready to take a member (cp-a, cp-b, cp-c)"},
		{name: "a named node that is not Ready", nodes: cNotReady, members: []etcdcluster.Member{a}, statuses: healthyAll(a), target: Target{Nodes: []string{"cp-a", "cp-b", "cp-c"}},
			err: "node cp-c is not Ready: its kubelet cannot run the pod that adds its member"},
		{name: "no control-plane nodes", members: []etcdcluster.Member{a}, target: Target{Replicas: 1},
			err: "--replicas 1 is more than the 0 control-plane nodes (none): join more control-plane nodes first"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ScalePlan(tc.nodes, tc.members, tc.statuses, tc.target)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("want error %q, got %v", tc.err, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := changes(p); got != tc.want {
				t.Errorf("changes %q, want %q", got, tc.want)
			}
			if (len(p.Warnings) > 0) != tc.warn {
				t.Errorf("warnings %v", p.Warnings)
			}
		})
	}
}

func TestUnstartedChangeSays(t *testing.T) {
	m := etcdcluster.Member{ID: 0xab, PeerURLs: []string{"https://10.0.0.3:2380"}}
	if got := (Change{Kind: "remove", Node: "cp-c", Member: &m, Unstarted: true}).String(); got != "remove member ab, added on cp-c but never started (the node is not Ready to start it)" {
		t.Errorf("on a node: %q", got)
	}
	if got := (Change{Kind: "remove", Member: &m, Unstarted: true}).String(); !strings.Contains(got, "never started, whose peer URL https://10.0.0.3:2380 is no control-plane node's") {
		t.Errorf("without a node: %q", got)
	}
}

func TestNodeOf(t *testing.T) {
	n, ok := NodeOf(member(1, "", "10.0.0.3"), threeNodes)
	if !ok || n.Name != "cp-c" {
		t.Errorf("by address: %v %v", n, ok)
	}
	n, ok = NodeOf(etcdcluster.Member{ID: 2, Name: "cp-b", PeerURLs: []string{"https://192.0.2.1:2380"}}, threeNodes)
	if !ok || n.Name != "cp-b" {
		t.Errorf("by name: %v %v", n, ok)
	}
	if _, ok := NodeOf(member(3, "x", "192.0.2.9"), threeNodes); ok {
		t.Error("matched a member with no node")
	}
}
