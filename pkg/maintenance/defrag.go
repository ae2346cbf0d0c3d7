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
// one step per target in order. Each step looks again right before it runs:
// every member must be healthy (else it stops, changing nothing more), it
// defragments, waits until the member answers again, and notes the database
// size before and after. A rerun after an interruption simply defragments
// again: a defragmented member's second pass is quick and harmless.
func AddDefragSteps(p *plan.Plan, c Cluster, hostOf HostOf, targets []DefragTarget, o DefragOptions) {
	if o.AnswerTimeout <= 0 {
		o.AnswerTimeout = 2 * time.Minute
	}
	if o.Compact {
		p.Add("compact", "compact the key history to the current revision (older revisions of every key are dropped; the current ones stay), on every member",
			func(ctx context.Context) (string, error) {
				statuses, err := c.Statuses(ctx)
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
				if err := c.Compact(ctx, rev); err != nil {
					return "", err
				}
				return fmt.Sprintf("compacted to revision %d", rev), nil
			})
	}
	for _, t := range targets {
		p.Add("defrag "+orMember(t), fmt.Sprintf("defragment %s (%s), then wait until it answers again", t.name(), t.role()),
			func(ctx context.Context) (string, error) {
				return defragOne(ctx, c, hostOf, t, o)
			})
	}
}

func orMember(t DefragTarget) string {
	if t.Host != "" {
		return t.Host
	}
	return t.Member.String()
}

func defragOne(ctx context.Context, c Cluster, hostOf HostOf, t DefragTarget, o DefragOptions) (string, error) {
	statuses, err := c.Statuses(ctx)
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
	if err := c.Defragment(ctx, before.Endpoint); err != nil {
		return "", fmt.Errorf("defragmenting %s: %w", t.name(), err)
	}
	var after etcdcluster.Status
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, o.AnswerTimeout, true, func(ctx context.Context) (bool, error) {
		statuses, err := c.Statuses(ctx)
		if err != nil {
			return false, nil // the member we list through may be the one busy: ask again
		}
		for _, s := range statuses {
			if s.Member.ID == t.Member.ID && s.Healthy {
				after = s
				return true, nil
			}
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
