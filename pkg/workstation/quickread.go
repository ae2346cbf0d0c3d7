package workstation

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdmetrics"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/maintenance"
)

// quickMemberTimeout bounds one member's metrics read.
const quickMemberTimeout = 5 * time.Second

var _ maintenance.QuickReader = (*execCluster)(nil)

// lookByMetrics is the look of a defrag run when the members' metrics
// settle it: the API objects as observeByExec lists them, then every etcd
// pod's member read through a port-forward to its metrics listener, all at
// once, and no exec. An exec starts a process in an etcd container
// (through apiserver, kubelet and the runtime) and costs several times a
// port-forward; the two a look takes by exec were most of what a defrag
// costs on top of etcd's own call (docs/bench/defrag.json). The
// connections stay open for the read after the defrag (QuickStatuses).
//
// The metrics settle it only when they leave nothing to guess: every pod's
// member answers and is healthy by its /health (no alarm raised), every
// member knows the same members (etcd_network_known_peers, etcd 3.6 and
// later), each of them is one pod's member, one leads, and every
// control-plane node has one. Anything else (a member down, an alarm, a
// member without a pod, an older etcd) is what the exec look reads and
// names, and it decides: why says what the metrics could not settle.
//
// A member's name and URLs are its pod's flags (--name,
// --initial-advertise-peer-urls, the advertised client URLs): the metrics
// identify the member a pod runs, not what it published. Its cluster ID is
// not known this way.
//
// reads are the pods' reads (startReads); o.now becomes when they started,
// if that was earlier: the look is as old as its oldest part.
func (c *execCluster) lookByMetrics(o *observed, reads *metricsReads) (why string) {
	reads.wg.Wait()
	if reads.started.Before(o.now) {
		o.now = reads.started
	}
	pods := o.pods
	samples := make([]etcdmetrics.Sample, len(pods))
	health := make([]string, len(pods))
	errs := make([]error, len(pods))
	for i, p := range pods {
		if p.metricsPort == 0 {
			return fmt.Sprintf("etcd pod %s serves no metrics over plain HTTP on its host's loopback (--listen-metrics-urls)", p.name)
		}
		r, ok := reads.byPod[p.name]
		if !ok {
			return fmt.Sprintf("etcd pod %s was not read", p.name)
		}
		samples[i], health[i], errs[i] = r.sample, r.health, r.err
	}
	return settle(o, samples, health, errs)
}

// metricsReads are the metrics and /health of every etcd pod, being read.
type metricsReads struct {
	started time.Time
	wg      sync.WaitGroup
	byPod   map[string]*podRead // final once wg is done
}

type podRead struct {
	sample etcdmetrics.Sample
	health string
	err    error
}

// startReads reads every pod's metrics and /health, all at once, in the
// background.
func (c *execCluster) startReads(ctx context.Context, pods []etcdPod) *metricsReads {
	reads := &metricsReads{started: time.Now(), byPod: map[string]*podRead{}}
	for _, p := range pods {
		if p.metricsPort == 0 {
			continue
		}
		pr := &podRead{}
		reads.byPod[p.name] = pr
		r := c.reader(p)
		reads.wg.Go(func() { pr.sample, pr.health, pr.err = r.read(ctx, true) })
	}
	return reads
}

// settle fills o's members and statuses from the pods' samples (see
// lookByMetrics), or says why they do not settle the look.
func settle(o *observed, samples []etcdmetrics.Sample, health []string, errs []error) (why string) {
	pods := o.pods
	byID := map[uint64]int{}
	leader := uint64(0)
	for i, s := range samples {
		p := pods[i]
		switch {
		case errs[i] != nil:
			return fmt.Sprintf("etcd pod %s: %v", p.name, errs[i])
		case health[i] != "":
			return fmt.Sprintf("etcd pod %s: /health says %s", p.name, health[i])
		case s.KnownPeers == nil:
			return fmt.Sprintf("etcd pod %s names no known peers (etcd before 3.6)", p.name)
		case !s.HasLeader:
			return fmt.Sprintf("etcd pod %s's member has no leader", p.name)
		}
		if j, dup := byID[s.ServerID]; dup {
			return fmt.Sprintf("etcd pods %s and %s answer as the same member %x", pods[j].name, p.name, s.ServerID)
		}
		byID[s.ServerID] = i
		if s.IsLeader {
			if leader != 0 {
				return "two members say they lead"
			}
			leader = s.ServerID
		}
	}
	if leader == 0 {
		return "no member says it leads"
	}
	for i, s := range samples {
		known := slices.Sorted(slices.Values(s.KnownPeers))
		if len(known) != len(byID) || slices.ContainsFunc(known, func(id uint64) bool { _, ok := byID[id]; return !ok }) {
			return fmt.Sprintf("the member of etcd pod %s knows members %x; the pods run %x", pods[i].name, known, slices.Sorted(func(yield func(uint64) bool) {
				for id := range byID {
					if !yield(id) {
						return
					}
				}
			}))
		}
	}
	var members []etcdcluster.Member
	var statuses []etcdcluster.Status
	for i, s := range samples {
		p := pods[i]
		m := etcdcluster.Member{ID: s.ServerID, Name: p.memberName, PeerURLs: p.peerURLs, ClientURLs: p.clientURLs, IsLearner: s.IsLearner}
		members = append(members, m)
		statuses = append(statuses, etcdcluster.Status{Member: m, Endpoint: firstOr(p.clientURLs), Healthy: true,
			Leader: leader, IsLeader: s.IsLeader, RaftIndex: s.CommittedIndex, Revision: s.Revision,
			DBSize: s.DBSize, DBSizeInUse: s.DBSizeInUse, Version: s.Version})
	}
	// In the member list's order.
	slices.SortFunc(members, func(a, b etcdcluster.Member) int { return compareID(a.ID, b.ID) })
	slices.SortFunc(statuses, func(a, b etcdcluster.Status) int { return compareID(a.Member.ID, b.Member.ID) })
	for _, n := range o.nodes {
		if memberAt(members, n) == nil {
			// The exec look reads the recovery marker that explains it.
			return fmt.Sprintf("control-plane node %s runs no member", n.Name)
		}
	}
	o.members, o.statuses = members, statuses
	return ""
}

func compareID(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// QuickStatuses refreshes prev from every member's metrics, read through
// the port-forwards the run's look opened (or predial did), all at once:
// the read after a defrag. Each member is matched to its pod by its
// control-plane node; a member without one, or a pod without such a
// listener, means the cluster cannot be read this way. The result is also
// the run's newest observation: the state the run left, when nothing was
// changed after it.
func (c *execCluster) QuickStatuses(ctx context.Context, prev []etcdcluster.Status) ([]etcdcluster.Status, error) {
	if c.last == nil {
		return nil, errors.New("no read of the membership to refresh")
	}
	pods, err := c.pods(ctx)
	if err != nil {
		return nil, err
	}
	podOn := map[string]etcdPod{}
	for _, p := range pods {
		podOn[p.node] = p
	}
	at := time.Now()
	samples := make([]etcdmetrics.Sample, len(prev))
	errs := make([]error, len(prev))
	var wg sync.WaitGroup
	for i, st := range prev {
		p, ok := podOn[c.last.hostOf(st.Member)]
		if !ok {
			return nil, fmt.Errorf("member %s has no etcd pod on a control-plane node to read the metrics of", describeMember(st.Member))
		}
		if p.metricsPort == 0 {
			return nil, fmt.Errorf("etcd pod %s serves no metrics over plain HTTP on its host's loopback (--listen-metrics-urls)", p.name)
		}
		r := c.reader(p)
		wg.Go(func() { samples[i], _, errs[i] = r.read(ctx, false) })
	}
	wg.Wait()
	out := refresh(prev, samples, errs)
	last := *c.last
	last.statuses, last.now = out, at
	c.last = &last
	return out, nil
}

// refresh is prev with what each member's metrics sample says (errs[i]
// when it could not be read): whether it answers and knows a leader, its
// database size, revision and committed index. A sample from another
// member than prev's (its host's etcd was replaced) is that member not
// answering. The rest (alarms, errors, term) stays as prev read it.
func refresh(prev []etcdcluster.Status, samples []etcdmetrics.Sample, errs []error) []etcdcluster.Status {
	var leader uint64
	for i, s := range samples {
		if errs[i] == nil && s.IsLeader && s.ServerID == prev[i].Member.ID {
			leader = s.ServerID
		}
	}
	out := slices.Clone(prev)
	for i := range out {
		st, s := &out[i], samples[i]
		st.Err = errs[i]
		if st.Err == nil && s.ServerID != st.Member.ID {
			st.Err = fmt.Errorf("the etcd on member %s's host is member %x", describeMember(st.Member), s.ServerID)
		}
		if st.Err != nil {
			st.Healthy, st.IsLeader, st.Leader = false, false, 0
			continue
		}
		st.IsLeader = s.IsLeader
		switch {
		case !s.HasLeader:
			st.Leader = 0
		case leader != 0:
			st.Leader = leader
		}
		st.Healthy = s.HasLeader && st.Leader != 0
		st.DBSize, st.DBSizeInUse = s.DBSize, s.DBSizeInUse
		if s.Revision != 0 {
			st.Revision = s.Revision
		}
		if s.CommittedIndex != 0 {
			st.RaftIndex = s.CommittedIndex
		}
		if s.Version != "" {
			st.Version = s.Version
		}
	}
	return out
}

// metricsReader reads one etcd pod's metrics listener through a
// port-forward, and keeps the connection between the reads of one run: the
// look before a defrag and the read after it then cost one port-forward's
// upgrade, not two. A connection that no longer carries a request (etcd or
// the port-forward closed it meanwhile) is replaced by a new one.
type metricsReader struct {
	base   string
	tr     *http.Transport
	client *http.Client

	mu    sync.Mutex
	ahead *aheadConn // the first dial's connection, opened ahead (predial)
}

// reader is pod p's metricsReader, made on first use.
func (c *execCluster) reader(p etcdPod) *metricsReader {
	r, _ := c.readerOf(p)
	return r
}

// readerOf is reader, and whether it was made just now.
func (c *execCluster) readerOf(p etcdPod) (*metricsReader, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.readers[p.name]; r != nil {
		return r, false
	}
	r := &metricsReader{base: "http://localhost:" + strconv.Itoa(int(p.metricsPort))}
	dialer := c.s.dialer
	r.tr = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			if conn, err := r.takeAhead(ctx); conn != nil || err != nil {
				return conn, err
			}
			return dialer.DialPod(ctx, p.name, p.node, p.metricsPort)
		},
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
	}
	r.client = &http.Client{Transport: r.tr}
	if c.readers == nil {
		c.readers = map[string]*metricsReader{}
	}
	c.readers[p.name] = r
	return r, true
}

// read is one read of the member's metrics and, with health, its /health
// ("" when healthy), over the same connection.
func (r *metricsReader) read(ctx context.Context, health bool) (etcdmetrics.Sample, string, error) {
	ctx, cancel := context.WithTimeout(ctx, quickMemberTimeout)
	defer cancel()
	s, err := etcdmetrics.Get(ctx, r.client, r.base)
	if err != nil || !health {
		return s, "", err
	}
	why, err := etcdmetrics.Health(ctx, r.client, r.base)
	return s, why, err
}

// takeAhead is the connection opened ahead, once it is open: nil, nil when
// there is none (or it could not be opened), so the dial goes on anew.
func (r *metricsReader) takeAhead(ctx context.Context) (net.Conn, error) {
	r.mu.Lock()
	a := r.ahead
	r.ahead = nil
	r.mu.Unlock()
	if a == nil {
		return nil, nil
	}
	select {
	case <-a.done:
		return a.conn, nil
	case <-ctx.Done():
		a.close()
		return nil, fmt.Errorf("opening a port-forward: %w", context.Cause(ctx))
	}
}

// close ends the reader's connections.
func (r *metricsReader) close() {
	r.mu.Lock()
	if r.ahead != nil {
		r.ahead.close()
		r.ahead = nil
	}
	r.mu.Unlock()
	r.tr.CloseIdleConnections()
}

// aheadConn is a metrics connection being opened ahead of its use; conn
// is nil when it could not be opened (the read then dials anew).
type aheadConn struct {
	done chan struct{}
	conn net.Conn
}

// close closes the connection once it is open, without waiting for it.
func (a *aheadConn) close() {
	go func() {
		<-a.done
		if a.conn != nil {
			a.conn.Close()
		}
	}()
}

// predial opens, in the background, a port-forward to the metrics listener
// of every etcd pod of the last observation that has no connection yet
// (the look was an exec), for the quick read after the defrag that is
// about to run: the upgrade through the apiserver and kubelet, most of a
// metrics read's cost, then overlaps the defrag instead of following it.
// The connections carry nothing until the defrag is over.
func (c *execCluster) predial(ctx context.Context) {
	if c.last == nil {
		return
	}
	for _, p := range c.last.pods {
		if p.metricsPort == 0 {
			continue
		}
		r, made := c.readerOf(p)
		if !made {
			continue
		}
		a := &aheadConn{done: make(chan struct{})}
		r.mu.Lock()
		r.ahead = a
		r.mu.Unlock()
		dialer := c.s.dialer
		go func() {
			defer close(a.done)
			dctx, cancel := context.WithTimeout(ctx, quickMemberTimeout)
			defer cancel()
			a.conn, _ = dialer.DialPod(dctx, p.name, p.node, p.metricsPort)
		}()
	}
}

// closeReaders ends every metrics connection of the run.
func (c *execCluster) closeReaders() {
	c.mu.Lock()
	readers := c.readers
	c.readers = nil
	c.mu.Unlock()
	for _, r := range readers {
		r.close()
	}
}
