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

// QuickStatuses refreshes prev from every member's metrics, read through a
// port-forward to its etcd pod's loopback metrics listener, all at once:
// about a tenth of an exec's cost, which is most of what a defrag of a
// member with little live data costs on top of etcd's own call
// (docs/bench/defrag.json). Each member is matched to its pod by its
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
	ahead := c.ahead
	c.ahead = nil
	defer closeAhead(ahead) // those no member of prev took
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
		a := ahead[p.name]
		delete(ahead, p.name)
		wg.Go(func() { samples[i], errs[i] = c.s.readMetrics(ctx, p, a) })
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
// of every etcd pod of the last observation, for the quick read after the
// defrag that is about to run: the upgrade through the apiserver and
// kubelet, most of a metrics read's cost, then overlaps the defrag instead
// of following it. The connections carry nothing until the defrag is over.
func (c *execCluster) predial(ctx context.Context) {
	c.dropAhead()
	if c.last == nil {
		return
	}
	c.ahead = map[string]*aheadConn{}
	for _, p := range c.last.pods {
		if p.metricsPort == 0 {
			continue
		}
		a := &aheadConn{done: make(chan struct{})}
		c.ahead[p.name] = a
		go func() {
			defer close(a.done)
			dctx, cancel := context.WithTimeout(ctx, quickMemberTimeout)
			defer cancel()
			a.conn, _ = c.s.dialer.DialPod(dctx, p.name, p.node, p.metricsPort)
		}()
	}
}

// dropAhead closes the connections opened ahead that nothing used.
func (c *execCluster) dropAhead() {
	closeAhead(c.ahead)
	c.ahead = nil
}

func closeAhead(ahead map[string]*aheadConn) {
	for _, a := range ahead {
		a.close()
	}
}

// readMetrics reads the metrics of pod's member through a port-forward to
// its metrics port: over ahead's connection when one was opened (see
// predial), else, or when that one no longer carries a request (etcd
// closed it while the defrag ran), over a new one.
func (s *Session) readMetrics(ctx context.Context, p etcdPod, ahead *aheadConn) (etcdmetrics.Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, quickMemberTimeout)
	defer cancel()
	if ahead != nil {
		select {
		case <-ahead.done:
		case <-ctx.Done():
			ahead.close()
			return etcdmetrics.Sample{}, fmt.Errorf("opening a port-forward to %s: %w", p.name, context.Cause(ctx))
		}
		if ahead.conn != nil {
			conn := ahead.conn
			sample, err := getMetrics(ctx, p, func(context.Context) (net.Conn, error) {
				if conn == nil {
					return nil, errors.New("the connection opened ahead is used")
				}
				c := conn
				conn = nil
				return c, nil
			})
			if err == nil {
				return sample, nil
			}
		}
	}
	return getMetrics(ctx, p, func(ctx context.Context) (net.Conn, error) {
		return s.dialer.DialPod(ctx, p.name, p.node, p.metricsPort)
	})
}

// getMetrics is one GET of the metrics page over a connection from dial.
func getMetrics(ctx context.Context, p etcdPod, dial func(context.Context) (net.Conn, error)) (etcdmetrics.Sample, error) {
	tr := &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	return etcdmetrics.Get(ctx, &http.Client{Transport: tr}, "http://localhost:"+strconv.Itoa(int(p.metricsPort)))
}
