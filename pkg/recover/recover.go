package recover

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcddata"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// QuarantinePort is the client port the recovering member serves on until it
// is verified: no apiserver is configured for it, so nothing writes to a
// half-recovered etcd (etcd-manager's "quarantined client URLs").
const QuarantinePort = 2479

// MarkerKey is the key recover and restore leave on the recovered cluster.
const MarkerKey = hostlocal.RecoveryMarkerKey

// Options are recover's inputs beyond the host.
type Options struct {
	// Here recovers from this host's data even when another reachable
	// survivor is further ahead (the writes only it has are then lost).
	Here bool
}

// Result is what recover and restore report.
type Result struct {
	hostlocal.Result
	Survey   *Survey  `json:"survey,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	Next     []string `json:"nextSteps,omitempty"`
	// Resuming: an unfinished run's journal was found and is carried on
	// (no survey then): a cross-host recovery must finish it here.
	Resuming bool `json:"resuming,omitempty"`
	// ConfigSource says where the cluster's configuration came from
	// (staticpod.Config.Source): a cross-host recovery whose survey found
	// kubeadm-config unreadable does not have the survivor wait for it again.
	ConfigSource string `json:"configSource,omitempty"`
}

// Recovery is a planned recovery, ready to be shown, confirmed and run.
type Recovery struct {
	env  *hostlocal.Env
	Plan *plan.Plan
	Res  *Result
	j    *journal
	// restartKubelet: kubelet is restarted to start the normal member at
	// once, instead of bridging the apiserver until kubelet syncs.
	restartKubelet bool
}

// Run carries out the plan (or prints it under dry run) and records the
// state it left.
func (r *Recovery) Run(ctx context.Context) error {
	e := r.env
	if !e.DryRun {
		release, err := e.Lock("recover")
		if err != nil {
			r.Res.Error = err.Error()
			return err
		}
		defer release()
	}
	var err error
	r.Res.Steps, err = r.Plan.Execute(ctx, e.Out, e.DryRun)
	if err != nil {
		r.Res.Error = err.Error()
	}
	// A dry run has printed the survey; reading the state again without a
	// quorum would only wait for linearizable calls to time out.
	if !e.DryRun {
		r.Res.State = e.ReadState(ctx, nil)
	}
	return err
}

// PlanRecover surveys what is left and plans the recovery from this host's
// data. It refuses (changing nothing) when the cluster has a quorum, when this
// host has no etcd data, and when another reachable survivor is further ahead
// (unless o.Here).
func PlanRecover(ctx context.Context, e *hostlocal.Env, o Options) (*Recovery, error) {
	h, cfg := e.Host, e.Config
	r := &Recovery{env: e, Res: &Result{Result: hostlocal.Result{Verb: "recover", Node: cfg.NodeName(), DryRun: e.DryRun}, ConfigSource: cfg.Source}}
	r.keepOwnSettings()
	j, err := loadJournal(h)
	if err != nil {
		return r, r.fail(err)
	}
	if j != nil && j.Done {
		// A finished recovery: a new one starts from scratch.
		if !e.DryRun {
			if err := retireJournal(h, j); err != nil {
				return r, r.fail(err)
			}
		}
		j = nil
	}
	if j != nil && j.Verb != "recover" {
		return r, r.fail(fmt.Errorf("an unfinished %s is recorded in %s (started %s): run `kubectl-etcd %s` again to finish it first",
			j.Verb, journalPath(h), j.Started.Format(time.RFC3339), j.Verb))
	}
	if j == nil {
		s, err := survey(ctx, e)
		if err != nil {
			return r, r.fail(err)
		}
		r.Res.Survey = s
		if s.Quorum {
			r.Res.State = e.ReadState(ctx, nil)
		}
		warnings, err := recoverHere(s, o.Here)
		if err != nil {
			return r, r.fail(err)
		}
		r.Res.Warnings = append(r.Res.Warnings, warnings...)
		j = &journal{Verb: "recover", Started: h.Now().UTC(), Node: cfg.NodeName(), MemberID: s.Local.id, ClusterID: s.Local.clusterID,
			Index: s.Local.RaftIndex, Revision: s.Local.Revision, Here: o.Here}
		for _, m := range s.Members {
			if m.ID != s.Local.id {
				j.Old = append(j.Old, m)
			}
		}
	} else {
		r.Res.Notes = append(r.Res.Notes, fmt.Sprintf("carrying on with the recovery started %s (journal %s)", j.Started.Format(time.RFC3339), journalPath(h)))
		r.Res.Resuming = true
	}
	r.j = j
	r.useKubeletRestart()
	r.Plan = r.planSteps()
	r.Res.Next = nextSteps(cfg, j)
	return r, nil
}

// restartNote tells, in the quarantine step's plan, that kubelet is restarted there.
func (r *Recovery) restartNote() string {
	if !r.restartKubelet {
		return ""
	}
	return "; then restart kubelet (systemctl restart kubelet), so it starts the pod at once instead of first waiting on the stuck apiserver to make its mirror pod; running containers keep running"
}

// useKubeletRestart decides between restarting kubelet and bridging the
// apiserver, and says so when the short way is not possible.
func (r *Recovery) useKubeletRestart() {
	if err := r.env.KubeletRestartable(); err != nil {
		r.Res.Notes = append(r.Res.Notes, fmt.Sprintf("kubelet is not restarted (%v): the apiserver is bridged to the recovered member until kubelet has synced, and kubelet's back-offs are waited for", err))
		return
	}
	r.restartKubelet = true
}

func (r *Recovery) fail(err error) error {
	r.Res.Error = err.Error()
	return err
}

// recoverHere is recover's verdict on a survey: whether this host's data may
// be the recovered cluster's. Refused when the cluster has a quorum (nothing
// to recover), and, unless here, when another survivor is further ahead or
// is up but silent (it may be ahead); with here, the writes lost are warned of.
func recoverHere(s *Survey, here bool) (warnings []string, err error) {
	if s.Quorum {
		return nil, fmt.Errorf("the cluster has a quorum (%s): there is nothing to recover. `kubectl-etcd status --local` shows it; to replace a dead member use `kubectl-etcd join` on its host or `kubectl etcd scale`", quorumWho(s))
	}
	if s.Silent != nil && s.Ahead == nil {
		if !here {
			return nil, fmt.Errorf("%s (member %s) is up but its etcd does not answer (restarted without a quorum, it serves no client until it rejoins), so whether it is further ahead than this host (raft index %d, revision %d) cannot be told from here. Run `kubectl-etcd recover --dry-run` as root on %s to see its raft index, recover on the host that is ahead, or rerun here with --here to accept losing what only %s has",
				s.Silent.Name, s.Silent.ID, s.Local.RaftIndex, s.Local.Revision, s.Silent.Name, s.Silent.Name)
		}
		warnings = append(warnings, fmt.Sprintf("--here: %s is up but could not be asked; writes only it has are lost", s.Silent.Name))
	}
	if s.Ahead != nil {
		if !here {
			return nil, fmt.Errorf("%s (member %s, raft index %d, revision %d) is further ahead than this host (raft index %d, revision %d): recovering here would lose the writes only it has. Run `kubectl-etcd recover` as root on %s instead, or rerun here with --here to accept that loss",
				s.Ahead.Name, s.Ahead.ID, s.Ahead.RaftIndex, s.Ahead.Revision, s.Local.RaftIndex, s.Local.Revision, s.Ahead.Name)
		}
		warnings = append(warnings, fmt.Sprintf("--here: %s is further ahead (raft index %d vs %d here); the writes only it has are lost, and it is cut off like every other member", s.Ahead.Name, s.Ahead.RaftIndex, s.Local.RaftIndex))
	}
	return warnings, nil
}

// quorumWho names the survivors that follow a leader.
func quorumWho(s *Survey) string {
	var who []string
	for _, x := range append([]Survivor{s.Local}, s.Others...) {
		if x.Leader != "" {
			who = append(who, fmt.Sprintf("%s follows leader %s", x.Name, x.Leader))
		}
	}
	return strings.Join(who, ", ")
}

func (r *Recovery) planSteps() *plan.Plan {
	e, j := r.env, r.j
	h, cfg := e.Host, e.Config
	var cut []string
	for _, m := range j.Old {
		cut = append(cut, fmt.Sprintf("%s (%x)", m.Name, m.ID))
	}
	p := &plan.Plan{Title: fmt.Sprintf("recover: etcd cluster %x from %s's data (member %x, raft index %d, revision %d) as a new single-member cluster; members cut off: %s",
		j.ClusterID, cfg.NodeName(), j.MemberID, j.Index, j.Revision, orNone(cut))}
	r.addParkStep(p)
	if j.Copy == "" {
		p.Add("stop local etcd", fmt.Sprintf("move %s out of the manifests dir and wait until etcd is gone (nothing may write the data dir while it is copied; without a quorum it commits nothing, so one still draining its clients %s after SIGTERM is killed)", h.EtcdManifest(), staticpod.EtcdDrainKillAfter),
			func(ctx context.Context) (string, error) {
				if j.Copy != "" {
					return "already done", nil
				}
				return stopSurvivor(ctx, e)
			})
		p.Add("copy data dir", fmt.Sprintf("copy %s to %s.before-recover-<time> (inside it, as %sbefore-recover-<time>, when it is a mount point); the copy is never deleted", cfg.DataDir(), cfg.DataDir(), etcddata.AsidePrefix),
			func(ctx context.Context) (string, error) {
				copied, err := etcddata.CopyAside(h.Path(cfg.DataDir()), "before-recover", h.Now())
				if err != nil {
					return "", err
				}
				j.Copy = h.HostPathOf(copied)
				if err := j.save(h); err != nil {
					return "", err
				}
				return "copied to " + j.Copy, nil
			})
	}
	if !j.NormalWritten {
		p.Add("force new cluster (quarantined)", fmt.Sprintf("write %s: this member under another pod name, with --force-new-cluster and client URL %s only (no apiserver reads it); it restarts from its own data as the only member, the others recorded as removed, so etcd answers their peer traffic with 410 Gone and they stop themselves%s", quarantineManifest(h), quarantineURL(), r.restartNote()),
			func(ctx context.Context) (string, error) {
				return r.quarantine(ctx, true)
			})
		p.Add("verify", fmt.Sprintf("the quarantined member leads itself alone, is member %x, and its revision is not behind %d", j.MemberID, j.Revision),
			func(ctx context.Context) (string, error) { return r.verify(ctx) })
		p.Add("marker", fmt.Sprintf("write %s on the recovered cluster (time, host, the members cut off) so join and status recognise stale members", MarkerKey),
			func(ctx context.Context) (string, error) { return r.writeMarker(ctx) })
		r.addSwitchSteps(p)
	}
	r.addFinishSteps(p)
	return p
}

// addParkStep stops this host's kube-apiserver until the "apiserver" step
// (staticpod.ParkAPIServer says why), when kubelet is to be restarted. In
// every journal state: a rerun may restart kubelet again.
func (r *Recovery) addParkStep(p *plan.Plan) {
	if !r.restartKubelet {
		return // the bridge needs the apiserver
	}
	e := r.env
	p.Add("park apiserver", fmt.Sprintf("move %s into %s and stop kube-apiserver until the member serves again: it cannot serve without etcd, and while it accepts connections without answering them a restarted kubelet waits up to 2 min before it mounts a new pod's volumes", e.Host.APIServerManifest(), e.Host.StateDir()),
		func(ctx context.Context) (string, error) { return e.Host.ParkAPIServer(ctx, e.Timeouts.EtcdStop) })
}

// addFinishSteps are the common end: the apiserver back on the local member,
// then the journal closed.
func (r *Recovery) addFinishSteps(p *plan.Plan) {
	e, j := r.env, r.j
	h, cfg := e.Host, e.Config
	if r.restartKubelet {
		// Also on a rerun: needed when the run stopped right after the
		// manifest; skipped by the step when kubelet started after it.
		e.AddKubeletRestartStep(p, fmt.Sprintf("it starts the new %s and restarts this host's kube-apiserver at once (it holds the apiserver, which crash-looped while etcd had no quorum, in back-off for up to 5 min; and a kubelet that has not reached its apiserver since it started replaces no static pod)", h.EtcdManifest()))
		p.Add("etcd", fmt.Sprintf("wait until the member serves at %s as the recovered member, its revision not behind the survey's", staticpod.LocalEtcdServer(cfg)),
			func(ctx context.Context) (string, error) { return r.waitNormal(ctx) })
	}
	p.Add("apiserver", "kube-apiserver on this host reads the local member again (its manifest back in place if parked); wait until it is ready",
		func(ctx context.Context) (string, error) {
			back, err := h.UnparkAPIServer()
			if err != nil {
				return "", err
			}
			unparked := ""
			if back {
				unparked = "manifest back in place; "
			}
			servers, err := h.APIServerEtcdServers()
			if err != nil {
				return "no kube-apiserver manifest on this host", nil
			}
			if !(len(servers) == 1 && servers[0] == staticpod.LocalEtcdServer(cfg)) {
				note, err := h.RestartAPIServerWith(ctx, cfg, []string{staticpod.LocalEtcdServer(cfg)}, e.Timeouts.APIServer)
				if err != nil {
					return "", err
				}
				return unparked + "re-pointed from " + strings.Join(servers, ",") + ": " + note, nil
			}
			return unparked + "ready", h.WaitAPIServerReady(ctx, cfg, e.Timeouts.APIServer)
		})
	p.Add("finish", "close the journal "+journalPath(h), func(ctx context.Context) (string, error) {
		j.Done, j.Finished = true, h.Now().UTC()
		if err := j.save(h); err != nil {
			return "", err
		}
		return "", retireJournal(h, j)
	})
}

func stopEtcd(ctx context.Context, e *hostlocal.Env) (string, error) {
	if err := e.Host.StopEtcd(); err != nil {
		return "", err
	}
	return e.Host.WaitEtcdGone(ctx, e.Config, e.Timeouts.EtcdStop)
}

// stopSurvivor stops the member a recovery starts from. recover runs only
// when the survey found no quorum, so the member commits nothing, and its
// graceful stop is mostly a wait for kube-apiserver's watches to end (7 s):
// it is killed after a short drain, see staticpod.WaitEtcdGoneWithoutQuorum.
func stopSurvivor(ctx context.Context, e *hostlocal.Env) (string, error) {
	if err := e.Host.StopEtcd(); err != nil {
		return "", err
	}
	return e.Host.WaitEtcdGoneWithoutQuorum(ctx, e.Config, e.Timeouts.EtcdStop)
}

// keepOwnSettings: the member rebuilt here keeps the settings every member
// must share as its manifest has them (see hostlocal.Env.KeepOwnSettings).
func (r *Recovery) keepOwnSettings() {
	note, err := r.env.KeepOwnSettings()
	if err != nil {
		// A manifest edited past parsing must not stop a recovery: it is
		// rewritten from the cluster's configuration alone, as before.
		note = fmt.Sprintf("the member's own settings are not kept: %v", err)
	}
	if note != "" {
		r.Res.Notes = append(r.Res.Notes, note)
	}
}

// quarantineConfig is cfg with the member's client URLs moved to the
// quarantine port (and, for recover, --force-new-cluster): rendered by
// kubeadm's own GetEtcdPodSpec like every other manifest.
func quarantineConfig(cfg *staticpod.Config, force bool) *staticpod.Config {
	local := *cfg.Init.Etcd.Local
	q := fmt.Sprintf("https://127.0.0.1:%d", QuarantinePort)
	local.ExtraArgs = append(slices.Clone(local.ExtraArgs),
		kubeadmapi.Arg{Name: "listen-client-urls", Value: q},
		kubeadmapi.Arg{Name: "advertise-client-urls", Value: q})
	if force {
		local.ExtraArgs = append(local.ExtraArgs, kubeadmapi.Arg{Name: "force-new-cluster", Value: "true"})
	}
	init := *cfg.Init
	init.Etcd.Local = &local
	out := *cfg
	out.Init = &init
	return &out
}

func quarantineURL() string { return fmt.Sprintf("https://127.0.0.1:%d", QuarantinePort) }

// quarantineAction is what the quarantine step does before it waits for the
// quarantined member to serve.
type quarantineAction struct {
	// write: write the quarantine manifest, record it in the journal, and
	// restart kubelet when that is allowed. Otherwise a rerun finds the
	// manifest the journal records still in place, and only waits for its
	// member.
	write bool
	// stopEtcd: an etcd still runs on the data dir while no quarantine pod
	// is there, so it is the old member, which must be gone before the
	// quarantined one starts on the same data.
	stopEtcd bool
	// checkPort: the quarantine port must be free; only when no quarantine
	// manifest was ever written, since otherwise the member quarantined
	// before may hold it (also when a run was killed between writing the
	// manifest and recording it in the journal).
	checkPort bool
}

// quarantineStep decides the quarantine step from what an earlier run
// left: whether the journal says the manifest was written, whether it is
// still in the manifests dir, and whether an etcd runs on the data dir.
func quarantineStep(quarantined, manifestThere, etcdRunning bool) quarantineAction {
	if quarantined && manifestThere {
		return quarantineAction{}
	}
	return quarantineAction{write: true, stopEtcd: etcdRunning && !manifestThere, checkPort: !quarantined && !manifestThere}
}

// quarantine writes the quarantined member's manifest and waits until it serves.
func (r *Recovery) quarantine(ctx context.Context, force bool) (string, error) {
	e, j := r.env, r.j
	h, cfg := e.Host, e.Config
	note := ""
	manifestThere := fileExists(h.Path(quarantineManifest(h)))
	if act := quarantineStep(j.Quarantined, manifestThere, len(h.EtcdPIDs(cfg)) > 0); act.write {
		if act.stopEtcd {
			stop := stopEtcd
			if force {
				stop = stopSurvivor // recover's survivor, which has no quorum
			}
			if _, err := stop(ctx, e); err != nil {
				return "", err
			}
		}
		if act.checkPort {
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", QuarantinePort)); err != nil {
				return "", fmt.Errorf("the quarantine port %d is in use on %s: %w", QuarantinePort, cfg.NodeName(), err)
			} else {
				l.Close()
			}
		}
		manifest, err := renderQuarantine(cfg, force)
		if err != nil {
			return "", err
		}
		if err := h.WriteFile(quarantineManifest(h), manifest, 0o600); err != nil {
			return "", err
		}
		j.Quarantined = true
		if err := j.save(h); err != nil {
			return "", err
		}
		if r.restartKubelet {
			// A kubelet that reaches its apiserver would first create the
			// quarantine pod's mirror pod, and an apiserver without a quorum
			// takes every request and answers none: 34 s per static pod
			// change (hack/bench-mttr.sh). A restarted kubelet has not
			// listed its Node yet, so it creates no mirror pod and starts
			// the pod at once; its back-offs are gone too.
			if err := h.RestartKubelet(ctx, e.Timeouts.Kubelet); err != nil {
				return "", err
			}
			note = "kubelet restarted; "
		}
	}
	st, err := r.waitServing(ctx, quarantineURL())
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%smember %x of cluster %x serving on the quarantine port, revision %d", note, st.id, st.clusterID, st.Revision), nil
}

// waitServing waits until the member at endpoint answers and leads.
func (r *Recovery) waitServing(ctx context.Context, endpoint string) (*Survivor, error) {
	e := r.env
	tlsCfg, err := e.Host.EphemeralClientTLS(e.Config)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(e.Timeouts.EtcdStart)
	var last error
	for {
		st, err := status(ctx, tlsCfg, endpoint)
		if err == nil && st.Leader != 0 {
			s := &Survivor{}
			fill(s, st)
			return s, nil
		}
		if err == nil {
			err = fmt.Errorf("%s answers but has no leader yet", endpoint)
		}
		last = err
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("timed out after %s waiting for etcd on %s to serve at %s (last: %v); see the etcd container's log (crictl logs) on the host", e.Timeouts.EtcdStart, e.Config.NodeName(), endpoint, last)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// verify checks the quarantined member: its identity, alone in the
// membership, leading, and not behind what the survey read.
func (r *Recovery) verify(ctx context.Context) (string, error) {
	e, j := r.env, r.j
	tlsCfg, err := e.Host.EphemeralClientTLS(e.Config)
	if err != nil {
		return "", err
	}
	st, err := r.waitServing(ctx, quarantineURL())
	if err != nil {
		return "", err
	}
	if j.MemberID != 0 && st.id != j.MemberID {
		return "", fmt.Errorf("the quarantined member is %x, not %x whose data was surveyed", st.id, j.MemberID)
	}
	if st.leader != st.id {
		return "", fmt.Errorf("the quarantined member %x follows %x instead of leading alone", st.id, st.leader)
	}
	if st.Revision < j.Revision {
		return "", fmt.Errorf("the recovered member's revision %d is behind the %d read before: data is missing; the copy %s is untouched", st.Revision, j.Revision, j.Copy)
	}
	ms, err := memberList(ctx, tlsCfg, quarantineURL())
	if err != nil {
		return "", err
	}
	if len(ms) != 1 || ms[0].ID != st.id {
		return "", fmt.Errorf("the recovered cluster has %d members, want only %x", len(ms), st.id)
	}
	if j.ClusterID == 0 {
		j.ClusterID, j.MemberID = st.clusterID, st.id
		if err := j.save(e.Host); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("member %x alone, leading, revision %d (was %d)", st.id, st.Revision, j.Revision), nil
}

func (r *Recovery) writeMarker(ctx context.Context) (string, error) {
	e, j := r.env, r.j
	tlsCfg, err := e.Host.EphemeralClientTLS(e.Config)
	if err != nil {
		return "", err
	}
	m := hostlocal.RecoveryMarker{Verb: j.Verb, Time: j.Started, Host: j.Node, MemberID: fmt.Sprintf("%x", j.MemberID), ClusterID: fmt.Sprintf("%x", j.ClusterID),
		RemovedMembers: j.Old, RevisionBefore: j.Revision, RaftIndex: j.Index, Copy: j.Copy, Snapshot: j.Snapshot}
	raw, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	c, err := etcdcluster.New(etcdcluster.Config{Endpoints: []string{quarantineURL()}, TLS: tlsCfg, DialTimeout: 2 * time.Second,
		CallTimeout: 10 * time.Second})
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.Put(ctx, MarkerKey, string(raw)); err != nil {
		return "", err
	}
	return "", nil
}

// writeNormal stops the quarantine pod and writes kubeadm's single-member
// manifest.
func (r *Recovery) writeNormal(ctx context.Context) error {
	e, j := r.env, r.j
	h, cfg := e.Host, e.Config
	manifest, err := staticpod.RenderEtcdManifest(cfg, nil)
	if err != nil {
		return err
	}
	// The quarantined member must be gone before the normal one starts on
	// the same data dir.
	if err := r.stopQuarantine(ctx); err != nil {
		return err
	}
	if err := h.WriteEtcdManifest(manifest); err != nil {
		return err
	}
	j.NormalWritten = true
	return j.save(h)
}

// waitNormal waits until the recovered member serves on the normal client
// port, as itself and not behind what the survey read.
func (r *Recovery) waitNormal(ctx context.Context) (string, error) {
	e, j := r.env, r.j
	cfg := e.Config
	st, err := r.waitServing(ctx, staticpod.LocalEtcdServer(cfg))
	if err != nil {
		return "", err
	}
	if j.MemberID != 0 && st.id != j.MemberID {
		return "", fmt.Errorf("the member on %s is %x, not the recovered %x", staticpod.LocalEtcdServer(cfg), st.id, j.MemberID)
	}
	if st.Revision < j.Revision {
		return "", fmt.Errorf("the member's revision %d is behind the %d read before", st.Revision, j.Revision)
	}
	return fmt.Sprintf("member %x serving at %s, revision %d", st.id, staticpod.LocalEtcdServer(cfg), st.Revision), nil
}

func nextSteps(cfg *staticpod.Config, j *journal) []string {
	ep := "https://" + net.JoinHostPort(cfg.AdvertiseAddress(), "2379")
	var out []string
	for _, m := range j.Old {
		if slices.Contains(m.PeerURLs, cfg.PeerURL()) {
			continue // this host's own old member (restore)
		}
		name := m.Name
		if name == "" {
			name = fmt.Sprintf("%x", m.ID)
		}
		until := "Until then its etcd stops itself whenever it reaches this member (removed: 410 Gone)."
		if j.Verb == "restore" {
			until = "If its old data survived, keep it off until then: the restored cluster has a new ID, so its old member is not told to stop."
		}
		out = append(out, fmt.Sprintf("%s (old member %x, %s): when it is back, run as root on it: kubectl-etcd join --endpoints %s   (its stale data is moved aside, never used; it joins as a new learner). %s Gone for good: nothing is left to remove from etcd; `kubectl etcd remove %s --delete-node` deletes its Node and mirror pods; give the cluster a new control-plane host (kubeadm join --control-plane) or grow it with kubectl etcd scale.",
			name, m.ID, strings.Join(m.PeerURLs, ","), ep, until, name))
	}
	if len(out) == 0 {
		out = append(out, "grow the cluster again with kubectl etcd scale --replicas 3 (or kubectl-etcd join on each control-plane host)")
	}
	return out
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
