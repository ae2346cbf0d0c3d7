package maintenance

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
)

// DefragTarget is one member to defragment, in the order they run.
type DefragTarget struct {
	Member   etcdcluster.Member
	Host     string
	Endpoint string
	Leader   bool
}

func (t DefragTarget) role() string {
	switch {
	case t.Leader:
		return "the leader, last"
	case t.Member.IsLearner:
		return "learner"
	}
	return "follower"
}

func (t DefragTarget) name() string {
	if t.Host != "" {
		return fmt.Sprintf("member %s on %s", t.Member, t.Host)
	}
	return "member " + t.Member.String()
}

// DefragTargets picks the members to defragment, all of them or those on
// the given hosts, and orders them: followers and learners first, by host,
// then the leader last. The leader is not moved away first: a leader change
// is felt by every client of the cluster (requests in flight fail with
// "leader changed" and are retried), while defragmenting the leader only
// holds writes for the seconds it takes, once, after the followers have
// shown how long that is.
//
// It refuses while any member is down, naming it: a defragmenting member
// answers nothing, so with another one down the cluster could lose its
// quorum for the duration (and a member that is down cannot be defragmented).
func DefragTargets(statuses []etcdcluster.Status, hostOf HostOf, hosts []string, all bool) ([]DefragTarget, error) {
	if all == (len(hosts) > 0) {
		return nil, fmt.Errorf("give --all or the nodes whose members to defragment, not both or neither")
	}
	if len(statuses) == 0 {
		return nil, fmt.Errorf("the cluster lists no members")
	}
	var down []string
	for _, s := range statuses {
		if !s.Healthy {
			down = append(down, fmt.Sprintf("%s: %s", describe(s.Member, hostOf), s.Reason()))
		}
	}
	if len(down) > 0 {
		return nil, fmt.Errorf("refusing to defragment while a member is down (a defragmenting member answers nothing, so the cluster could lose its quorum): %s; "+
			"bring it back, or remove it, first", strings.Join(down, "; "))
	}
	want := map[string]bool{}
	for _, h := range hosts {
		want[h] = true
	}
	var out []DefragTarget
	for _, s := range statuses {
		h := hostOf(s.Member)
		if !all && !want[h] {
			continue
		}
		delete(want, h)
		out = append(out, DefragTarget{Member: s.Member, Host: h, Endpoint: s.Endpoint, Leader: s.IsLeader})
	}
	if len(want) > 0 {
		var missing []string
		for h := range want {
			missing = append(missing, h)
		}
		slices.Sort(missing)
		var have []string
		for _, s := range statuses {
			have = append(have, describe(s.Member, hostOf))
		}
		return nil, fmt.Errorf("no etcd member runs on %s (the members: %s)", strings.Join(missing, ", "), strings.Join(have, ", "))
	}
	slices.SortStableFunc(out, func(a, b DefragTarget) int {
		if a.Leader != b.Leader {
			if a.Leader {
				return 1
			}
			return -1
		}
		return strings.Compare(a.Host+"/"+a.Member.Name, b.Host+"/"+b.Member.Name)
	})
	return out, nil
}

// DefragOptions say what the defrag plan does.
type DefragOptions struct {
	// Compact first compacts the key history to the current revision, so
	// the defragmentation has the old revisions' pages to give back.
	Compact bool
	// AnswerTimeout bounds the wait for a member to answer again after its
	// defragmentation. Default 2 minutes.
	AnswerTimeout time.Duration
	// Observed is the read the targets were planned from, and ObservedAt
	// when it was made: the first step's look before it runs is this read
	// when it is younger than Fresh.
	Observed   []etcdcluster.Status
	ObservedAt time.Time
}

// Fresh is how old a read of every member may be and still count as the
// look a step takes before it runs, when nothing was changed by the run
// since. A read that young is as good as a new one would be: the window
// between a look and the call it guards is already about as long (one
// round trip through the apiserver), and each read costs that much again.
// Reused are the plan's own read for the first step (the plan runs right
// after it is made) and a step's read of the member answering again for
// the next one.
const Fresh = time.Second

// reads keeps the run's newest read of every member, forgotten when the run
// changes something, so a step can reuse it (see Fresh).
type reads struct {
	statuses []etcdcluster.Status
	at       time.Time
}

func (r *reads) got(statuses []etcdcluster.Status, at time.Time) { r.statuses, r.at = statuses, at }

// changed forgets the newest read: it no longer shows the cluster.
func (r *reads) changed() { r.statuses = nil }

// look returns a read of every member: the newest when fresh, else a new one.
func (r *reads) look(ctx context.Context, c Cluster) ([]etcdcluster.Status, error) {
	if r.statuses != nil && time.Since(r.at) < Fresh {
		return r.statuses, nil
	}
	at := time.Now()
	statuses, err := c.Statuses(ctx)
	if err != nil {
		return nil, err
	}
	r.got(statuses, at)
	return statuses, nil
}

// NewDefragPlan is the plan both faces run: its title and why it goes as
// it does, then AddDefragSteps.
func NewDefragPlan(c Cluster, hostOf HostOf, targets []DefragTarget, o DefragOptions) *plan.Plan {
	title := fmt.Sprintf("defragment %d member(s), one at a time", len(targets))
	if o.Compact {
		title = "compact, then " + title
	}
	p := &plan.Plan{Title: title, Notes: []string{"a defragmenting member answers nothing until it is done; the others keep the quorum. The leader goes last, without moving leadership: " +
		"moving it would disturb every client of the cluster, and by then the followers' passes have shown how long a pass takes"}}
	AddDefragSteps(p, c, hostOf, targets, o)
	return p
}

// AddDefragSteps adds the defrag steps to p: the compaction if asked, then
// one step per target in order. Each step looks again right before it runs
// (or reuses a read of under Fresh with nothing changed since): every member
// must be healthy (else it stops, changing nothing more), it
// defragments, waits until the member answers again, and notes the database
// size before and after. A rerun after an interruption simply defragments
// again: a defragmented member's second pass is quick and harmless.
func AddDefragSteps(p *plan.Plan, c Cluster, hostOf HostOf, targets []DefragTarget, o DefragOptions) {
	if o.AnswerTimeout <= 0 {
		o.AnswerTimeout = 2 * time.Minute
	}
	r := &reads{}
	if o.Observed != nil {
		r.got(o.Observed, o.ObservedAt)
	}
	if o.Compact {
		p.Add("compact", "compact the key history to the current revision (older revisions of every key are dropped; the current ones stay), on every member",
			func(ctx context.Context) (string, error) {
				statuses, err := r.look(ctx, c)
				if err != nil {
					return "", err
				}
				var rev int64
				for _, s := range statuses {
					if s.Healthy && s.Revision > rev {
						rev = s.Revision
					}
				}
				if rev == 0 {
					return "", fmt.Errorf("no member answered with its revision")
				}
				r.changed()
				if err := c.Compact(ctx, rev); err != nil {
					return "", err
				}
				return fmt.Sprintf("compacted to revision %d", rev), nil
			})
	}
	for _, t := range targets {
		p.Add("defrag "+orMember(t), fmt.Sprintf("defragment %s (%s), then wait until it answers again", t.name(), t.role()),
			func(ctx context.Context) (string, error) {
				return defragOne(ctx, c, hostOf, t, o, r)
			})
	}
}

func orMember(t DefragTarget) string {
	if t.Host != "" {
		return t.Host
	}
	return t.Member.String()
}

func defragOne(ctx context.Context, c Cluster, hostOf HostOf, t DefragTarget, o DefragOptions, r *reads) (string, error) {
	statuses, err := r.look(ctx, c)
	if err != nil {
		return "", err
	}
	var before etcdcluster.Status
	found := false
	for _, s := range statuses {
		if !s.Healthy {
			return "", fmt.Errorf("%s is down (%s): stopping before defragmenting %s, which would leave the cluster with one member fewer; nothing more was changed",
				describe(s.Member, hostOf), s.Reason(), t.name())
		}
		if s.Member.ID == t.Member.ID {
			before, found = s, true
		}
	}
	if !found {
		return "", fmt.Errorf("%s is not a member any more", t.name())
	}
	r.changed()
	if err := c.Defragment(ctx, before.Endpoint); err != nil {
		return "", fmt.Errorf("defragmenting %s: %w", t.name(), err)
	}
	var after etcdcluster.Status
	healthy := func(statuses []etcdcluster.Status) bool {
		for _, s := range statuses {
			if s.Member.ID == t.Member.ID && s.Healthy {
				after = s
				return true
			}
		}
		return false
	}
	// The quick read is tried first each time: when it says the member
	// answers, that is the answer. When it does not, the full read decides
	// (the quick one may be what fails, e.g. port-forward forbidden), and a
	// quick read that failed where the full one saw the member answer is
	// not tried again.
	quick, _ := c.(QuickReader)
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, o.AnswerTimeout, true, func(ctx context.Context) (bool, error) {
		if quick != nil {
			qs, err := quick.QuickStatuses(ctx, statuses)
			if err == nil && healthy(qs) {
				return true, nil
			}
		}
		at := time.Now()
		full, err := c.Statuses(ctx)
		if err != nil {
			return false, nil // the member we list through may be the one busy: ask again
		}
		if healthy(full) {
			r.got(full, at)
			quick = nil
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return "", fmt.Errorf("%s was defragmented but did not answer as healthy within %s: %w", t.name(), o.AnswerTimeout, err)
	}
	return fmt.Sprintf("database %s → %s (in use %s)", MiB(before.DBSize), MiB(after.DBSize), MiB(after.DBSizeInUse)), nil
}

// MiB formats a byte count for people.
func MiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
