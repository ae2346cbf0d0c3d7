package hostlocal

import (
	"context"
	"fmt"
	"strconv"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/maintenance"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// memberHost is the host-local face's HostOf: kubeadm names each member
// after its node.
func memberHost(m etcdcluster.Member) string { return m.Name }

// maintenanceClient reaches the cluster from this host for the maintenance
// verbs, which need its CA like every verb that signs a client certificate.
func (e *Env) maintenanceClient(ctx context.Context, endpoints []string) (*etcdcluster.Client, error) {
	if !e.Host.HasEtcdCA(e.Config) {
		return nil, fmt.Errorf("%w: the maintenance verbs talk to the cluster with a certificate signed by it", staticpod.ErrNoEtcdCA)
	}
	running := len(e.Host.EtcdPIDs(e.Config)) > 0
	c, err := e.clusterClient(ctx, e.candidateEndpoints(endpoints, running))
	if err != nil {
		return nil, fmt.Errorf("cannot reach the etcd cluster from %s: %w", e.Config.NodeName(), err)
	}
	return c, nil
}

// DefragOptions are defrag's inputs on a host.
type DefragOptions struct {
	Endpoints []string
	Hosts     []string
	All       bool
	Compact   bool
}

// Defrag defragments members one at a time from this host, the same plan
// as the plugin's (maintenance.AddDefragSteps): for when the apiserver is
// down, which NOSPACE alone does not cause, but a NOSPACE'd cluster often
// has other troubles.
func (e *Env) Defrag(ctx context.Context, o DefragOptions) (*Result, error) {
	return e.run(ctx, "defrag", o.Endpoints, func(res *Result) (*plan.Plan, *etcdcluster.Client, error) {
		c, err := e.maintenanceClient(ctx, o.Endpoints)
		if err != nil {
			return nil, nil, err
		}
		statuses, err := c.Statuses(ctx)
		if err != nil {
			return nil, c, err
		}
		targets, err := maintenance.DefragTargets(statuses, memberHost, o.Hosts, o.All)
		if err != nil {
			return nil, c, err
		}
		p := maintenance.NewDefragPlan(c, memberHost, targets, maintenance.DefragOptions{Compact: o.Compact})
		return p, c, nil
	})
}

// Alarms lists the cluster's active alarms from this host.
func (e *Env) Alarms(ctx context.Context, endpoints []string) ([]maintenance.AlarmRow, error) {
	c, err := e.maintenanceClient(ctx, endpoints)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	alarms, err := c.Alarms(ctx)
	if err != nil {
		return nil, err
	}
	members, err := c.Members(ctx)
	if err != nil {
		return nil, err
	}
	return maintenance.AlarmRows(alarms, members, memberHost, maintenance.HostNames), nil
}

// Disarm clears the alarms whose cause is gone (maintenance.CheckDisarm),
// or none, saying why. The quota is this host's manifest's; kubeadm gives
// every member the same flags (ClusterConfiguration's etcd.local.extraArgs).
func (e *Env) Disarm(ctx context.Context, endpoints []string) (*Result, error) {
	return e.run(ctx, "alarm disarm", endpoints, func(res *Result) (*plan.Plan, *etcdcluster.Client, error) {
		c, err := e.maintenanceClient(ctx, endpoints)
		if err != nil {
			return nil, nil, err
		}
		p := &plan.Plan{Title: "clear etcd's alarms"}
		alarms, err := c.Alarms(ctx)
		if err != nil {
			return nil, c, err
		}
		if len(alarms) == 0 {
			p.Notes = append(p.Notes, "no alarm is raised")
			return p, c, nil
		}
		statuses, err := c.Statuses(ctx)
		if err != nil {
			return nil, c, err
		}
		q, err := e.quota()
		if err != nil {
			return nil, c, err
		}
		ok, err := maintenance.CheckDisarm(alarms, statuses, memberHost, func(etcdcluster.Member) int64 { return q }, maintenance.HostNames)
		if err != nil {
			return nil, c, fmt.Errorf("refusing to clear the alarms (nothing was changed): %w", err)
		}
		maintenance.AddDisarmSteps(p, c, ok, etcdcluster.MembersOf(statuses), memberHost)
		return p, c, nil
	})
}

// quota is this host's etcd --quota-backend-bytes, etcd's default when unset.
func (e *Env) quota() (int64, error) {
	v := e.Host.EtcdFlag("quota-backend-bytes")
	if v == "" {
		return maintenance.DefaultQuotaBytes, nil
	}
	q, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s has --quota-backend-bytes=%q, not a number of bytes", e.Host.EtcdManifest(), v)
	}
	if q <= 0 {
		return maintenance.DefaultQuotaBytes, nil
	}
	return q, nil
}
