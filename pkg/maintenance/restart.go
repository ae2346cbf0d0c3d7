package maintenance

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

// CheckRestart says whether the member self (0: this host has none) may
// be restarted now, one member at a time as `certs renew` does, without
// the cluster losing its quorum by our hand. A restarting member takes no
// part in the quorum for the seconds it takes, so the other healthy voters
// must hold one on their own. A member that is not healthy now (its
// certificates expired, say) takes no part anyway: restarting it costs
// nothing. A single-member cluster is restarted too (see below). The error names every member that is not healthy and what to
// do about it (renewHint: the command that renews a host whose
// certificates expired).
func CheckRestart(statuses []etcdcluster.Status, self uint64, hostOf HostOf, renewHint string) error {
	voters, healthy := 0, 0
	selfHealthy := false
	var me etcdcluster.Member
	var down []string
	for _, s := range statuses {
		if s.Member.IsLearner {
			continue
		}
		voters++
		switch {
		case s.Member.ID == self:
			selfHealthy, me = s.Healthy, s.Member
		case s.Healthy:
			healthy++
		default:
			down = append(down, fmt.Sprintf("%s: %s", describe(s.Member, hostOf), s.Reason()))
		}
	}
	// A cluster of one voter has no quorum another member could hold: its
	// restart pauses it for seconds, as kubeadm's own upgrade does, and is
	// the only way to load new certificates.
	if self == 0 || !selfHealthy || voters == 1 {
		return nil
	}
	quorum := voters/2 + 1
	if healthy >= quorum {
		return nil
	}
	slices.Sort(down)
	return fmt.Errorf("refusing to restart %s: the other healthy voters (%d of %d) could not hold the quorum of %d while it restarts. Not healthy: %s. "+
		"Bring those members back first (a host whose certificates expired: `%s` on it as root), then run this again",
		describe(me, hostOf), healthy, voters, quorum, strings.Join(down, "; "), renewHint)
}

// RestartOrder orders the hosts of a rolling restart: hosts without a
// member and those of followers and learners first, by name, the leader's
// host last (its restart moves the leadership, once, after the others have
// shown how long a restart takes).
func RestartOrder(hosts []string, statuses []etcdcluster.Status, hostOf HostOf) []string {
	leader := ""
	for _, s := range statuses {
		if s.IsLeader {
			leader = hostOf(s.Member)
		}
	}
	out := slices.Clone(hosts)
	slices.SortStableFunc(out, func(a, b string) int {
		if (a == leader) != (b == leader) {
			if a == leader {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	return out
}

// MemberOn finds the member whose host is host, 0 when none runs there.
func MemberOn(statuses []etcdcluster.Status, host string, hostOf HostOf) uint64 {
	for _, s := range statuses {
		if hostOf(s.Member) == host {
			return s.Member.ID
		}
	}
	return 0
}
