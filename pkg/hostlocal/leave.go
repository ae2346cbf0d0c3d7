package hostlocal

import (
	"context"
	"fmt"
	"strings"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// LeaveOptions are leave's inputs beyond the host.
type LeaveOptions struct {
	// Endpoints are extra client URLs to find the cluster by (the local member
	// and the peers in the local manifest are always tried).
	Endpoints []string
}

// Leave removes this host's member: refuses the last member or a removal
// that would lose quorum; points the local apiserver at the remaining members
// first (it reads only the local member in kubeadm's stacked layout); moves
// leadership away if this member leads; removes the member; stops the static
// pod; moves the data dir aside.
func (e *Env) Leave(ctx context.Context, o LeaveOptions) (*Result, error) {
	return e.run(ctx, "leave", o.Endpoints, func(res *Result) (*plan.Plan, *etcdcluster.Client, error) {
		return e.planLeave(ctx, o, res)
	})
}

func (e *Env) planLeave(ctx context.Context, o LeaveOptions, res *Result) (*plan.Plan, *etcdcluster.Client, error) {
	h, cfg := e.Host, e.Config
	running := len(h.EtcdPIDs(cfg)) > 0
	p := &plan.Plan{Title: fmt.Sprintf("leave: remove %s (%s) from its etcd cluster", cfg.NodeName(), cfg.PeerURL())}
	if !h.HasEtcdCA(cfg) {
		return nil, nil, fmt.Errorf("%w: leave talks to the cluster with a certificate signed by it", staticpod.ErrNoEtcdCA)
	}
	c, err := e.clusterClient(ctx, e.candidateEndpoints(o.Endpoints, running))
	if err != nil {
		if !running && !h.EtcdManifestExists() {
			res.Notes = append(res.Notes, cfg.NodeName()+" has no etcd member (no manifest, no etcd running); nothing to do")
			return p, nil, nil
		}
		return nil, nil, fmt.Errorf("cannot reach the cluster to remove %s's member: %w", cfg.NodeName(), err)
	}
	members, statuses, err := readCluster(ctx, c)
	if err != nil {
		return nil, c, err
	}
	me := self(members, cfg.PeerURL())
	if me == nil {
		// Not a member (any more): finish an interrupted leave, if anything is left.
		if running || h.EtcdManifestExists() {
			e.addStopStep(p)
		}
		e.addLeftDataSteps(p)
		e.addAPIServerOffRemovedStep(p, members)
		if len(p.Steps) == 0 {
			res.Notes = append(res.Notes, cfg.NodeName()+" is not a member of the cluster; nothing to do")
		}
		return p, c, nil
	}
	if err := etcdcluster.CheckRemove(members, statuses, me.ID); err != nil {
		return nil, c, err
	}
	remaining := clientURLsExcept(members, me.ID)
	if servers, err := h.APIServerEtcdServers(); err == nil && !sameSet(servers, remaining) {
		p.Add("apiserver", fmt.Sprintf("point kube-apiserver's --etcd-servers from %s to the remaining members %s and wait until it serves (it would lose its storage otherwise)",
			strings.Join(servers, ","), strings.Join(remaining, ","))+repointNote(), func(ctx context.Context) (string, error) {
			return h.RestartAPIServerWith(ctx, cfg, remaining, e.Timeouts.APIServer)
		})
	}
	isLeader := false
	for _, s := range statuses {
		if s.Member.ID == me.ID && s.IsLeader {
			isLeader = true
		}
	}
	if isLeader {
		target, err := etcdcluster.PickLeaderTarget(members, statuses, me.ID)
		if err != nil {
			return nil, c, fmt.Errorf("%s leads the cluster and no other member can take over: %w", cfg.NodeName(), err)
		}
		p.Add("move leadership", fmt.Sprintf("hand leadership from %s to member %x before removing it", cfg.NodeName(), target),
			func(ctx context.Context) (string, error) {
				return "", c.MoveLeader(ctx, target)
			})
	}
	p.Add("remove member", fmt.Sprintf("remove member %s (%x) from the cluster", me, me.ID), func(ctx context.Context) (string, error) {
		// Re-check right before: the cluster may have changed since planning.
		members, err := c.Members(ctx)
		if err != nil {
			return "", err
		}
		if self(members, cfg.PeerURL()) != nil {
			statuses, err := c.Statuses(ctx)
			if err != nil {
				return "", err
			}
			if err := etcdcluster.CheckRemove(members, statuses, me.ID); err != nil {
				return "", err
			}
		}
		return "", c.Remove(ctx, me.ID)
	})
	e.addStopStep(p)
	e.addLeftDataSteps(p)
	return p, c, nil
}

// addLeftDataSteps moves the data dir and the parked manifest aside, if present.
func (e *Env) addLeftDataSteps(p *plan.Plan) {
	h, cfg := e.Host, e.Config
	if facts, err := e.dataDirState(); (err == nil && facts.HasData) || len(h.EtcdPIDs(cfg)) > 0 || h.EtcdManifestExists() {
		e.addMoveAsideStep(p, "left")
	}
	if !(h.StoppedManifestExists() || h.EtcdManifestExists() || len(h.EtcdPIDs(cfg)) > 0) {
		return
	}
	p.Add("retire manifest", "keep the stopped etcd manifest aside so it cannot be started by accident", func(context.Context) (string, error) {
		moved, err := h.RetireStoppedManifest()
		if moved != "" {
			return "kept at " + moved, err
		}
		return "", err
	})
}

// addAPIServerOffRemovedStep points a member-less host's kube-apiserver at
// the current voting members when its --etcd-servers name a member that is
// gone (removed from another host, e.g. by scale or remove): it would keep
// working by failing over, but one more loss could leave it with nothing.
func (e *Env) addAPIServerOffRemovedStep(p *plan.Plan, members []etcdcluster.Member) {
	h, cfg := e.Host, e.Config
	servers, err := h.APIServerEtcdServers()
	if err != nil {
		return // no apiserver here
	}
	var voters []string
	for _, m := range members {
		if !m.IsLearner {
			voters = append(voters, m.ClientURLs...)
		}
	}
	current := map[string]bool{}
	for _, u := range voters {
		current[u] = true
	}
	var gone []string
	for _, s := range servers {
		if !current[s] {
			gone = append(gone, s)
		}
	}
	if len(gone) == 0 || len(voters) == 0 {
		return
	}
	// A host whose member was removed while it was away comes back with an
	// apiserver that has no etcd, so its kubelet never synced and would not
	// replace the apiserver's static pod: bridge it to the members first.
	// The bridge stays open until kubelet has replaced the apiserver.
	b := &bridge{}
	if e.needsBridge(context.Background()) {
		b = e.addBridgeStep(p, voters, true)
	}
	p.Add("apiserver", fmt.Sprintf("point kube-apiserver's --etcd-servers from %s (%s no longer a member) to the members %s and wait until it serves",
		strings.Join(servers, ","), strings.Join(gone, ","), strings.Join(voters, ","))+repointNote(), func(ctx context.Context) (string, error) {
		defer b.Close()
		return h.RestartAPIServerWith(ctx, cfg, voters, e.Timeouts.APIServer)
	})
}

// addMoveAsideStep moves the data dir aside under reason (never deleted).
func (e *Env) addMoveAsideStep(p *plan.Plan, reason string) {
	dir := e.Config.DataDir()
	p.Add("move data aside", fmt.Sprintf("move %s aside to %s.%s-<time> (inside it, as .kubectl-etcd-%s-<time>, when it is a mount point); never deleted", dir, dir, reason, reason),
		func(context.Context) (string, error) {
			moved, err := e.moveDataDirAside(reason)
			if err != nil {
				return "", err
			}
			if moved == "" {
				return "no data dir", nil
			}
			return "moved to " + moved, nil
		})
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}
