// Package workstation is the kubectl plugin's side of every verb: it reads
// the cluster through the apiserver (control-plane nodes, etcd members
// through the apiserver's port-forward, the apiservers' --etcd-servers),
// decides what to change (ScalePlan and the quorum checks are pure
// functions over that observed state, tested with tables), and carries it
// out as pkg/plan plans whose host steps run through the typed host API
// (pkg/hostapi) on the hosts.
package workstation

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

// Node is a control-plane node as the workstation sees it.
type Node struct {
	Name    string
	Address string // InternalIP: kubeadm's advertise address for the host
	Ready   bool
}

// Change is one membership step.
type Change struct {
	Kind string // "add" or "remove"
	Node string // the host, when known
	// Member is set for removals.
	Member *etcdcluster.Member
	// Resume: the node has a learner of an unfinished addition, or a
	// member added there that never started (a failed join).
	Resume bool
	// Unstarted: the member removed was added but never started, and its
	// node cannot start it (not Ready) or it has none.
	Unstarted bool
}

func (c Change) String() string {
	if c.Kind == "add" && c.Resume {
		return "finish adding the member on " + c.Node + " (added by an interrupted run or a failed join: started, or promoted, here)"
	}
	if c.Kind == "add" {
		return "add a member on " + c.Node
	}
	if c.Unstarted && c.Node != "" {
		return fmt.Sprintf("remove member %x, added on %s but never started (the node is not Ready to start it)", c.Member.ID, c.Node)
	}
	if c.Unstarted {
		return fmt.Sprintf("remove member %x, added but never started, whose peer URL %s is no control-plane node's", c.Member.ID, strings.Join(c.Member.PeerURLs, ","))
	}
	if c.Node != "" {
		return fmt.Sprintf("remove member %s (%x) on %s", c.Member, c.Member.ID, c.Node)
	}
	return fmt.Sprintf("remove member %s (%x), which has no control-plane node", c.Member, c.Member.ID)
}

// stepName names the change as a plan step.
func (c Change) stepName() string {
	switch {
	case c.Kind == "add":
		return "add " + c.Node
	case c.Node != "":
		return "remove " + c.Node
	}
	return fmt.Sprintf("remove %s", c.Member)
}

// Target says what the member set should become: a count, or exact nodes.
type Target struct {
	Replicas int
	Nodes    []string
}

// ScaleChanges is the outcome of ScalePlan: the changes in order, and warnings to print.
type ScaleChanges struct {
	Changes  []Change
	Warnings []string
}

// NodeOf finds the node a member runs on: by peer URL host = node address,
// else by name (kubeadm names members after nodes).
func NodeOf(m etcdcluster.Member, nodes []Node) (Node, bool) {
	for _, u := range m.PeerURLs {
		if pu, err := url.Parse(u); err == nil {
			for _, n := range nodes {
				if n.Address != "" && net.ParseIP(pu.Hostname()).Equal(net.ParseIP(n.Address)) {
					return n, true
				}
			}
		}
	}
	for _, n := range nodes {
		if m.Name != "" && m.Name == n.Name {
			return n, true
		}
	}
	return Node{}, false
}

// ScalePlan computes the membership changes that make the members match t,
// one at a time: additions first (a cluster grows before it shrinks, so it
// never has less fault tolerance than at either end), then removals. Nodes
// are chosen deterministically: existing healthy members stay; new members go
// to Ready control-plane nodes in name order; removals take unhealthy members
// first, then members without a control-plane node, then the last by name.
func ScalePlan(nodes []Node, members []etcdcluster.Member, statuses []etcdcluster.Status, t Target) (*ScaleChanges, error) {
	sorted := append([]Node(nil), nodes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	byName := map[string]Node{}
	for _, n := range sorted {
		byName[n.Name] = n
	}
	healthy := map[uint64]bool{}
	for _, s := range statuses {
		healthy[s.Member.ID] = s.Healthy
	}
	type placed struct {
		m    etcdcluster.Member
		node string
		// dead: added, never started, and its node cannot start it now
		// (not Ready) or it has none. It only costs the quorum a vote, so
		// it goes; the node, if wanted, gets a fresh member when Ready.
		dead bool
	}
	var current []placed
	onNode := map[string]bool{}
	for _, m := range members {
		p := placed{m: m}
		// An unstarted member has no name yet: NodeOf places it by its
		// peer URL's address alone, never by name.
		n, ok := NodeOf(m, sorted)
		if ok {
			p.node = n.Name
		}
		p.dead = !m.Started() && (!ok || !n.Ready)
		if ok && !p.dead {
			onNode[n.Name] = true
		}
		current = append(current, p)
	}

	var want map[string]bool
	plan := &ScaleChanges{}
	switch {
	case len(t.Nodes) > 0 && t.Replicas > 0:
		return nil, errors.New("give either --replicas or --nodes, not both")
	case len(t.Nodes) > 0:
		want = map[string]bool{}
		for _, name := range t.Nodes {
			if _, ok := byName[name]; !ok {
				return nil, fmt.Errorf("node %q is not a control-plane node of this cluster (control-plane nodes: %s)", name, names(sorted))
			}
			want[name] = true
		}
	case t.Replicas < 1:
		return nil, fmt.Errorf("--replicas must be at least 1, got %d: etcd cannot run with no members (to rebuild from nothing, see restore)", t.Replicas)
	case t.Replicas > len(sorted):
		return nil, fmt.Errorf("--replicas %d is more than the %d control-plane nodes (%s): join more control-plane nodes first", t.Replicas, len(sorted), names(sorted))
	default:
		want = map[string]bool{}
		// Keep healthy members on control-plane nodes, in name order.
		var keep []string
		for _, n := range sorted {
			if onNode[n.Name] {
				for _, p := range current {
					if p.node == n.Name && healthy[p.m.ID] {
						keep = append(keep, n.Name)
					}
				}
			}
		}
		for _, n := range keep {
			if len(want) < t.Replicas {
				want[n] = true
			}
		}
		// Then members an earlier add left unfinished on a Ready node (an
		// unstarted member is not healthy yet): finishing one is cheaper
		// than a new member elsewhere, and it leaves no member to remove.
		for _, n := range sorted {
			if len(want) >= t.Replicas || want[n.Name] || !onNode[n.Name] || !n.Ready {
				continue
			}
			for _, p := range current {
				if p.node == n.Name && !p.dead && !p.m.Started() {
					want[n.Name] = true
				}
			}
		}
		for _, n := range sorted {
			if len(want) < t.Replicas && !want[n.Name] && !onNode[n.Name] && n.Ready {
				want[n.Name] = true
			}
		}
		// Still short: members on nodes that are not healthy right now stay.
		for _, n := range sorted {
			if len(want) < t.Replicas && !want[n.Name] && onNode[n.Name] {
				want[n.Name] = true
			}
		}
		if len(want) < t.Replicas {
			return nil, fmt.Errorf("--replicas %d: only %d control-plane nodes are Ready to take a member (%s)", t.Replicas, len(want), names(sorted))
		}
	}
	count := len(want)
	if count%2 == 0 {
		plan.Warnings = append(plan.Warnings, fmt.Sprintf("%d members tolerate no more failures than %d: an odd count is better", count, count-1))
	}
	// A learner is an addition an earlier run did not finish (interrupted
	// before the promotion), and an unstarted member on a Ready node one
	// whose host never started it (a join that failed between the member
	// add and the start, kubeadm's or ours): adding on its node again
	// resumes it, as join does, with the member the cluster already has.
	unfinished := map[string]bool{}
	for _, p := range current {
		if p.node != "" && !p.dead && (p.m.IsLearner || !p.m.Started()) {
			unfinished[p.node] = true
		}
	}
	for _, n := range sorted {
		if want[n.Name] && (!onNode[n.Name] || unfinished[n.Name]) {
			if !n.Ready {
				return nil, fmt.Errorf("node %s is not Ready: its kubelet cannot run the pod that adds its member", n.Name)
			}
			plan.Changes = append(plan.Changes, Change{Kind: "add", Node: n.Name, Resume: unfinished[n.Name]})
		}
	}
	var removals []placed
	for _, p := range current {
		if p.node == "" || !want[p.node] || p.dead {
			removals = append(removals, p)
		}
	}
	sort.SliceStable(removals, func(i, j int) bool {
		a, b := removals[i], removals[j]
		if healthy[a.m.ID] != healthy[b.m.ID] {
			return !healthy[a.m.ID]
		}
		if (a.node == "") != (b.node == "") {
			return a.node == ""
		}
		return a.node > b.node
	})
	for _, p := range removals {
		m := p.m
		plan.Changes = append(plan.Changes, Change{Kind: "remove", Node: p.node, Member: &m, Unstarted: p.dead})
	}
	return plan, nil
}

func names(nodes []Node) string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}
