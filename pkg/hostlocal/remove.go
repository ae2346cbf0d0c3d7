package hostlocal

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/backup"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/maintenance"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// RemoveOptions are remove's inputs beyond the host.
type RemoveOptions struct {
	// Target is the member to remove: its name or hex ID.
	Target string
	// Endpoints are extra client URLs to find the cluster by (the local
	// member and the peers in the local manifest are always tried).
	Endpoints []string
	// Snapshot, when set, takes the verified snapshot of this host's
	// member into backup.Dir that every membership change takes first (the
	// plugin's does too); it returns where it wrote it. Nil: --no-snapshot.
	Snapshot func(ctx context.Context) (string, error)
}

// Remove removes another member of this host's cluster through etcd alone:
// for a dead peer while the apiserver is down (the plugin's `remove` needs
// the apiserver). The same checks as the plugin's: refused when the removal
// could lose quorum or is the last member, or under an alarm; this host's
// own member is refused too, as `leave` is what removes it. The removed
// member's host is not touched: if it comes back, `kubectl-etcd leave` on it
// moves its data aside. Afterwards this host's kube-apiserver, when it lists
// the removed member, is pointed at the members left.
func (e *Env) Remove(ctx context.Context, o RemoveOptions) (*Result, error) {
	return e.run(ctx, "remove", o.Endpoints, func(res *Result) (*plan.Plan, *etcdcluster.Client, error) {
		return e.planRemove(ctx, o, res)
	})
}

func (e *Env) planRemove(ctx context.Context, o RemoveOptions, res *Result) (*plan.Plan, *etcdcluster.Client, error) {
	h, cfg := e.Host, e.Config
	if !h.HasEtcdCA(cfg) {
		return nil, nil, fmt.Errorf("%w: remove talks to the cluster with a certificate signed by it", staticpod.ErrNoEtcdCA)
	}
	running := len(h.EtcdPIDs(cfg)) > 0
	c, err := e.clusterClient(ctx, e.candidateEndpoints(o.Endpoints, running))
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach the cluster to remove member %s: %w", o.Target, err)
	}
	members, statuses, err := readCluster(ctx, c)
	if err != nil {
		return nil, c, err
	}
	m, err := RemoveVerdict(members, statuses, cfg.PeerURL(), o.Target)
	if err != nil {
		return nil, c, err
	}
	p := &plan.Plan{Title: fmt.Sprintf("remove: member %s (%x) from %s's etcd cluster, through etcd alone", m, m.ID, cfg.NodeName()),
		Notes: []string{fmt.Sprintf("member %s's host is not touched: if it comes back, run `kubectl-etcd leave` on it (it moves the data dir aside) before it joins again", m)}}
	if o.Snapshot != nil {
		p.Add("snapshot", fmt.Sprintf("take a verified snapshot of this host's member into %s (pre-remove) before the change", backup.Dir), func(ctx context.Context) (string, error) {
			file, err := o.Snapshot(ctx)
			if err != nil {
				return "", fmt.Errorf("taking the snapshot before the change (nothing was changed; --no-snapshot skips it): %w", err)
			}
			return "saved " + file, nil
		})
	}
	p.Add("remove member", fmt.Sprintf("remove member %s (%x) from the cluster", m, m.ID), func(ctx context.Context) (string, error) {
		// Again right before: the cluster may have changed since planning.
		members, err := c.Members(ctx)
		if err != nil {
			return "", err
		}
		if _, ok := etcdcluster.Find(members, m.ID); !ok {
			return "already removed", nil
		}
		statuses, err := c.Statuses(ctx)
		if err != nil {
			return "", err
		}
		if _, err := RemoveVerdict(members, statuses, cfg.PeerURL(), fmt.Sprintf("%x", m.ID)); err != nil {
			return "", err
		}
		return "", c.Remove(ctx, m.ID)
	})
	e.addAPIServerOffRemovedStep(p, without(members, m.ID))
	return p, c, nil
}

// RemoveVerdict is host-local remove's decision, before anything is
// changed: the member target names (by name or hex ID), or why it may not be
// removed from here: unknown (the error lists the members), this host's own
// member (selfPeer is its peer URL: `leave` removes it), a removal that could
// lose quorum or the last member, an active alarm (other than CORRUPT of the
// member removed, which removing fixes).
func RemoveVerdict(members []etcdcluster.Member, statuses []etcdcluster.Status, selfPeer, target string) (etcdcluster.Member, error) {
	m, ok := findMember(members, target)
	if !ok {
		return etcdcluster.Member{}, fmt.Errorf("%q is not a member of this cluster (members: %s); nothing was changed", target, listMembers(members))
	}
	if me := self(members, selfPeer); me != nil && me.ID == m.ID {
		return etcdcluster.Member{}, fmt.Errorf("member %s (%x) is this host's own: run `kubectl-etcd leave` here to remove it (it points this host's kube-apiserver at the other members first and moves the data dir aside); nothing was changed", m, m.ID)
	}
	if err := etcdcluster.CheckRemove(members, statuses, m.ID); err != nil {
		return etcdcluster.Member{}, err
	}
	if err := maintenance.CheckNoAlarms(statuses, memberHost, maintenance.HostNames, m.ID); err != nil {
		return etcdcluster.Member{}, err
	}
	return m, nil
}

// findMember is the member named target, by name or hex ID. A name is
// matched only when exactly one member has it (an unstarted member has none).
func findMember(members []etcdcluster.Member, target string) (etcdcluster.Member, bool) {
	if target == "" {
		return etcdcluster.Member{}, false
	}
	var byName []etcdcluster.Member
	for _, m := range members {
		if m.Name == target {
			byName = append(byName, m)
		}
	}
	if len(byName) == 1 {
		return byName[0], true
	}
	if id, err := strconv.ParseUint(target, 16, 64); err == nil {
		return etcdcluster.Find(members, id)
	}
	return etcdcluster.Member{}, false
}

func listMembers(members []etcdcluster.Member) string {
	var out []string
	for _, m := range members {
		out = append(out, fmt.Sprintf("%s (%x)", m, m.ID))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

func without(members []etcdcluster.Member, id uint64) []etcdcluster.Member {
	var out []etcdcluster.Member
	for _, m := range members {
		if m.ID != id {
			out = append(out, m)
		}
	}
	return out
}
