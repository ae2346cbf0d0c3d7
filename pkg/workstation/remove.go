package workstation

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
)

// MemberOptions name one member (by node, member name or hex ID) and say
// whether to only print the plan.
type MemberOptions struct {
	Target     string
	DryRun     bool
	NoSnapshot bool
	// DeleteNode (remove only): also delete the node's Node object and its
	// control-plane mirror pods, for a host that is gone for good. Refused
	// for a host that is up (its kubelet renews its node lease).
	DeleteNode bool
	// AcceptDrift (replace only): see ScaleOptions.AcceptDrift.
	AcceptDrift bool
}

// resolve finds the member an operator named: a control-plane node's
// member, or a member by name or hex ID (a member whose node is gone has
// only those).
func (s *Session) resolve(ctx context.Context, obs *observed, arg string) (etcdcluster.Member, string, error) {
	if n, ok := nodeNamed(obs.nodes, arg); ok {
		m := memberAt(obs.members, n)
		if m == nil {
			return etcdcluster.Member{}, "", fmt.Errorf("control-plane node %s has no etcd member (members: %s)", arg, memberNames(obs))
		}
		return *m, n.Name, nil
	}
	id, idErr := strconv.ParseUint(arg, 16, 64)
	for _, m := range obs.members {
		if m.Name == arg || (idErr == nil && m.ID == id) {
			node := ""
			if n, ok := NodeOf(m, obs.nodes); ok {
				node = n.Name
			}
			return m, node, nil
		}
	}
	if err := s.notControlPlane(ctx, arg); err != nil {
		return etcdcluster.Member{}, "", err
	}
	return etcdcluster.Member{}, "", fmt.Errorf("%q is neither a control-plane node nor an etcd member (control-plane nodes: %s; members: %s)",
		arg, names(obs.nodes), memberNames(obs))
}

// notControlPlane explains a name that is a node, but not a control-plane one.
func (s *Session) notControlPlane(ctx context.Context, name string) error {
	n, err := s.Clientset.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || err != nil {
		return nil
	}
	if _, ok := n.Labels[controlPlaneLabel]; !ok {
		return fmt.Errorf("node %s is not a control-plane node (it has no %s label): stacked etcd members run only on control-plane nodes", name, controlPlaneLabel)
	}
	return nil
}

func memberNames(obs *observed) string {
	var out []string
	for _, m := range obs.members {
		out = append(out, fmt.Sprintf("%s (%x)", m, m.ID))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// Remove removes one member, safely: refused if it could lose quorum or is
// the last member. Its host, when it can run a pod, leaves the way `leave`
// does (apiserver re-pointed first, leadership moved, member removed, etcd
// stopped, data moved aside); a dead or gone host's member is removed
// through etcd alone. Afterwards, member-less hosts whose apiserver still
// lists the removed member are pointed at the members left.
func (s *Session) Remove(ctx context.Context, o MemberOptions) (*Result, error) {
	obs, err := s.observe(ctx)
	if err != nil {
		return nil, err
	}
	if c, ok := obs.cutOffTarget(o.Target); ok {
		obs.client.Close()
		return s.removeCutOff(ctx, obs, c, o)
	}
	m, node, err := s.removeTarget(ctx, obs, o)
	obs.client.Close()
	if err != nil {
		return nil, err
	}
	if err := obs.checkNoAlarms(m.ID); err != nil {
		return nil, err
	}
	n, nodeKnown := nodeNamed(obs.nodes, node)
	c := Change{Kind: "remove", Node: node, Member: &m}
	p := &plan.Plan{Title: c.String()}
	if !o.NoSnapshot {
		snapNode, err := snapshotNode(obs)
		if err != nil {
			return nil, err
		}
		s.addSnapshotStep(p, snapNode, "pre-remove")
	}
	how := fmt.Sprintf("remove member %x through etcd only: %s", m.ID, hostGoneWhy(node, nodeKnown))
	if nodeKnown && n.Ready {
		how = fmt.Sprintf("on %s (host pod, `kubectl-etcd leave`): point its kube-apiserver at the other members, move leadership away, remove the member, stop etcd, move its data aside", node)
	}
	p.AddSteps(c.stepName(), how+"; then point member-less hosts' kube-apiservers that still list it at the members left",
		func(ctx context.Context) (string, []plan.StepResult, error) {
			note, sub, err := s.apply(ctx, c, changeOptions{})
			if err != nil {
				return note, sub, fmt.Errorf("removing member %s (%x): %w", m, m.ID, err)
			}
			return note, sub, nil
		})
	switch {
	case o.DeleteNode && nodeKnown:
		p.Add("delete node "+node, fmt.Sprintf("delete node %s (down) and its control-plane mirror pods", node), func(ctx context.Context) (string, error) {
			return "", s.deleteNode(ctx, node)
		})
	case o.DeleteNode:
		p.Notes = append(p.Notes, fmt.Sprintf("(--delete-node: member %s runs on no control-plane node, so there is no node to delete)", m))
	}
	return s.execute(ctx, "remove", p, o.DryRun, obs)
}

// removeTarget is Remove's verdict on what the operator named, before
// anything is changed: the member to remove and its node ("" when it runs on
// none), or why not (an unknown name, a node that is not a control-plane
// node or has no member, a removal that could lose quorum or the last
// member, --delete-node for a host that is up).
func (s *Session) removeTarget(ctx context.Context, obs *observed, o MemberOptions) (etcdcluster.Member, string, error) {
	m, node, err := s.resolve(ctx, obs, o.Target)
	if err == nil {
		err = etcdcluster.CheckRemove(obs.members, obs.statuses, m.ID)
	}
	if err != nil {
		return etcdcluster.Member{}, "", err
	}
	n, nodeKnown := nodeNamed(obs.nodes, node)
	if down, why := obs.down(n); o.DeleteNode && nodeKnown && !down {
		return etcdcluster.Member{}, "", fmt.Errorf("--delete-node: node %s is up (%s), so its host is not gone; remove the member without --delete-node (the host leaves cleanly), then `kubeadm reset` the host before deleting its node", node, why)
	}
	return m, node, nil
}

func hostGoneWhy(node string, known bool) string {
	switch {
	case node == "":
		return "it runs on no control-plane node"
	case !known:
		return node + " is not a control-plane node any more"
	}
	return node + " is NotReady, so it cannot run a host pod; when it comes back, run `kubectl-etcd leave` (or `join` to add it back) on it as root"
}

// Replace starts a node's member over: remove it, move its data aside, add
// the node back as a fresh learner, promote. It runs the host-local
// `join --replace-member ID` on the node; a node that cannot run pods (its
// apiserver is down with its member) gets that exact command to run.
func (s *Session) Replace(ctx context.Context, o MemberOptions) (*Result, error) {
	obs, err := s.observe(ctx)
	if err != nil {
		return nil, err
	}
	defer obs.client.Close()
	n, m, err := s.replaceTarget(ctx, obs, o.Target)
	if err != nil {
		return nil, err
	}
	if err := obs.checkNoAlarms(0); err != nil {
		return nil, err
	}
	var endpoints []string
	for _, x := range obs.members {
		if x.ID != m.ID && !x.IsLearner {
			endpoints = append(endpoints, x.ClientURLs...)
		}
	}
	carried, err := obs.carryFor(n.Name)
	if err != nil {
		return nil, err
	}
	args, note, err := checkCarry(carried, n.Name, o.AcceptDrift)
	if err != nil {
		return nil, err
	}
	join := hostapi.JoinRequest{Endpoints: endpoints, ReplaceMember: m.ID, EtcdArgs: args}
	p := &plan.Plan{Title: fmt.Sprintf("replace member %s (%x) on %s with a fresh one", m, m.ID, n.Name)}
	if note != "" {
		p.Notes = append(p.Notes, note)
	}
	if !o.NoSnapshot {
		others := &observed{nodes: obs.nodes, statuses: without(obs.statuses, m.ID)}
		snapNode, err := snapshotNode(others)
		if err != nil {
			return nil, err
		}
		s.addSnapshotStep(p, snapNode, "pre-replace")
	}
	p.AddSteps("replace "+n.Name, fmt.Sprintf("on %s (host pod, `kubectl-etcd %s`): point its kube-apiserver at the other members, stop etcd, move its data aside, remove the member, add %s back as a learner, wait until it caught up, promote it, point its kube-apiserver back at it",
		n.Name, strings.Join(hostapi.JoinCall(join).Argv, " "), n.Name),
		func(ctx context.Context) (string, []plan.StepResult, error) {
			joined, err := s.Hosts.Join(ctx, n.Name, join)
			if err != nil {
				return "", stepsOf(joined), fmt.Errorf("replacing member %s (%x) on %s: %w", m, m.ID, n.Name, err)
			}
			s.waitMirror(ctx, n.Name, func(servers string) bool {
				return strings.Contains(servers, "://127.0.0.1:") || strings.Contains(servers, "://[::1]:")
			})
			return "", stepsOf(joined), nil
		})
	return s.execute(ctx, "replace", p, o.DryRun, obs)
}

// replaceTarget is Replace's verdict on the node named, before anything is
// changed: the node and its member, or why not (not a control-plane node,
// no member on it, a removal that could lose quorum or the last member).
func (s *Session) replaceTarget(ctx context.Context, obs *observed, target string) (Node, *etcdcluster.Member, error) {
	n, ok := nodeNamed(obs.nodes, target)
	if !ok {
		if err := s.notControlPlane(ctx, target); err != nil {
			return Node{}, nil, err
		}
		return Node{}, nil, fmt.Errorf("%q is not a control-plane node of this cluster (control-plane nodes: %s)", target, names(obs.nodes))
	}
	m := memberAt(obs.members, n)
	if m == nil {
		return Node{}, nil, fmt.Errorf("node %s has no etcd member to replace; `kubectl etcd scale --nodes ...` adds one", n.Name)
	}
	if err := etcdcluster.CheckRemove(obs.members, obs.statuses, m.ID); err != nil {
		return Node{}, nil, fmt.Errorf("replacing %s's member: %w (to rebuild a cluster from its only member's loss, restore a snapshot)", n.Name, err)
	}
	return n, m, nil
}

// repointOff points the kube-apiservers of member-less hosts that still list
// a removed member at the members left (host-local `leave` does that on a
// host without a member). Hosts that cannot run pods are named, not waited for.
func (s *Session) repointOff(ctx context.Context, removed etcdcluster.Member, removedNode string) {
	obs, err := s.observe(ctx)
	if err != nil {
		fmt.Fprintf(s.Out, "      note: could not check the other apiservers: %v\n", err)
		return
	}
	obs.client.Close()
	// In parallel: each restart of a kube-apiserver takes tens of seconds,
	// and these hosts have no member, so no quorum depends on them.
	var wg sync.WaitGroup
	for _, n := range obs.nodes {
		servers := obs.apis[n.Name]
		if n.Name == removedNode || memberAt(obs.members, n) != nil || !listsAny(servers, removed.ClientURLs) {
			continue
		}
		if !n.Ready {
			fmt.Fprintf(s.Out, "      note: %s's kube-apiserver still lists removed member %s; %s is NotReady: run `kubectl-etcd leave` on it as root\n", n.Name, removed, n.Name)
			continue
		}
		fmt.Fprintf(s.Out, "      %s's kube-apiserver still lists removed member %s (%s): pointing it at the members left\n", n.Name, removed, servers)
		wg.Go(func() {
			if _, err := s.Hosts.Leave(ctx, n.Name); err != nil {
				if errors.Is(err, hostapi.ErrUnreachable) {
					fmt.Fprintf(s.Out, "      note: %v\n", err)
					return
				}
				fmt.Fprintf(s.Out, "      warning: re-pointing %s's kube-apiserver: %v\n", n.Name, err)
			}
		})
	}
	wg.Wait()
}

func without(statuses []etcdcluster.Status, id uint64) []etcdcluster.Status {
	var out []etcdcluster.Status
	for _, st := range statuses {
		if st.Member.ID != id {
			out = append(out, st)
		}
	}
	return out
}

func listsAny(servers string, urls []string) bool {
	for _, u := range urls {
		for _, s := range strings.Split(servers, ",") {
			if strings.TrimSpace(s) == u {
				return true
			}
		}
	}
	return false
}
