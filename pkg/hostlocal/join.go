package hostlocal

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	etcdutil "k8s.io/kubernetes/cmd/kubeadm/app/util/etcd"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcddata"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// JoinOptions are join's inputs beyond the host.
type JoinOptions struct {
	// Endpoints are client URLs of current members; any one answering is enough.
	Endpoints []string
	// MoveForeignData allows moving aside a data dir that belongs to another
	// etcd cluster (otherwise join refuses: it may be someone's only copy).
	MoveForeignData bool
	// ReplaceMember, when it is this host's member's ID, replaces that
	// member: stop it, move its data aside, remove it, and join fresh as a
	// learner. Naming the ID (not a yes/no flag) makes a rerun converge: once
	// replaced, the host's member has a new ID and join goes on normally.
	ReplaceMember uint64
	// ByHand: run by an operator on the host, not by the plugin, which
	// passes the other members' shared settings (--etcd-arg) itself. The
	// plan then says that they were not read from here.
	ByHand bool
}

// Join adds this host to the cluster the learner way: add as learner, write
// certificates and an existing-cluster manifest, wait until the member has
// started and caught up, promote it, wait for a healthy quorum, and point the
// local apiserver at the local member. A join interrupted at any point is
// finished by running it again: it finds its own learner or voter and goes
// on from there.
func (e *Env) Join(ctx context.Context, o JoinOptions) (*Result, error) {
	return e.run(ctx, "join", o.Endpoints, func(res *Result) (*plan.Plan, *etcdcluster.Client, error) {
		return e.planJoin(ctx, o, res)
	})
}

// localIdentity is what the local data says about membership.
type localIdentity struct {
	hasData   bool
	memberID  uint64
	clusterID uint64
	revision  int64
}

func (e *Env) localIdentity(ctx context.Context) (localIdentity, bool, error) {
	h, cfg := e.Host, e.Config
	running := len(h.EtcdPIDs(cfg)) > 0
	// The quick read: the identity decides, and a long-lived member's whole
	// WAL (up to 5 files of 64 MiB) took 5 s to read on a host starting its
	// control plane (hack/bench-mttr.sh).
	dataDirState := func() (*etcddata.State, error) { return etcddata.ReadQuick(h.Path(cfg.DataDir())) }
	if !running {
		facts, err := dataDirState()
		if err == nil {
			return localIdentity{hasData: facts.HasData, memberID: facts.MemberID, clusterID: facts.ClusterID, revision: facts.Revision}, false, nil
		}
		// A member may be starting this very moment (kubelet picked up a
		// manifest an interrupted run wrote): wait for it rather than fail.
		if !h.EtcdManifestExists() {
			return localIdentity{}, false, fmt.Errorf("reading data dir %s: %w", cfg.DataDir(), err)
		}
		if _, werr := h.WaitEtcdServing(ctx, cfg, 30*time.Second); werr != nil {
			if facts, ferr := dataDirState(); ferr == nil {
				// It came and went: a crash-looping member (e.g. one a
				// recovery removed, which stops itself). Its data is readable now.
				return localIdentity{hasData: facts.HasData, memberID: facts.MemberID, clusterID: facts.ClusterID, revision: facts.Revision}, false, nil
			}
			return localIdentity{}, false, fmt.Errorf("reading data dir %s: %w (and the member of %s did not start: %v)", cfg.DataDir(), err, h.EtcdManifest(), werr)
		}
		running = true
	}
	// The identity is in the WAL, which can be read while etcd runs; asking
	// the member instead costs the status call's whole timeout when it has
	// no quorum (a stale member never answers: etcd serves clients only once
	// it has joined its cluster), the usual case on a host a join repairs.
	if member, cluster, err := etcddata.ReadIdentity(h.Path(cfg.DataDir())); err == nil {
		return localIdentity{hasData: true, memberID: member, clusterID: cluster}, true, nil
	}
	st, err := h.LocalStatus(ctx, cfg)
	if err != nil {
		// Running but not answering (e.g. a stale member crash-looping):
		// its identity is unknown until it is stopped.
		return localIdentity{hasData: true}, true, nil
	}
	return localIdentity{hasData: true, memberID: st.Header.MemberId, clusterID: st.Header.ClusterId, revision: st.Header.Revision}, true, nil
}

func clusterIDOf(statuses []etcdcluster.Status) uint64 {
	for _, s := range statuses {
		if s.Healthy && s.ClusterID != 0 {
			return s.ClusterID
		}
	}
	return 0
}

func (e *Env) planJoin(ctx context.Context, o JoinOptions, res *Result) (*plan.Plan, *etcdcluster.Client, error) {
	h, cfg := e.Host, e.Config
	if !h.HasEtcdCA(cfg) {
		_, err := h.PlanCerts(cfg, false) // the error explains how to bring the CA
		if err == nil {
			err = staticpod.ErrNoEtcdCA
		}
		return nil, nil, err
	}
	stuck := e.kubeletStuckLater(ctx)
	c, err := e.clusterClient(ctx, o.Endpoints)
	if err != nil {
		return nil, nil, err
	}
	members, statuses, err := readCluster(ctx, c)
	if err != nil {
		return nil, c, err
	}
	clusterID := clusterIDOf(statuses)
	me := self(members, cfg.PeerURL())
	p := &plan.Plan{Title: fmt.Sprintf("join: %s (%s) into etcd cluster %x, configuration from %s", cfg.NodeName(), cfg.PeerURL(), clusterID, cfg.Source)}
	if o.ByHand {
		p.Notes = append(p.Notes, "the other members' manifests are not read from this host: a setting every member must share that they run by hand (a timing, say) and kubeadm-config lacks is not given to this member unless passed as --etcd-arg NAME=VALUE (`kubectl etcd status` shows such settings as drift; `kubectl etcd scale` carries them itself)")
	}
	if o.ReplaceMember != 0 && me != nil && me.ID == o.ReplaceMember {
		// Whatever the local data is (a replaced member's is often
		// damaged), it goes aside: no need to read it or wait for it.
		facts, err := e.dataDirState()
		local := localIdentity{hasData: err != nil || facts.HasData}
		if err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("the local data cannot be read (%v); it is moved aside", err))
		}
		return e.planReplace(p, c, members, statuses, *me, local, len(h.EtcdPIDs(cfg)) > 0, res)
	}
	local, running, err := e.localIdentity(ctx)
	if err != nil {
		if me != nil && me.Started() {
			err = fmt.Errorf("%w\nTo start %s's member over (its data moved aside, the member removed and added back fresh), rerun with --replace-member %x", err, cfg.NodeName(), me.ID)
		}
		return nil, c, err
	}
	if o.ReplaceMember != 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("member %x is not %s's member any more (replaced already, or removed): joining normally", o.ReplaceMember, cfg.NodeName()))
	}
	if m := recoveryMarker(ctx, c); m != nil && local.memberID != 0 && m.Cut(local.memberID) {
		// Cut off by a recover (same cluster ID) or a restore (a new one):
		// stale either way, never another cluster's data.
		res.Notes = append(res.Notes, describeMarker(m, local.memberID))
		o.MoveForeignData = true
	}

	certs, err := h.PlanCerts(cfg, false)
	if err != nil {
		return nil, c, err
	}
	res.Certs = certs
	needCerts := slices.ContainsFunc(certs, func(a staticpod.CertAction) bool { return a.Action != "keep" })

	ours := me != nil && local.hasData && local.memberID == me.ID && (local.clusterID == clusterID || local.clusterID == 0 || clusterID == 0)
	switch {
	case me != nil && !me.IsLearner && ours && running:
		res.Notes = append(res.Notes, fmt.Sprintf("%s is already a voting member (%x)", cfg.NodeName(), me.ID))
		if needCerts {
			e.addCertStep(p, res)
		}
		e.addAPIServerLocalStep(p)
		return p, c, nil
	case me != nil && ours:
		// Our member with our data: finish what an earlier run started.
		if needCerts {
			e.addCertStep(p, res)
		}
		if !running {
			e.addManifestStep(p, c)
			e.kickKubelet(stuck, p, res)
		}
	case me != nil && me.Started() && !local.hasData:
		// The cluster knows this host as a started member, but its data is
		// gone: that member can never come back. Replace it with a fresh learner.
		if err := etcdcluster.CheckRemove(members, statuses, me.ID); err != nil {
			return nil, c, fmt.Errorf("%s's member %x lost its data and must be replaced, but removing it is not safe: %w", cfg.NodeName(), me.ID, err)
		}
		e.addCertStep(p, res)
		p.Add("remove lost member", fmt.Sprintf("remove member %s (%x): its data dir %s is empty", me, me.ID, cfg.DataDir()),
			func(ctx context.Context) (string, error) {
				return "", c.Remove(ctx, me.ID)
			})
		e.addFreshJoinSteps(p, c, members, statuses)
	case me != nil:
		// An added member that never started here (an earlier join crashed
		// between add and start), or one whose local data is someone else's.
		if local.hasData {
			if err := e.addStaleDataSteps(p, local, clusterID, running, o.MoveForeignData); err != nil {
				return nil, c, err
			}
		} else if running {
			e.addStopStep(p)
		}
		e.addCertStep(p, res)
		if me.Started() {
			// Started elsewhere with other data: start over.
			p.Add("remove stale member", fmt.Sprintf("remove member %s (%x), whose data is not on this host", me, me.ID),
				func(ctx context.Context) (string, error) {
					return "", c.Remove(ctx, me.ID)
				})
			e.addFreshJoinSteps(p, c, members, statuses)
			break
		}
		e.addManifestStep(p, c)
		e.kickKubelet(stuck, p, res)
	default:
		var b *bridge
		restart := false
		if local.hasData || running {
			if err := e.addStaleDataSteps(p, local, clusterID, running, o.MoveForeignData); err != nil {
				return nil, c, err
			}
			if stuck() {
				// The short way is a kubelet restart once the new manifest
				// is written; the long way a bridge from now on.
				if err := e.KubeletRestartable(); err == nil {
					restart = true
				} else {
					res.Notes = append(res.Notes, fmt.Sprintf("kubelet is not restarted (%v): its apiserver is bridged to the cluster instead", err))
					b = e.addBridgeStep(p, clientURLsExcept(members, 0), false)
				}
			}
		} else if err := portsFree(cfg); err != nil {
			return nil, c, err
		}
		if err := etcdcluster.CheckAdd(members, statuses); err != nil {
			return nil, c, fmt.Errorf("adding %s now is not safe: %w", cfg.NodeName(), err)
		}
		e.addCertStep(p, res)
		e.addFreshJoinSteps(p, c, members, statuses)
		if restart {
			e.AddKubeletRestartStep(p, "it starts the new etcd member and this host's kube-apiserver at once: it has no apiserver to reach, and holds both in crash-loop back-off")
		}
		e.addPromoteSteps(p, c, b)
		e.addAPIServerLocalStep(p)
		return p, c, nil
	}
	e.addPromoteSteps(p, c, nil)
	e.addAPIServerLocalStep(p)
	return p, c, nil
}

// planReplace replaces this host's member me with a fresh one: stop it, move
// its data aside (never deleted), remove it, add a learner, promote. The
// cluster keeps the data; only this member's copy is started over.
func (e *Env) planReplace(p *plan.Plan, c *etcdcluster.Client, members []etcdcluster.Member, statuses []etcdcluster.Status,
	me etcdcluster.Member, local localIdentity, running bool, res *Result) (*plan.Plan, *etcdcluster.Client, error) {
	h, cfg := e.Host, e.Config
	if err := etcdcluster.CheckRemove(members, statuses, me.ID); err != nil {
		return nil, c, fmt.Errorf("replacing %s's member %s (%x) is not safe: %w", cfg.NodeName(), me, me.ID, err)
	}
	p.Title = fmt.Sprintf("join: replace %s's member %s (%x) with a fresh one", cfg.NodeName(), me, me.ID)
	// The host's apiserver reads the other members while its own is
	// replaced, as leave does: stopped under it, the apiserver would lose
	// its storage, and with it the host's kubelet, which then takes a
	// minute or more to start the new etcd (measured 77-105 s on the bed,
	// against 8 s for a join).
	repointed := false
	remaining := clientURLsExcept(members, me.ID)
	if servers, err := h.APIServerEtcdServers(); err == nil && len(remaining) > 0 && !sameSet(servers, remaining) {
		p.Add("apiserver", fmt.Sprintf("point kube-apiserver's --etcd-servers from %s to the other members %s while the member is replaced, and wait until it serves",
			strings.Join(servers, ","), strings.Join(remaining, ","))+repointNote(), func(ctx context.Context) (string, error) {
			return h.RestartAPIServerWith(ctx, cfg, remaining, e.Timeouts.APIServer)
		})
		repointed = true
	}
	manifest := h.EtcdManifestExists()
	if running || manifest {
		e.addStopStep(p)
	}
	// With its manifest in place, kubelet may start etcd again (it
	// crash-loops on a destroyed data dir) and that etcd writes a fresh
	// member dir between this look and the stop: what is there once etcd is
	// stopped is moved aside, whatever was seen now.
	if local.hasData || running || manifest {
		e.addMoveAsideStep(p, "replaced")
	}
	e.addCertStep(p, res)
	p.Add("remove member", fmt.Sprintf("remove member %s (%x) from the cluster", me, me.ID), func(ctx context.Context) (string, error) {
		members, err := c.Members(ctx)
		if err != nil {
			return "", err
		}
		if self(members, cfg.PeerURL()) == nil {
			return "already removed", nil
		}
		statuses, err := c.Statuses(ctx)
		if err != nil {
			return "", err
		}
		if err := etcdcluster.CheckRemove(members, statuses, me.ID); err != nil {
			return "", err
		}
		return "", c.Remove(ctx, me.ID)
	})
	e.addFreshJoinSteps(p, c, members, statuses)
	e.addPromoteSteps(p, c, nil)
	if repointed {
		e.addAPIServerBackStep(p, remaining)
	} else {
		e.addAPIServerLocalStep(p)
	}
	return p, c, nil
}

func (e *Env) addCertStep(p *plan.Plan, res *Result) {
	p.Add("certificates", describeCerts(res.Certs), func(context.Context) (string, error) {
		done, err := e.Host.EnsureCerts(e.Config, false)
		res.Certs = done
		return describeCerts(done), err
	})
}

func (e *Env) addStopStep(p *plan.Plan) {
	h, cfg := e.Host, e.Config
	p.Add("stop local etcd", fmt.Sprintf("move %s out of the manifests dir and wait until etcd is gone", h.EtcdManifest()),
		func(ctx context.Context) (string, error) {
			if err := h.StopEtcd(); err != nil {
				return "", err
			}
			// Stays gone: the data dir is moved aside next, and an etcd
			// that kubelet starts from the manifest it read before (just
			// booted) would bootstrap a cluster of its own on the empty dir.
			return h.WaitEtcdStaysGone(ctx, cfg, e.Timeouts.EtcdStop)
		})
}

// addStaleDataSteps handles a data dir that is not this cluster's member
// data: stop a running etcd on it, then move it aside (never delete). Data
// of another cluster is refused unless allowed: it may be the only copy.
func (e *Env) addStaleDataSteps(p *plan.Plan, local localIdentity, clusterID uint64, running, moveForeign bool) error {
	cfg := e.Config
	foreign := local.clusterID != 0 && clusterID != 0 && local.clusterID != clusterID
	if foreign && !moveForeign {
		rev := ""
		if local.revision != 0 {
			rev = fmt.Sprintf(", revision %d", local.revision) // unknown while etcd runs on it
		}
		return fmt.Errorf("data dir %s belongs to etcd cluster %x (member %x%s), not to cluster %x at the given endpoints: "+
			"refusing to touch it. If that data is not needed, rerun with --move-aside-foreign-data (it is moved aside, not deleted)",
			cfg.DataDir(), local.clusterID, local.memberID, rev, clusterID)
	}
	// A manifest without a running etcd is a stale member kubelet is about
	// to restart (a removed member stops itself and crash-loops): park the
	// manifest first, or etcd could start on the dir while it moves.
	if running || e.Host.EtcdManifestExists() {
		e.addStopStep(p)
	}
	reason := "stale-member"
	if foreign {
		reason = "foreign-cluster"
	}
	p.Add("move stale data aside", fmt.Sprintf("move %s (member %x of cluster %x) aside to %s.%s-<time>, or inside it when it is a mount point; never deleted", cfg.DataDir(), local.memberID, local.clusterID, cfg.DataDir(), reason),
		func(context.Context) (string, error) {
			moved, err := e.moveDataDirAside(reason)
			if err != nil {
				return "", err
			}
			return "moved to " + moved, nil
		})
	return nil
}

// addFreshJoinSteps adds the learner and writes its manifest.
func (e *Env) addFreshJoinSteps(p *plan.Plan, c *etcdcluster.Client, members []etcdcluster.Member, statuses []etcdcluster.Status) {
	cfg := e.Config
	p.Add("add learner", fmt.Sprintf("add %s (%s) as a learner (non-voting) member", cfg.NodeName(), cfg.PeerURL()),
		func(ctx context.Context) (string, error) {
			members, err := c.Members(ctx)
			if err != nil {
				return "", err
			}
			if self(members, cfg.PeerURL()) == nil {
				statuses, err := c.Statuses(ctx)
				if err != nil {
					return "", err
				}
				if err := etcdcluster.CheckAdd(members, statuses); err != nil {
					return "", err
				}
			}
			m, _, err := c.AddLearner(ctx, cfg.PeerURL())
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("learner %x", m.ID), nil
		})
	e.addManifestStep(p, c)
}

func (e *Env) addManifestStep(p *plan.Plan, c *etcdcluster.Client) {
	h, cfg := e.Host, e.Config
	p.Add("manifest", fmt.Sprintf("create data dir %s and write %s (initial-cluster-state=existing)", cfg.DataDir(), h.EtcdManifest()),
		func(ctx context.Context) (string, error) {
			members, err := c.Members(ctx)
			if err != nil {
				return "", err
			}
			if self(members, cfg.PeerURL()) == nil {
				return "", fmt.Errorf("%s is not in the member list any more: rerun join", cfg.PeerURL())
			}
			initial := initialCluster(members, cfg)
			manifest, err := staticpod.RenderEtcdManifest(cfg, initial)
			if err != nil {
				return "", err
			}
			// The member this manifest starts has never run: whatever data
			// the dir holds now is not its own (an etcd that started on it
			// after this run emptied it, or one the plan did not see), and
			// the new member must not start on it. Kept aside, never deleted.
			note := ""
			if empty, err := etcddata.IsEmpty(h.Path(cfg.DataDir())); err != nil {
				return "", err
			} else if !empty {
				moved, err := e.moveDataDirAside("stray-start")
				if err != nil {
					return "", err
				}
				note = fmt.Sprintf("; the data dir held data again, not this new member's (an etcd started on it meanwhile): moved aside to %s", moved)
			}
			if err := etcdutil.CreateDataDirectory(h.Path(cfg.DataDir())); err != nil {
				return "", err
			}
			if err := h.WriteEtcdManifest(manifest); err != nil {
				return "", err
			}
			var names []string
			for _, m := range initial {
				names = append(names, m.Name)
			}
			return "initial cluster " + strings.Join(names, ",") + note, nil
		})
}

// initialCluster is kubeadm's --initial-cluster for a joining member: every
// member by name (an unstarted one by its hex ID, as kubeadm does), this host
// by its node name.
func initialCluster(members []etcdcluster.Member, cfg *staticpod.Config) []staticpod.Member {
	var out []staticpod.Member
	for _, m := range members {
		if len(m.PeerURLs) == 0 {
			continue
		}
		name := m.Name
		switch {
		case m.PeerURLs[0] == cfg.PeerURL():
			name = cfg.NodeName()
		case name == "":
			name = fmt.Sprintf("%x", m.ID)
		}
		out = append(out, etcdutil.Member{Name: name, PeerURL: m.PeerURLs[0]})
	}
	return out
}

// addPromoteSteps waits for the new member, promotes it and waits for a
// healthy quorum. With an open bridge b (which holds the local client port),
// it first waits for kubelet to start the new etcd container, the proof that
// kubelet no longer needs the bridge, and closes it.
func (e *Env) addPromoteSteps(p *plan.Plan, c *etcdcluster.Client, b *bridge) {
	h, cfg := e.Host, e.Config
	detail := "until the local member serves and the cluster sees it started"
	if b != nil {
		detail = "until kubelet starts the new etcd container, then close the bridge and wait " + detail
	}
	p.Add("wait for start", detail, func(ctx context.Context) (string, error) {
		var note string
		if b != nil {
			if open, since := b.Open(); open {
				err := h.WaitEtcdContainerStarted(ctx, cfg, since, e.Timeouts.EtcdStart)
				b.Close()
				if err != nil {
					return "", err
				}
				note = fmt.Sprintf("kubelet started the etcd container %s after the bridge opened; bridge closed", time.Since(since).Round(100*time.Millisecond))
			}
		}
		st, err := h.WaitEtcdServing(ctx, cfg, e.Timeouts.EtcdStart)
		if err != nil {
			return "", err
		}
		// The etcd that answers must be the member this join added: one
		// started on other data (a stray start of an earlier manifest)
		// answers too, and nothing after this would tell.
		members, err := c.Members(ctx)
		if err != nil {
			return "", err
		}
		if me := self(members, cfg.PeerURL()); me != nil && st.Header != nil && st.Header.MemberId != me.ID {
			return "", fmt.Errorf("the etcd serving on %s is member %x of cluster %x, not member %x that this join added: it runs on other data (an etcd started on the data dir from an earlier manifest). "+
				"Rerun join with --move-aside-foreign-data: that data is moved aside (never deleted) and the member starts fresh", cfg.NodeName(), st.Header.MemberId, st.Header.ClusterId, me.ID)
		}
		return note, nil
	})
	p.Add("promote", "promote the learner to a voting member once it has caught up with the leader", func(ctx context.Context) (string, error) {
		members, err := c.Members(ctx)
		if err != nil {
			return "", err
		}
		me := self(members, cfg.PeerURL())
		if me == nil {
			return "", fmt.Errorf("%s is not a member any more", cfg.PeerURL())
		}
		if !me.IsLearner {
			return "already a voting member", nil
		}
		if err := c.Promote(ctx, me.ID); err != nil {
			return "", err
		}
		return fmt.Sprintf("member %x is a voter", me.ID), nil
	})
	p.Add("wait for quorum", "until every voting member answers healthy, this one included", func(ctx context.Context) (string, error) {
		return waitQuorum(ctx, c, cfg.PeerURL(), e.Timeouts.EtcdStart)
	})
}

// waitQuorum polls the cluster until quorumWith says the local member is
// part of a healthy quorum, or timeout passes.
func waitQuorum(ctx context.Context, c etcdcluster.Cluster, peerURL string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		statuses, err := c.Statuses(ctx)
		if err == nil {
			note, ok := quorumWith(statuses, peerURL)
			if ok {
				return note, nil
			}
			last = note
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("timed out after %s waiting for a healthy quorum: %s", timeout, last)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// quorumWith is waitQuorum's verdict on one look at the cluster: ok when the
// healthy voters hold a quorum and the member with peerURL is one of them.
// The note says how many voters are healthy and, when ok, which do not
// answer; otherwise whether this host's member is among the healthy.
func quorumWith(statuses []etcdcluster.Status, peerURL string) (note string, ok bool) {
	var v etcdcluster.Votes
	selfOK := false
	var down []string
	for _, s := range statuses {
		if s.Member.IsLearner {
			continue
		}
		v.Voters++
		if !s.Healthy {
			down = append(down, s.Member.String())
			continue
		}
		v.Healthy++
		if slices.Contains(s.Member.PeerURLs, peerURL) {
			selfOK = true
		}
	}
	if !selfOK || !v.Quorate() {
		return fmt.Sprintf("%d of %d voting members healthy, this host's member healthy: %v", v.Healthy, v.Voters, selfOK), false
	}
	note = fmt.Sprintf("%d of %d voting members healthy", v.Healthy, v.Voters)
	if len(down) > 0 {
		note += "; not answering: " + strings.Join(down, ",")
	}
	return note, true
}

// repointNote ends the description of every apiserver re-point: the old
// kube-apiserver does not wait for kubelet's whole grace period
// (staticpod.APIServerShutdownGrace says why).
func repointNote() string {
	return fmt.Sprintf("; an old kube-apiserver still draining its watch streams %s after kubelet stopped it (plus its --shutdown-delay-duration) is killed, so the new one starts", staticpod.APIServerShutdownGrace)
}

// addAPIServerLocalStep points this host's kube-apiserver back at its local
// member (kubeadm's stacked layout) when it was pointed elsewhere.
// addAPIServerBackStep points this host's kube-apiserver back at its local
// member after an earlier step of the same plan pointed it at from.
func (e *Env) addAPIServerBackStep(p *plan.Plan, from []string) {
	h, cfg := e.Host, e.Config
	p.Add("apiserver", fmt.Sprintf("point kube-apiserver's --etcd-servers from %s back to the local member %s and wait until it serves",
		strings.Join(from, ","), staticpod.LocalEtcdServer(cfg))+repointNote(), func(ctx context.Context) (string, error) {
		return h.RestartAPIServerWith(ctx, cfg, []string{staticpod.LocalEtcdServer(cfg)}, e.Timeouts.APIServer)
	})
}

func (e *Env) addAPIServerLocalStep(p *plan.Plan) {
	h, cfg := e.Host, e.Config
	servers, err := h.APIServerEtcdServers()
	if err != nil {
		return // no apiserver on this host
	}
	if len(servers) == 1 && servers[0] == staticpod.LocalEtcdServer(cfg) {
		return
	}
	p.Add("apiserver", fmt.Sprintf("point kube-apiserver's --etcd-servers from %s back to the local member %s and wait until it serves",
		strings.Join(servers, ","), staticpod.LocalEtcdServer(cfg))+repointNote(), func(ctx context.Context) (string, error) {
		return h.RestartAPIServerWith(ctx, cfg, []string{staticpod.LocalEtcdServer(cfg)}, e.Timeouts.APIServer)
	})
}
