package workstation

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
)

// ReconfigureOptions say how to reconfigure.
type ReconfigureOptions struct {
	DryRun bool
	// NoSnapshot skips the verified snapshot taken before the first change.
	NoSnapshot bool
	// Nodes limits the roll to these control-plane nodes' members; empty:
	// every member.
	Nodes []string
}

// Reconfigure rewrites every member's etcd manifest as kubeadm writes it
// from kubeadm-config now (`reconfigure --local` in a host pod on each
// member host), one member at a time, followers first, the leader last:
// the roll of RenewCerts (quorum check before each, every member healthy
// after each). Hosts whose manifest is kubeadm's already are left alone.
func (s *Session) Reconfigure(ctx context.Context, o ReconfigureOptions) (*Result, error) {
	c := &execCluster{s: s}
	obs, err := c.observe(ctx)
	if err != nil {
		return nil, err
	}
	if err := obs.checkNoAlarms(0); err != nil {
		return nil, err
	}
	hosts := obs.memberHosts()
	if len(o.Nodes) > 0 {
		for _, n := range o.Nodes {
			if !slices.Contains(hosts, n) {
				if _, ok := nodeNamed(obs.nodes, n); ok {
					return nil, fmt.Errorf("node %s runs no etcd member: nothing to reconfigure there", n)
				}
				if err := s.notControlPlane(ctx, n); err != nil {
					return nil, err
				}
				return nil, fmt.Errorf("%q is not a control-plane node of this cluster (control-plane nodes: %s)", n, names(obs.nodes))
			}
		}
		hosts = o.Nodes
	}
	r := roll{run: s.Hosts.Reconfigure, hint: hostlocal.ReconfigureHint, verb: "reconfiguring", renewHint: renewHint}
	order, turns, notes, left := s.turns(ctx, obs, hosts, r)

	p := &plan.Plan{Title: fmt.Sprintf("reconfigure: every member's etcd manifest as kubeadm writes it from kubeadm-config, one member at a time: %s", strings.Join(order, ", ")),
		Notes: append(append([]string{"each host writes its manifest as kubeadm does from the ClusterConfiguration (and its kubeadm patches), keeping only the member's bootstrap flags; hand edits go. " +
			"Before each host the other members must hold the quorum without its member, after each every member must be healthy again; the leader's host goes last"}, notes...), left...)}
	if len(turns) > 0 && !o.NoSnapshot {
		snapNode, err := snapshotNode(obs)
		if err != nil {
			return nil, err
		}
		s.addSnapshotStep(p, snapNode, "pre-reconfigure")
	}
	for _, tn := range turns {
		p.AddSteps("reconfigure "+tn.host, tn.detail, func(ctx context.Context) (string, []plan.StepResult, error) {
			return s.rollHost(ctx, c, tn.host, r)
		})
	}
	res, err := s.execute(ctx, "reconfigure", p, o.DryRun, obs)
	if err != nil || len(left) == 0 || o.DryRun {
		return res, err
	}
	res.Next = strings.Join(left, "; ")
	return res, fmt.Errorf("members reconfigured where the plugin could reach; left: %s", strings.Join(left, "; "))
}
