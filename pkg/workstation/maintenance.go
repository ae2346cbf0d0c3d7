package workstation

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/maintenance"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
)

// hostOf names a member's control-plane node, "" when it runs on none.
func (o *observed) hostOf(m etcdcluster.Member) string {
	if n, ok := NodeOf(m, o.nodes); ok {
		return n.Name
	}
	return ""
}

// checkNoAlarms is the guard of the verbs that change the membership
// (scale, remove, replace, restore --node): see maintenance.CheckNoAlarms.
func (o *observed) checkNoAlarms(removing uint64) error {
	return maintenance.CheckNoAlarms(o.statuses, o.hostOf, maintenance.WorkstationNames, removing)
}

// DefragOptions say which members to defragment and how.
type DefragOptions struct {
	Nodes   []string
	All     bool
	Compact bool
	DryRun  bool
}

// Defrag defragments members one at a time, followers first and the
// leader last (see maintenance.DefragTargets for the order and the
// refusals), through etcdctl in the etcd pods (see execCluster: it works
// under NOSPACE, which is what it is for), and reports the state it left.
func (s *Session) Defrag(ctx context.Context, o DefragOptions) (*Result, error) {
	var lock *heldLock
	if !o.DryRun {
		// Taken while the members are read: the defrag itself is etcd's
		// call, and the plugin's overhead over it is measured
		// (hack/bench-defrag.sh).
		what := "--all"
		if len(o.Nodes) > 0 {
			what = strings.Join(o.Nodes, " ")
		}
		lock = s.lockAhead(ctx, "defrag", "defrag "+what)
		defer lock.drop()
	}
	c := &execCluster{s: s, quick: true}
	defer c.closeReaders()
	obs, err := c.observe(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range o.Nodes {
		if _, ok := nodeNamed(obs.nodes, n); !ok {
			if err := s.notControlPlane(ctx, n); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%q is not a control-plane node of this cluster (control-plane nodes: %s)", n, names(obs.nodes))
		}
	}
	targets, err := maintenance.DefragTargets(obs.statuses, obs.hostOf, o.Nodes, o.All)
	if err != nil {
		return nil, err
	}
	p := maintenance.NewDefragPlan(c, obs.hostOf, targets, maintenance.DefragOptions{Compact: o.Compact, Observed: obs.statuses, ObservedAt: obs.now})
	return s.executeLocked(ctx, "defrag", p, o.DryRun, obs, c.left, lock)
}

// AlarmList is what `alarm list` reports.
type AlarmList struct {
	Alarms []maintenance.AlarmRow `json:"alarms"`
}

// Alarms lists the cluster's active alarms, with what each means and what
// clears it, through etcdctl in the etcd pods.
func (s *Session) Alarms(ctx context.Context) (*AlarmList, error) {
	c := &execCluster{s: s}
	obs, err := c.observe(ctx)
	if err != nil {
		return nil, err
	}
	alarms, err := c.Alarms(ctx)
	if err != nil {
		return nil, err
	}
	return &AlarmList{Alarms: maintenance.AlarmRows(alarms, obs.members, obs.hostOf, maintenance.WorkstationNames)}, nil
}

// Disarm clears the active alarms whose cause is gone (see
// maintenance.CheckDisarm); with any alarm whose cause is still there it
// clears nothing and says why. Through etcdctl in the etcd pods.
func (s *Session) Disarm(ctx context.Context, dryRun bool) (*Result, error) {
	c := &execCluster{s: s}
	obs, err := c.observe(ctx)
	if err != nil {
		return nil, err
	}
	alarms, err := c.Alarms(ctx)
	if err != nil {
		return nil, err
	}
	p := &plan.Plan{Title: "clear etcd's alarms"}
	if len(alarms) == 0 {
		p.Notes = append(p.Notes, "no alarm is raised")
		return s.execute(ctx, "alarm disarm", p, dryRun, obs)
	}
	quotas, err := s.quotas(ctx)
	if err != nil {
		return nil, err
	}
	quota := func(m etcdcluster.Member) int64 {
		if q, ok := quotas[obs.hostOf(m)]; ok {
			return q
		}
		return maintenance.DefaultQuotaBytes
	}
	ok, err := maintenance.CheckDisarm(alarms, obs.statuses, obs.hostOf, quota, maintenance.WorkstationNames)
	if err != nil {
		return nil, fmt.Errorf("refusing to clear the alarms (nothing was changed): %w", err)
	}
	maintenance.AddDisarmSteps(p, c, ok, obs.members, obs.hostOf)
	return s.execute(ctx, "alarm disarm", p, dryRun, obs)
}

// quotas reads each etcd static pod's --quota-backend-bytes from its mirror
// pod, by node; etcd's default applies where the flag is not given.
func (s *Session) quotas(ctx context.Context) (map[string]int64, error) {
	pods, err := s.Clientset.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "component=etcd,tier=control-plane"})
	if err != nil {
		return nil, fmt.Errorf("listing etcd pods for their quota: %w", err)
	}
	out := map[string]int64{}
	for _, p := range pods.Items {
		for _, c := range p.Spec.Containers {
			for _, a := range c.Command {
				if v, ok := strings.CutPrefix(a, "--quota-backend-bytes="); ok {
					q, err := strconv.ParseInt(v, 10, 64)
					if err != nil {
						return nil, fmt.Errorf("etcd pod %s has --quota-backend-bytes=%q, not a number of bytes", p.Name, v)
					}
					if q > 0 { // etcd takes 0 (and less) as its default
						out[p.Spec.NodeName] = q
					}
				}
			}
		}
	}
	return out, nil
}
