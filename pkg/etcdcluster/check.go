package etcdcluster

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Quorum is how many of n voting members must agree for etcd to commit
// anything, a membership change included.
func Quorum(n int) int { return n/2 + 1 }

// health splits the voting members into healthy and unhealthy according to
// statuses; a voter without a status row counts as unhealthy.
type health struct {
	voters    []Member
	healthy   []Member
	unhealthy []Status
}

func healthOf(members []Member, statuses []Status) health {
	var h health
	for _, m := range members {
		if m.IsLearner {
			continue
		}
		h.voters = append(h.voters, m)
		s, ok := statusOf(statuses, m.ID)
		if !ok {
			s = Status{Member: m, Err: fmt.Errorf("no status for member %s", describe(m))}
		}
		if s.Healthy {
			h.healthy = append(h.healthy, m)
		} else {
			h.unhealthy = append(h.unhealthy, s)
		}
	}
	return h
}

func (h health) isHealthy(id uint64) bool {
	_, ok := Find(h.healthy, id)
	return ok
}

func statusOf(statuses []Status, id uint64) (Status, bool) {
	for _, s := range statuses {
		if s.Member.ID == id {
			return s, true
		}
	}
	return Status{}, false
}

func names(ms []Member) string {
	var parts []string
	for _, m := range ms {
		parts = append(parts, m.String())
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func reasons(ss []Status) string {
	var parts []string
	for _, s := range ss {
		parts = append(parts, fmt.Sprintf("%s (%s)", s.Member, s.Reason()))
	}
	return strings.Join(parts, ", ")
}

// checkQuorum refuses when the voters now healthy are not a quorum: no
// membership change could be committed.
func (h health) checkQuorum() error {
	if need := Quorum(len(h.voters)); len(h.healthy) < need {
		return fmt.Errorf("the cluster has no healthy quorum: %d of %d voting members are healthy (%s) and a quorum is %d; "+
			"unhealthy: %s. No membership change can be committed until enough of them are back",
			len(h.healthy), len(h.voters), names(h.healthy), need, reasons(h.unhealthy))
	}
	return nil
}

// CheckAdd says whether adding a learner is safe now: the cluster must have a
// healthy quorum to commit the change, and no other learner may be pending,
// since etcd allows one at a time. A caller resuming its own interrupted add
// should first look for its peer URL (FindByPeerURL), as AddLearner does.
func CheckAdd(members []Member, statuses []Status) error {
	for _, m := range members {
		if m.IsLearner {
			return fmt.Errorf("refusing to add a member: %s is still a learner and etcd allows one learner at a time; "+
				"start its etcd so it can catch up and be promoted, or remove it, first", describe(m))
		}
	}
	if err := healthOf(members, statuses).checkQuorum(); err != nil {
		return fmt.Errorf("refusing to add a member: %w", err)
	}
	return nil
}

// CheckRemove says whether removing member id is safe: the cluster must have
// a healthy quorum now (or the removal cannot be committed), and afterwards
// the remaining healthy voters must still be a quorum of the remaining voters.
// Removing the last member, or the last voter, is refused. A member that is
// not in the list is nothing to remove and is not an error.
func CheckRemove(members []Member, statuses []Status, id uint64) error {
	target, ok := Find(members, id)
	if !ok {
		return nil
	}
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("refusing to remove member %s: "+format, append([]any{describe(target)}, args...)...)
	}
	if len(members) == 1 {
		return refuse("it is the last member of the cluster, and removing it would leave no cluster to remove it from; " +
			"to replace it, add the new member first")
	}
	h := healthOf(members, statuses)
	if err := h.checkQuorum(); err != nil {
		return refuse("%w", err)
	}
	if target.IsLearner {
		return nil // learners do not vote: quorum is unaffected
	}
	remaining := len(h.voters) - 1
	if remaining == 0 {
		return refuse("it is the only voting member; learners alone cannot form a quorum. Promote a learner first")
	}
	healthyAfter := len(h.healthy)
	if h.isHealthy(id) {
		healthyAfter--
	}
	if need := Quorum(remaining); healthyAfter < need {
		return refuse("afterwards only %d of the %d remaining voting members would be healthy, and a quorum of %d is %d, "+
			"so the cluster would stop; unhealthy: %s. Bring those members back, or remove them first",
			healthyAfter, remaining, remaining, need, reasons(h.unhealthy))
	}
	return nil
}

// PickLeaderTarget chooses who should lead instead of member exclude (usually
// the current leader, about to leave): a started, healthy voter, preferring
// the most up-to-date raft log (so the hand-over is quick), then the lowest ID
// so that the choice is deterministic.
func PickLeaderTarget(members []Member, statuses []Status, exclude uint64) (uint64, error) {
	var candidates []Status
	for _, m := range members {
		if m.IsLearner || !m.Started() || m.ID == exclude {
			continue
		}
		if s, ok := statusOf(statuses, m.ID); ok && s.Healthy {
			candidates = append(candidates, s)
		}
	}
	if len(candidates) == 0 {
		return 0, fmt.Errorf("no healthy, started voting member other than %x can take over leadership: %s", exclude, summary(statuses))
	}
	slices.SortFunc(candidates, func(a, b Status) int {
		if c := cmp.Compare(b.RaftIndex, a.RaftIndex); c != 0 {
			return c
		}
		return cmp.Compare(a.Member.ID, b.Member.ID)
	})
	return candidates[0].Member.ID, nil
}

// Votes is a cluster's voting strength: its voting members and how many of
// them answer healthy. Both faces' status summaries say it the same way.
type Votes struct {
	Voters, Healthy int
}

// CountVotes counts the voters among rows and the healthy ones among them.
func CountVotes[T any](rows []T, learner, healthy func(T) bool) Votes {
	var v Votes
	for _, r := range rows {
		if !learner(r) {
			v.Voters++
			if healthy(r) {
				v.Healthy++
			}
		}
	}
	return v
}

// Quorate reports whether the healthy voters hold a quorum.
func (v Votes) Quorate() bool { return v.Healthy >= Quorum(v.Voters) }

// Tolerates is how many more healthy voters may fail with quorum kept.
func (v Votes) Tolerates() int { return max(0, v.Healthy-Quorum(v.Voters)) }

// QuorumWord is "quorum" or "NO QUORUM", as summaries print it.
func (v Votes) QuorumWord() string {
	if v.Quorate() {
		return "quorum"
	}
	return "NO QUORUM"
}
