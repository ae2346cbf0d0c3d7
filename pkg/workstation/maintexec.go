package workstation

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdctl"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/maintenance"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/podexec"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/tunnel"
)

// execCluster is maintenance.Cluster through etcdctl in the etcd static
// pods, status's exec path (see statusexec.go). The maintenance verbs use it
// rather than a host pod and the tunnel because of what they are for: under
// etcd's NOSPACE (or CORRUPT) alarm the apiserver can write nothing, so it
// cannot create a host pod, while an exec writes nothing to etcd. It is also
// the quicker path: no pod to schedule, no certificate to sign.
type execCluster struct {
	s *Session
	// last is the newest observation, changed when this run last changed
	// something (a defrag, compaction or disarm returned): an observation
	// made after that is the state the run left, and needs no new read.
	last    *observed
	changed time.Time
	// quick: a look reads the members' metrics when they settle it, and
	// asks etcdctl only when they do not (lookByMetrics; defrag).
	quick bool
	// readers read each etcd pod's metrics, by pod name, their
	// connections kept for the run's later reads (see metricsReader).
	mu      sync.Mutex
	readers map[string]*metricsReader
}

// left is the state the run left, from its last observation when that was
// made after its last change; nil when there is none.
func (c *execCluster) left() *ClusterStatus {
	if c.last == nil || !c.last.now.After(c.changed) {
		return nil
	}
	return c.last.report()
}

var _ maintenance.Cluster = (*execCluster)(nil)

// defragExecTimeout bounds one member's defrag through an exec, etcdctl's
// own bound on the call included.
const defragExecTimeout = 10 * time.Minute

// observe is observeByExec without the serving certificates' expiry, which
// no maintenance decision reads.
// With quick, the members' metrics are read first, and etcdctl only asked
// when they do not settle the look (see lookByMetrics).
func (c *execCluster) observe(ctx context.Context) (*observed, error) {
	skip := c.s.SkipCertExpiry
	c.s.SkipCertExpiry = true
	defer func() { c.s.SkipCertExpiry = skip }()
	// The metrics reads start as soon as the etcd pods are listed, while
	// the other lists are still out.
	var reads *metricsReads
	o, err := c.s.listForExec(ctx, func(pods []etcdPod) {
		if c.quick {
			reads = c.startReads(ctx, pods)
		}
	})
	if err != nil {
		return nil, err
	}
	if reads == nil || c.lookByMetrics(o, reads) != "" {
		if o, err = c.s.readEtcdByExec(ctx, o); err != nil {
			return nil, err
		}
	}
	c.last = o
	return o, nil
}

func (c *execCluster) Members(ctx context.Context) ([]etcdcluster.Member, error) {
	o, err := c.observe(ctx)
	if err != nil {
		return nil, err
	}
	return o.members, nil
}

func (c *execCluster) Statuses(ctx context.Context) ([]etcdcluster.Status, error) {
	o, err := c.observe(ctx)
	if err != nil {
		return nil, err
	}
	return o.statuses, nil
}

// pods are the etcd pods of the run's last observation (a copy, for the
// caller to sort), else a new list. Static pods keep their names, so an
// observation made moments ago names them as well as a new LIST, which
// costs a round trip through the apiserver before each etcdctl call; a pod
// that went away meanwhile fails its exec and the next one is tried.
func (c *execCluster) pods(ctx context.Context) ([]etcdPod, error) {
	if c.last != nil && len(c.last.pods) > 0 {
		return slices.Clone(c.last.pods), nil
	}
	return c.s.listEtcdPods(ctx)
}

// inPods runs argv (built from each pod's access) in an etcd pod: the
// preferred ones first, then ready ones. A pod that cannot run it (the exec
// fails) passes it to the next; etcdctl failing (etcd said no) is the
// answer, as any other pod would hear the same.
func (c *execCluster) inPods(ctx context.Context, what string, prefer func(etcdPod) bool, argv func(etcdctl.Access) []string, timeout time.Duration) (*podexec.Result, error) {
	pods, err := c.pods(ctx)
	if err != nil {
		return nil, err
	}
	if len(pods) == 0 {
		return nil, errNoEtcdPod
	}
	rank := func(p etcdPod) int {
		r := 0
		if prefer != nil && !prefer(p) {
			r += 2
		}
		if !p.ready {
			r++
		}
		return r
	}
	slices.SortStableFunc(pods, func(a, b etcdPod) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a.node, b.node))
	})
	var errs []error
	for _, p := range pods {
		where := tunnel.Namespace + "/" + p.name
		pctx, cancel := context.WithTimeout(ctx, timeout)
		res, err := c.s.exec.Run(pctx, podexec.Target{Namespace: tunnel.Namespace, Pod: p.name, Container: etcdContainer}, argv(p.access)...)
		cancel()
		if err == nil {
			if err := exitError(res); err != nil {
				return nil, fmt.Errorf("etcdctl %s in %s: %w", what, where, err)
			}
			return res, nil
		}
		errs = append(errs, fmt.Errorf("etcdctl %s in %s: %w", what, where, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (c *execCluster) Alarms(ctx context.Context) ([]etcdcluster.Alarm, error) {
	res, err := c.inPods(ctx, "alarm list", nil, func(a etcdctl.Access) []string { return a.Command(etcdctl.AlarmList...) }, execPodTimeout)
	if err != nil {
		return nil, err
	}
	byMember, err := etcdctl.ParseAlarms(res.Stdout)
	if err != nil {
		return nil, err
	}
	var out []etcdcluster.Alarm
	for id, types := range byMember {
		for _, t := range types {
			out = append(out, etcdcluster.Alarm{MemberID: id, Type: t})
		}
	}
	etcdcluster.SortAlarms(out)
	return out, nil
}

// Disarm clears every active alarm, not only a: etcdctl cannot name one.
// The plan clears alarms only when every alarm's cause is gone
// (maintenance.CheckDisarm refuses otherwise), so the effect is the same;
// the steps after the first find theirs already cleared.
func (c *execCluster) Disarm(ctx context.Context, a etcdcluster.Alarm) error {
	_, err := c.inPods(ctx, "alarm disarm", nil, func(x etcdctl.Access) []string { return x.Command(etcdctl.AlarmDisarm...) }, execPodTimeout)
	c.changed = time.Now()
	if err != nil {
		return fmt.Errorf("disarming %s: %w", a, err)
	}
	return nil
}

func (c *execCluster) Compact(ctx context.Context, rev int64) error {
	_, err := c.inPods(ctx, "compact", nil, func(a etcdctl.Access) []string { return a.Command(etcdctl.Compact(rev)...) }, execPodTimeout)
	c.changed = time.Now()
	if err != nil && !strings.Contains(err.Error(), "required revision has been compacted") {
		return fmt.Errorf("compacting etcd to revision %d: %w", rev, err)
	}
	return nil
}

// Defragment runs etcdctl defrag against endpoint from the etcd pod of that
// member's host (its certificate names the host's address), or another
// pod when that one cannot exec.
func (c *execCluster) Defragment(ctx context.Context, endpoint string) error {
	own := func(p etcdPod) bool { return slices.Contains(p.clientURLs, endpoint) }
	c.predial(ctx)
	_, err := c.inPods(ctx, "defrag", own, func(a etcdctl.Access) []string {
		return a.WithEndpoints(endpoint).CommandWithin(defragExecTimeout-30*time.Second, etcdctl.Defrag...)
	}, defragExecTimeout)
	c.changed = time.Now()
	if err != nil {
		return fmt.Errorf("defragmenting the member at %s: %w", endpoint, err)
	}
	return nil
}
