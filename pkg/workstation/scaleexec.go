package workstation

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/backup"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
)

// ScaleOptions say what to scale to and how.
type ScaleOptions struct {
	Target Target
	DryRun bool
	// NoSnapshot skips the verified snapshot taken on a member host before
	// the first change.
	NoSnapshot bool
	// AcceptDrift adds members where the members that stay disagree on a
	// setting every member must share: the new ones get kubeadm-config's
	// value. Without it such an addition is refused.
	AcceptDrift bool
}

// Scale makes the member set match the target, one change at a time. Each
// change runs the host-local verb on its host through a host pod — `join`
// (learner, catch up, promote, apiserver back to the local member) or
// `leave` (apiserver to the other members first, leadership away, remove,
// stop, data aside) — and is checked against quorum right before it runs.
// Rerunning after a crash re-observes and plans again, so it converges.
func (s *Session) Scale(ctx context.Context, o ScaleOptions) (*Result, error) {
	obs, err := s.observe(ctx)
	if err != nil {
		return nil, err
	}
	sp, err := ScalePlan(obs.nodes, obs.members, obs.statuses, o.Target)
	obs.client.Close()
	if err != nil {
		return nil, err
	}
	if len(sp.Changes) > 0 {
		if err := obs.checkNoAlarms(0); err != nil {
			return nil, err
		}
	}
	for _, w := range sp.Warnings {
		fmt.Fprintf(s.Out, "Warning: %s\n", w)
	}
	p := &plan.Plan{Title: "scale to " + describeTarget(o.Target)}
	if len(sp.Changes) == 0 {
		p.Notes = append(p.Notes, "the members already match")
	}
	// New members carry what the members that stay run (checked again,
	// on fresh state, right before each addition).
	var leaving []string
	for _, c := range sp.Changes {
		if c.Kind == "remove" && c.Node != "" {
			leaving = append(leaving, c.Node)
		}
	}
	for _, c := range sp.Changes {
		if c.Kind != "add" {
			continue
		}
		carried, err := obs.carryFor(c.Node, leaving...)
		if err != nil {
			return nil, err
		}
		_, note, err := checkCarry(carried, c.Node, o.AcceptDrift)
		if err != nil {
			return nil, err
		}
		if note != "" {
			p.Notes = append(p.Notes, note)
		}
	}
	co := changeOptions{leaving: leaving, acceptDrift: o.AcceptDrift}
	if len(sp.Changes) > 0 && !o.NoSnapshot {
		snapNode, err := snapshotNode(obs)
		if err != nil {
			return nil, err
		}
		s.addSnapshotStep(p, snapNode, "pre-scale")
	}
	for _, c := range sp.Changes {
		p.AddSteps(c.stepName(), c.String(), func(ctx context.Context) (string, []plan.StepResult, error) {
			return s.apply(ctx, c, co)
		})
	}
	return s.execute(ctx, "scale", p, o.DryRun, obs)
}

// snapshotNode picks where the pre-change snapshot is taken: the node of the
// most advanced healthy member (the backup verb snapshots its host's own
// member, so the data never leaves the control-plane hosts).
func snapshotNode(obs *observed) (string, error) {
	// The backup runs in a host pod: a member whose node is not Ready (its
	// kubelet not reporting) cannot take it, however advanced it is. The
	// members of a healthy cluster differ by a few revisions at most.
	statuses := obs.statuses
	var ready []etcdcluster.Status
	for _, st := range obs.statuses {
		if n, ok := NodeOf(st.Member, obs.nodes); ok && n.Ready && st.Healthy {
			ready = append(ready, st)
		}
	}
	if len(ready) > 0 {
		statuses = ready
	}
	src, err := PickSnapshotSource(statuses, obs.nodes)
	if err != nil {
		return "", fmt.Errorf("no member to take the snapshot before the change from: %w (--no-snapshot skips it)", err)
	}
	if src.Node == "" {
		return "", fmt.Errorf("the most advanced member %s runs on no control-plane node, so no host can take the snapshot before the change (--no-snapshot skips it)", src.Member)
	}
	return src.Node, nil
}

func snapshotStep(node, reason string) string {
	return fmt.Sprintf("take a verified snapshot on %s into %s (%s; --no-snapshot skips it)", node, backup.Dir, reason)
}

// snapshotFirst runs the host-local `backup run` on node: a verified
// snapshot of its member into the host's backup directory, kept until
// scheduled backups prune it.
func (s *Session) snapshotFirst(ctx context.Context, node, reason string) error {
	// A host that could not start the pod ran nothing: asked again for a
	// while, as a roll's hosts are (its kubelet may be catching up after
	// an apiserver it talks to was down).
	start := time.Now()
	for {
		err := s.Hosts.BackupRun(ctx, node, hostapi.BackupRunRequest{Reason: reason})
		if err == nil {
			return nil
		}
		if !errors.Is(err, hostapi.ErrUnreachable) || time.Since(start) > rollUnreachableWait {
			return fmt.Errorf("taking the snapshot before the change (nothing was changed; --no-snapshot skips it): %w", err)
		}
		fmt.Fprintf(s.Out, "      %s cannot run a pod yet: asking again\n", node)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
}

func describeTarget(t Target) string {
	if len(t.Nodes) > 0 {
		return "members on exactly " + strings.Join(t.Nodes, ", ")
	}
	return fmt.Sprintf("%d members", t.Replicas)
}

// changeOptions are what a scale's changes share: the nodes whose members
// the scale removes (they do not count as staying for the members it
// adds), and --accept-drift.
type changeOptions struct {
	leaving     []string
	acceptDrift bool
}

// apply carries out one change after checking, on fresh state, that it is
// still safe.
func (s *Session) apply(ctx context.Context, c Change, co changeOptions) (note string, sub []plan.StepResult, err error) {
	obs, err := s.observe(ctx)
	if err != nil {
		return "", nil, err
	}
	defer obs.client.Close()
	var endpoints []string
	for _, m := range obs.members {
		if !m.IsLearner {
			endpoints = append(endpoints, m.ClientURLs...)
		}
	}
	switch c.Kind {
	case "add":
		// A member already added there (an earlier run crashed) is resumed
		// by join; only a new member needs room for a learner.
		node, _ := nodeNamed(obs.nodes, c.Node)
		if memberAt(obs.members, node) == nil {
			if err := etcdcluster.CheckAdd(obs.members, obs.statuses); err != nil {
				return "", nil, err
			}
		}
		var sources []string
		for _, n := range obs.etcdPods {
			if n != c.Node {
				sources = append(sources, n)
			}
		}
		carried, err := obs.carryFor(c.Node, co.leaving...)
		if err != nil {
			return "", nil, err
		}
		args, _, err := checkCarry(carried, c.Node, co.acceptDrift)
		if err != nil {
			return "", nil, err
		}
		if err := s.ensureCA(ctx, c.Node, sources); err != nil {
			return "", nil, err
		}
		joined, err := s.Hosts.Join(ctx, c.Node, hostapi.JoinRequest{Endpoints: endpoints, EtcdArgs: args})
		if err != nil {
			return "", stepsOf(joined), err
		}
		s.waitMirror(ctx, c.Node, func(servers string) bool {
			return strings.Contains(servers, "://127.0.0.1:") || strings.Contains(servers, "://[::1]:")
		})
		return "", stepsOf(joined), nil
	case "remove":
		if err := etcdcluster.CheckRemove(obs.members, obs.statuses, c.Member.ID); err != nil {
			return "", nil, err
		}
		defer s.repointOff(ctx, *c.Member, c.Node)
		if c.Node != "" {
			if n, ok := nodeNamed(obs.nodes, c.Node); ok && n.Ready {
				left, err := s.Hosts.Leave(ctx, c.Node)
				if err == nil {
					s.waitMirror(ctx, c.Node, func(servers string) bool {
						return !strings.Contains(servers, "://127.0.0.1:") && !strings.Contains(servers, "://[::1]:")
					})
					return "", stepsOf(left), nil
				}
				// The pod never started there (Ready is stale: the node
				// died a moment ago): the member goes through etcd alone.
				if !hostapi.Unreachable(err) {
					return "", stepsOf(left), err
				}
				fmt.Fprintf(s.Out, "      %s did not start the host pod: %s\n", c.Node, firstLine(err.Error()))
			}
		}
		// No host to clean (gone, or its kubelet cannot run pods): remove the
		// member through etcd; its host, if it comes back, is refused by
		// the cluster, and `kubectl-etcd leave` (or join) there tidies it.
		fmt.Fprintf(s.Out, "      %s cannot run a host pod: removing member %x through etcd only\n", orNone(c.Node), c.Member.ID)
		if err := obs.client.Remove(ctx, c.Member.ID); err != nil {
			return "", nil, fmt.Errorf("removing member %x: %w", c.Member.ID, err)
		}
		return "removed through etcd only", nil, nil
	}
	return "", nil, fmt.Errorf("unknown change %q", c.Kind)
}

// stepsOf is a host verb's steps, none when it did not answer.
func stepsOf(r *hostapi.VerbResult) []plan.StepResult {
	if r == nil {
		return nil
	}
	return r.Steps
}

// waitMirror waits (bounded) until the kube-apiserver mirror pod of node
// shows the --etcd-servers the host verb just wrote: kubelet updates mirror
// pods a little after the static pod, and status reads them.
func (s *Session) waitMirror(ctx context.Context, node string, ok func(servers string) bool) {
	err := wait.PollUntilContextTimeout(ctx, time.Second, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		apis, err := s.APIServerEtcdServers(ctx)
		if err != nil {
			return false, nil // the apiserver may be restarting: ask again
		}
		servers, found := apis[node]
		return !found || ok(servers), nil
	})
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(s.Out, "      note: the kube-apiserver mirror pod of %s does not show its new --etcd-servers yet\n", node)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func orNone(s string) string {
	if s == "" {
		return "its host"
	}
	return s
}

func nodeNamed(nodes []Node, name string) (Node, bool) {
	for _, n := range nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

func memberAt(members []etcdcluster.Member, n Node) *etcdcluster.Member {
	for i := range members {
		if got, ok := NodeOf(members[i], []Node{n}); ok && got.Name == n.Name {
			return &members[i]
		}
	}
	return nil
}
