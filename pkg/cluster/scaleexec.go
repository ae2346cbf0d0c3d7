package cluster

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/backup"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// ScaleOptions say what to scale to and how.
type ScaleOptions struct {
	Target Target
	DryRun bool
	// NoSnapshot skips the verified snapshot taken on a member host before
	// the first change.
	NoSnapshot bool
}

// Scale makes the member set match the target, one change at a time. Each
// change runs the host-local verb on its host through a host pod — `join`
// (learner, catch up, promote, apiserver back to the local member) or
// `leave` (apiserver to the other members first, leadership away, remove,
// stop, data aside) — and is checked against quorum right before it runs.
// Rerunning after a crash re-observes and plans again, so it converges.
func (s *Session) Scale(ctx context.Context, o ScaleOptions) (*ClusterStatus, error) {
	obs, err := s.observe(ctx)
	if err != nil {
		return nil, err
	}
	plan, err := ScalePlan(obs.nodes, obs.members, obs.statuses, o.Target)
	obs.client.Close()
	if err != nil {
		return nil, err
	}
	for _, w := range plan.Warnings {
		fmt.Fprintf(s.Out, "Warning: %s\n", w)
	}
	title := "Plan"
	if o.DryRun {
		title = "Plan (dry run: nothing will be changed)"
	}
	fmt.Fprintf(s.Out, "%s: %s\n", title, describeTarget(o.Target))
	if len(plan.Changes) == 0 {
		fmt.Fprintln(s.Out, "  nothing to do: the members already match")
	}
	var snapNode string
	if len(plan.Changes) > 0 && !o.NoSnapshot {
		if snapNode, err = snapshotNode(obs); err != nil {
			return nil, err
		}
		fmt.Fprintf(s.Out, "  0. %s\n", snapshotStep(snapNode, "pre-scale"))
	}
	for i, c := range plan.Changes {
		fmt.Fprintf(s.Out, "  %d. %s\n", i+1, c)
	}
	if o.DryRun {
		return obs.report(), nil
	}
	if snapNode != "" {
		if err := s.snapshotFirst(ctx, "0", snapNode, "pre-scale"); err != nil {
			return nil, err
		}
	}
	for i, c := range plan.Changes {
		fmt.Fprintf(s.Out, "[%d/%d] %s\n", i+1, len(plan.Changes), c)
		start := time.Now()
		if err := s.apply(ctx, c); err != nil {
			return nil, fmt.Errorf("step %d (%s): %w", i+1, c, err)
		}
		fmt.Fprintf(s.Out, "      done in %s\n", time.Since(start).Round(100*time.Millisecond))
	}
	return s.Status(ctx)
}

// snapshotNode picks where the pre-change snapshot is taken: the node of the
// most advanced healthy member (the backup verb snapshots its host's own
// member, so the data never leaves the control-plane hosts).
func snapshotNode(obs *observed) (string, error) {
	src, err := PickSnapshotSource(obs.statuses, obs.nodes)
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
// scheduled backups prune it. step is its progress label: "0" before a
// verb's numbered changes, or the number of the step it is part of.
func (s *Session) snapshotFirst(ctx context.Context, step, node, reason string) error {
	fmt.Fprintf(s.Out, "[%s] %s\n", step, snapshotStep(node, reason))
	start := time.Now()
	if err := s.Hosts.BackupRun(ctx, node, hostapi.BackupRunRequest{Reason: reason}); err != nil {
		return fmt.Errorf("taking the snapshot before the change (nothing was changed; --no-snapshot skips it): %w", err)
	}
	fmt.Fprintf(s.Out, "      done in %s\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

func describeTarget(t Target) string {
	if len(t.Nodes) > 0 {
		return "members on exactly " + strings.Join(t.Nodes, ", ")
	}
	return fmt.Sprintf("%d members", t.Replicas)
}

// apply carries out one change after checking, on fresh state, that it is
// still safe.
func (s *Session) apply(ctx context.Context, c Change) error {
	obs, err := s.observe(ctx)
	if err != nil {
		return err
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
				return err
			}
		}
		var sources []string
		for _, n := range obs.etcdPods {
			if n != c.Node {
				sources = append(sources, n)
			}
		}
		if err := s.ensureCA(ctx, c.Node, sources); err != nil {
			return err
		}
		if err := s.Hosts.Join(ctx, c.Node, hostapi.JoinRequest{Endpoints: endpoints}); err != nil {
			return err
		}
		s.waitMirror(ctx, c.Node, func(servers string) bool {
			return strings.Contains(servers, "://127.0.0.1:") || strings.Contains(servers, "://[::1]:")
		})
		return nil
	case "remove":
		if err := etcdcluster.CheckRemove(obs.members, obs.statuses, c.Member.ID); err != nil {
			return err
		}
		defer s.repointOff(ctx, *c.Member, c.Node)
		if c.Node != "" {
			if n, ok := nodeNamed(obs.nodes, c.Node); ok && n.Ready {
				err := s.Hosts.Leave(ctx, c.Node)
				if err == nil {
					s.waitMirror(ctx, c.Node, func(servers string) bool {
						return !strings.Contains(servers, "://127.0.0.1:") && !strings.Contains(servers, "://[::1]:")
					})
					return nil
				}
				// The pod never started there (Ready is stale: the node
				// died a moment ago): the member goes through etcd alone.
				if !hostapi.Unreachable(err) {
					return err
				}
				fmt.Fprintf(s.Out, "      %s did not start the host pod: %s\n", c.Node, firstLine(err.Error()))
			}
		}
		// No host to clean (gone, or its kubelet cannot run pods): remove the
		// member through etcd; its host, if it comes back, is refused by
		// the cluster, and `kubectl-etcd leave` (or join) there tidies it.
		fmt.Fprintf(s.Out, "      %s cannot run a host pod: removing member %x through etcd only\n", orNone(c.Node), c.Member.ID)
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return obs.client.Remove(cctx, c.Member.ID)
	}
	return fmt.Errorf("unknown change %q", c.Kind)
}

// waitMirror waits (bounded) until the kube-apiserver mirror pod of node
// shows the --etcd-servers the host verb just wrote: kubelet updates mirror
// pods a little after the static pod, and status reads them.
func (s *Session) waitMirror(ctx context.Context, node string, ok func(servers string) bool) {
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if apis, err := s.APIServerEtcdServers(ctx); err == nil {
			if servers, found := apis[node]; !found || ok(servers) {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	fmt.Fprintf(s.Out, "      note: the kube-apiserver mirror pod of %s does not show its new --etcd-servers yet\n", node)
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
