// Package recover brings a kubeadm stacked etcd back after quorum loss, from
// the data of a surviving member (Recover), or after total loss, from a
// snapshot (Restore). Both run as root on a control-plane host with the
// apiserver down, so they work from the host's files and certificates alone.
//
// The guarantees, in order: the most recent surviving data wins (a survivor
// further ahead is named, and used unless --here); nothing is deleted (the
// data dir is copied or moved aside first); no apiserver reads the recovering
// member until it is verified (it serves on a quarantine client port until
// then, as etcd-manager does); every step can be run again after a crash (a
// journal in /etc/kubernetes/kubectl-etcd records what is done); and the end
// is a normal kubeadm single-member manifest that `join` and `scale` grow back.
package recover

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcddata"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// Survivor is one member of the old membership as the survey found it.
type Survivor struct {
	Name      string `json:"name"`
	ID        string `json:"id"`
	PeerURL   string `json:"peerURL"`
	ClientURL string `json:"clientURL,omitempty"`
	ThisHost  bool   `json:"thisHost,omitempty"`
	// Running: etcd answered (for this host: an etcd process serves the data dir).
	Running   bool   `json:"running"`
	Offline   bool   `json:"offline,omitempty"` // facts read from the stopped data dir
	Silent    bool   `json:"silent,omitempty"`  // its port accepts connections, but etcd does not answer
	RaftIndex uint64 `json:"raftIndex,omitempty"`
	RaftTerm  uint64 `json:"raftTerm,omitempty"`
	Revision  int64  `json:"revision,omitempty"`
	Leader    string `json:"leader,omitempty"` // the leader it follows, if any
	ClusterID string `json:"clusterID,omitempty"`
	Error     string `json:"error,omitempty"`

	id, clusterID, leader uint64
}

// Survey is what is left of the cluster, seen from this host.
type Survey struct {
	Local   Survivor          `json:"local"`
	Others  []Survivor        `json:"others"`
	Members []etcddata.Member `json:"members"` // the old membership
	Removed []uint64          `json:"-"`
	Quorum  bool              `json:"quorum"`
	Ahead   *Survivor         `json:"ahead,omitempty"`  // a reachable survivor further ahead than this host
	Silent  *Survivor         `json:"silent,omitempty"` // a survivor that is up but cannot be asked
	Data    *etcddata.State   `json:"dataDir,omitempty"`
	cfg     *staticpod.Config
	host    *staticpod.Host
	tls     *tls.Config
}

// survey looks at the local member (running or not) and every other member of
// its membership that answers with this host's CA. It changes nothing.
func survey(ctx context.Context, e *hostlocal.Env) (*Survey, error) {
	h, cfg := e.Host, e.Config
	tlsCfg, err := h.EphemeralClientTLS(cfg)
	if err != nil {
		return nil, err
	}
	s := &Survey{cfg: cfg, host: h, tls: tlsCfg}
	s.Local = Survivor{Name: cfg.NodeName(), PeerURL: cfg.PeerURL(), ClientURL: staticpod.LocalEtcdServer(cfg), ThisHost: true}
	running := len(h.EtcdPIDs(cfg)) > 0
	var st *etcdcluster.EndpointStatus
	if running {
		st, err = status(ctx, tlsCfg, staticpod.LocalEtcdServer(cfg))
	}
	if running && err == nil {
		fill(&s.Local, st)
		s.Local.Running = true
		ms, err := memberList(ctx, tlsCfg, staticpod.LocalEtcdServer(cfg))
		if err != nil {
			return nil, err
		}
		s.Members = ms
	} else {
		var facts *etcddata.State
		var membership *etcddata.Membership
		if running {
			// Up but not serving: a member restarted without a quorum
			// does not answer clients until it has rejoined.
			facts, membership, err = etcddata.ReadInUse(h.Path(cfg.DataDir()))
		} else {
			facts, err = etcddata.Read(h.Path(cfg.DataDir()))
		}
		if err != nil {
			return nil, err
		}
		if !facts.HasData {
			return nil, fmt.Errorf("%s has no etcd data in %s and no etcd running: there is nothing here to recover from; run recover on a host that has its data dir, or restore a snapshot (kubectl-etcd restore FILE)", cfg.NodeName(), cfg.DataDir())
		}
		s.Data = facts
		s.Local.Offline = true
		s.Local.id, s.Local.clusterID = facts.MemberID, facts.ClusterID
		s.Local.ID, s.Local.ClusterID = fmt.Sprintf("%x", facts.MemberID), fmt.Sprintf("%x", facts.ClusterID)
		s.Local.RaftIndex = max(facts.RaftCommit, facts.ConsistentIndex)
		s.Local.RaftTerm, s.Local.Revision = facts.RaftTerm, facts.Revision
		if membership == nil {
			if membership, err = etcddata.ReadMembership(h.Path(cfg.DataDir())); err != nil {
				return nil, err
			}
		}
		s.Members, s.Removed = membership.Members, membership.Removed
	}
	// Ask every other member at once: a powered-off host costs a dial
	// timeout, and there may be several.
	var others []etcddata.Member
	for _, m := range s.Members {
		if m.ID != s.Local.id {
			others = append(others, m)
		}
	}
	s.Others = make([]Survivor, len(others))
	var wg sync.WaitGroup
	for i, m := range others {
		wg.Go(func() { s.Others[i] = ask(ctx, tlsCfg, m) })
	}
	wg.Wait()
	s.judge()
	return s, nil
}

// judge reads the survey's verdicts off what the survivors answered: Quorum
// when this host's member or a running other follows a leader; Silent, the
// first other that is up but cannot be asked; Ahead, the running other with
// the highest raft index above this host's (the first of equals), whose data
// a recovery should start from instead.
func (s *Survey) judge() {
	s.Quorum, s.Silent, s.Ahead = s.Local.Leader != "", nil, nil
	for i := range s.Others {
		o := &s.Others[i]
		if o.Silent && (s.Silent == nil) {
			s.Silent = o
		}
		if !o.Running {
			continue
		}
		if o.Leader != "" {
			s.Quorum = true
		}
		if o.RaftIndex > s.Local.RaftIndex && (s.Ahead == nil || o.RaftIndex > s.Ahead.RaftIndex) {
			s.Ahead = o
		}
	}
}

// ask surveys one other member through its client URL.
func ask(ctx context.Context, tlsCfg *tls.Config, m etcddata.Member) Survivor {
	o := Survivor{Name: m.Name, ID: fmt.Sprintf("%x", m.ID), id: m.ID}
	if len(m.PeerURLs) > 0 {
		o.PeerURL = m.PeerURLs[0]
	}
	o.ClientURL = clientURLOf(m)
	if o.ClientURL == "" {
		o.Error = "no client URL known"
		return o
	}
	// The port probe runs alongside the status call, not after it fails: a
	// powered-off host costs both their timeouts otherwise. A port that
	// refuses the connection ends the status call at once: nothing serves
	// there, and etcd's client would only retry the dial until its timeout
	// (a host whose etcd is stopped, or that is up without it, answers
	// this way; only one that drops packets costs the timeout).
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	probe := make(chan error, 1)
	go func() {
		err := etcdcluster.PortProbe(ctx, o.ClientURL, 2*time.Second)
		if err != nil {
			cancel()
		}
		probe <- err
	}()
	st, err := status(sctx, tlsCfg, o.ClientURL)
	var probeErr error
	answered(&o, st, err, func() bool { probeErr = <-probe; return probeErr == nil })
	if err != nil && probeErr != nil && sctx.Err() != nil && ctx.Err() == nil {
		o.Error = fmt.Sprintf("%s: %v", o.ClientURL, probeErr) // the probe's reason, not the cancelled call's
	}
	return o
}

// answered records in o what its member said to a status request: st, or
// err when it did not answer, in which case portOpen tells a member that is
// up but silent from one that is down. An answer as another member (a
// client URL reused by a rebuilt host) is not this member running.
func answered(o *Survivor, st *etcdcluster.EndpointStatus, err error, portOpen func() bool) {
	switch {
	case err != nil && portOpen():
		// Its etcd is up but does not answer: restarted without a quorum,
		// it serves no client until it rejoins. Its raft index is unknown.
		o.Silent = true
		o.Error = "etcd is up but does not answer (restarted without a quorum): its raft index is unknown"
	case err != nil:
		o.Error = err.Error()
	case st.Header.GetMemberId() != o.id:
		o.Error = fmt.Sprintf("%s answers as member %x, not %x", o.ClientURL, st.Header.GetMemberId(), o.id)
	default:
		fill(o, st)
		o.Running = true
	}
}

func fill(s *Survivor, st *etcdcluster.EndpointStatus) {
	s.id, s.clusterID, s.leader = st.Header.GetMemberId(), st.Header.GetClusterId(), st.Leader
	s.ID, s.ClusterID = fmt.Sprintf("%x", s.id), fmt.Sprintf("%x", s.clusterID)
	if st.Leader != 0 {
		s.Leader = fmt.Sprintf("%x", st.Leader)
	}
	s.RaftIndex, s.RaftTerm, s.Revision = st.RaftIndex, st.RaftTerm, st.Header.GetRevision()
}

// clientURLOf is a member's client URL, or kubeadm's (port 2379 on its peer
// address) when it never published one.
func clientURLOf(m etcddata.Member) string {
	if len(m.ClientURLs) > 0 {
		return m.ClientURLs[0]
	}
	if len(m.PeerURLs) == 0 {
		return ""
	}
	u, err := url.Parse(m.PeerURLs[0])
	if err != nil || u.Hostname() == "" {
		return ""
	}
	return "https://" + net.JoinHostPort(u.Hostname(), "2379")
}

// status asks one endpoint for its status; it needs no quorum. A member
// answers in milliseconds; a powered-off host's costs the whole timeout,
// and the survey waits for the slowest.
func status(ctx context.Context, tlsCfg *tls.Config, endpoint string) (*etcdcluster.EndpointStatus, error) {
	return etcdcluster.StatusOf(ctx, tlsCfg, endpoint, 2*time.Second)
}

// memberList is a serializable member list from one endpoint: it needs no quorum.
func memberList(ctx context.Context, tlsCfg *tls.Config, endpoint string) ([]etcddata.Member, error) {
	ms, err := etcdcluster.MembersAt(ctx, tlsCfg, endpoint, 3*time.Second)
	if err != nil {
		return nil, err
	}
	out := make([]etcddata.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, etcddata.Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
	}
	return out, nil
}
