package hostlocal

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcddata"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// State is what the host and the cluster look like from this host.
type State struct {
	Node            string              `json:"node"`
	Address         string              `json:"address"`
	PeerURL         string              `json:"peerURL"`
	ManifestPresent bool                `json:"manifestPresent"`
	EtcdRunning     bool                `json:"etcdRunning"`
	DataDir         string              `json:"dataDir"`
	DataDirFacts    *etcddata.State     `json:"dataDirFacts,omitempty"`
	Local           *hostapi.MemberRow  `json:"local,omitempty"`
	LocalError      string              `json:"localError,omitempty"`
	ClusterID       string              `json:"clusterID,omitempty"`
	Members         []hostapi.MemberRow `json:"members,omitempty"`
	ClusterError    string              `json:"clusterError,omitempty"`
	// NoLeader says which member, asked first, answered without a leader:
	// the cluster lost its quorum, or is electing a leader.
	NoLeader             string   `json:"noLeader,omitempty"`
	APIServerEtcdServers []string `json:"apiserverEtcdServers,omitempty"`
	// Stale says why this host's data must not be used: its member was cut
	// off by a recover or restore (the cluster's recovery marker names it).
	Stale   string `json:"stale,omitempty"`
	Summary string `json:"summary"`
}

// ReadState looks at the host and, through whatever member answers, the
// cluster. It changes nothing and does not fail on a dead member or a
// stopped etcd: those are facts to report. extraEndpoints are tried too.
func (e *Env) ReadState(ctx context.Context, extraEndpoints []string) *State {
	cfg, h := e.Config, e.Host
	st := &State{Node: cfg.NodeName(), Address: cfg.AdvertiseAddress(), PeerURL: cfg.PeerURL(),
		ManifestPresent: h.EtcdManifestExists(), DataDir: cfg.DataDir()}
	st.EtcdRunning = len(h.EtcdPIDs(cfg)) > 0
	if servers, err := h.APIServerEtcdServers(); err == nil {
		st.APIServerEtcdServers = servers
	}
	if !st.EtcdRunning {
		if facts, err := e.dataDirState(); err == nil {
			st.DataDirFacts = facts
		} else {
			st.LocalError = err.Error()
		}
	}
	endpoints, refused := withoutRefused(ctx, e.candidateEndpoints(extraEndpoints, st.EtcdRunning))
	tlsCfg, err := h.EphemeralClientTLS(cfg)
	if err == nil && len(endpoints) == 0 && len(refused) > 0 {
		// Nothing listens where a member could answer: etcd's client
		// would retry those dials until its 10 s bound.
		err = fmt.Errorf("no etcd endpoint answered: %s", strings.Join(refused, "; "))
	}
	read := e
	if err == nil {
		if st.NoLeader = leaderless(ctx, endpoints, tlsCfg); st.NoLeader != "" {
			// The linearizable member list that proves the cluster
			// answers cannot succeed without a leader: it is given the
			// time an election takes, not the whole call bound. This is
			// status during a quorum loss, run on every host to find the
			// one furthest ahead: it should not wait 10 s to say so.
			short := *e
			short.Timeouts.ClusterCall = min(e.Timeouts.ClusterCall, leaderlessCall)
			read = &short
		}
	}
	if err != nil {
		st.ClusterError = err.Error()
	} else if c, err := read.connect(ctx, endpoints, tlsCfg); err != nil {
		st.ClusterError = err.Error()
	} else {
		defer c.Close()
		members, err := c.Members(ctx)
		if err != nil {
			st.ClusterError = err.Error()
		}
		statuses, _ := c.Statuses(ctx)
		st.Members = rows(members, statuses, cfg.PeerURL())
		for _, s := range statuses {
			if s.Healthy && s.ClusterID != 0 {
				st.ClusterID = fmt.Sprintf("%x", s.ClusterID)
			}
		}
		for i := range st.Members {
			if st.Members[i].ThisHost {
				st.Local = &st.Members[i]
			}
		}
		if m := recoveryMarker(ctx, c); m != nil && st.DataDirFacts != nil && st.DataDirFacts.HasData && m.Cut(st.DataDirFacts.MemberID) {
			st.Stale = describeMarker(m, st.DataDirFacts.MemberID)
		}
	}
	st.Summary = summarize(st)
	return st
}

// withoutRefused drops the endpoints whose port refuses a connection, all
// probed at once, and says why each was dropped. An endpoint that does not
// answer the probe in time is kept: a member behind a slow link may still.
func withoutRefused(ctx context.Context, endpoints []string) (kept, refused []string) {
	errs := make([]error, len(endpoints))
	var wg sync.WaitGroup
	for i, ep := range endpoints {
		wg.Go(func() { errs[i] = etcdcluster.PortProbe(ctx, ep, time.Second) })
	}
	wg.Wait()
	for i, ep := range endpoints {
		if errs[i] != nil && errors.Is(errs[i], syscall.ECONNREFUSED) {
			refused = append(refused, fmt.Sprintf("%s: %v", ep, errs[i]))
			continue
		}
		kept = append(kept, ep)
	}
	return kept, refused
}

// leaderlessCall bounds a linearizable read when the first member asked
// has no leader: an election is over well within it.
const leaderlessCall = 3 * time.Second

// leaderless asks the first of endpoints (the local member when it runs)
// for its status, which needs no quorum, and says so when it answers
// without a leader; "" otherwise (a leader, or no answer).
func leaderless(ctx context.Context, endpoints []string, tlsCfg *tls.Config) string {
	if len(endpoints) == 0 {
		return ""
	}
	st, err := etcdcluster.StatusOf(ctx, tlsCfg, endpoints[0], 2*time.Second)
	if err != nil || st.Leader != 0 {
		return ""
	}
	return fmt.Sprintf("member %x at %s has no leader", st.Header.GetMemberId(), endpoints[0])
}

// candidateEndpoints are the places a member of this host's cluster may
// answer: the local member, given endpoints, the apiserver's etcd servers,
// and the peers named in the local manifest.
func (e *Env) candidateEndpoints(extra []string, localRunning bool) []string {
	seen := map[string]bool{}
	var out []string
	add := func(u string) {
		if u != "" && !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	if localRunning {
		add(staticpod.LocalEtcdServer(e.Config))
	}
	for _, u := range extra {
		add(u)
	}
	if servers, err := e.Host.APIServerEtcdServers(); err == nil {
		for _, u := range servers {
			add(u)
		}
	}
	for _, p := range e.Host.ManifestPeers() {
		if u, err := url.Parse(p); err == nil {
			add("https://" + net.JoinHostPort(u.Hostname(), "2379"))
		}
	}
	return out
}

func rows(members []etcdcluster.Member, statuses []etcdcluster.Status, selfPeer string) []hostapi.MemberRow {
	byID := map[uint64]etcdcluster.Status{}
	for _, s := range statuses {
		byID[s.Member.ID] = s
	}
	var out []hostapi.MemberRow
	for _, m := range members {
		var st *etcdcluster.Status
		if s, ok := byID[m.ID]; ok {
			st = &s
		}
		r := hostapi.MemberRowOf(m, st)
		r.Started = m.Started()
		r.ThisHost = r.PeerURL != "" && r.PeerURL == selfPeer
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func summarize(st *State) string {
	if st.Stale != "" {
		return "STALE: " + st.Stale + "; run kubectl-etcd join --endpoints <a member's client URL> here"
	}
	var who string
	switch {
	case st.Local != nil && st.Local.Learner:
		who = fmt.Sprintf("%s is a learner (not yet a voting member)", st.Node)
	case st.Local != nil:
		who = fmt.Sprintf("%s is a voting member", st.Node)
	case st.NoLeader != "" && len(st.Members) == 0:
		who = fmt.Sprintf("%s: %s", st.Node, st.NoLeader)
	case st.EtcdRunning || st.ManifestPresent:
		who = fmt.Sprintf("%s runs an etcd that is not a member of the cluster it can see", st.Node)
	default:
		who = fmt.Sprintf("%s has no etcd member", st.Node)
	}
	if len(st.Members) == 0 && st.NoLeader != "" {
		return who + ": the cluster has lost its quorum, or is electing a leader (rerun in a few seconds; `kubectl-etcd recover --dry-run` shows what is left of it)"
	}
	if len(st.Members) == 0 {
		return who + "; no cluster member answered"
	}
	v := etcdcluster.CountVotes(st.Members, func(m hostapi.MemberRow) bool { return m.Learner }, func(m hostapi.MemberRow) bool { return m.Healthy })
	summary := fmt.Sprintf("%s; cluster: %d voting members, %d healthy (%s)", who, v.Voters, v.Healthy, v.QuorumWord())
	for _, m := range st.Members {
		for _, a := range m.Alarms {
			summary += fmt.Sprintf("; ALARM %s raised by %s: the cluster takes no writes (see `kubectl-etcd alarm list --local`)", a, m.Name)
		}
	}
	return summary
}

// PrintState writes the state for people.
func PrintState(w io.Writer, st *State) {
	fmt.Fprintf(w, "Host %s (%s), peer URL %s\n", st.Node, st.Address, st.PeerURL)
	fmt.Fprintf(w, "  etcd manifest: %s   etcd running: %s   data dir: %s\n", yesNo(st.ManifestPresent), yesNo(st.EtcdRunning), st.DataDir)
	if st.DataDirFacts != nil && st.DataDirFacts.HasData {
		f := st.DataDirFacts
		fmt.Fprintf(w, "  data dir (offline): member %x of cluster %x, raft term %d commit %d, revision %d\n",
			f.MemberID, f.ClusterID, f.RaftTerm, f.RaftCommit, f.Revision)
	}
	if len(st.APIServerEtcdServers) > 0 {
		fmt.Fprintf(w, "  kube-apiserver reads etcd at: %s\n", strings.Join(st.APIServerEtcdServers, ","))
	}
	if st.LocalError != "" && !st.EtcdRunning {
		fmt.Fprintf(w, "  local: %s\n", st.LocalError)
	}
	if st.ClusterError != "" {
		fmt.Fprintf(w, "  cluster: %s\n", st.ClusterError)
	}
	if len(st.Members) > 0 {
		fmt.Fprintf(w, "Cluster %s members:\n", st.ClusterID)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  NAME\tID\tROLE\tHEALTH\tLEADER\tRAFT INDEX\tREVISION\tPEER URL")
		for _, m := range st.Members {
			role := "voter"
			if m.Learner {
				role = "learner"
			}
			health := "healthy"
			if len(m.Alarms) > 0 {
				// etcd's alarms stop every write: the first thing to see.
				health = "ALARM " + strings.Join(m.Alarms, ",") + " (healthy)"
			}
			if !m.Healthy {
				health = "unhealthy"
				if m.Error != "" {
					health = "down: " + shorten(m.Error, 40)
				}
			}
			name := m.Name
			if m.ThisHost {
				name += " (this host)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", name, m.ID, role, health, yesNo(m.Leader), m.RaftIndex, m.Revision, m.PeerURL)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "State: %s\n", st.Summary)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
