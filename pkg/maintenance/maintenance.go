// Package maintenance holds the day-2 work on a running etcd cluster that
// both faces of kubectl-etcd do the same way: defragmenting members one at a
// time, and reading and disarming alarms. The decisions (which members, in
// which order, whether it is safe now, whether an alarm's cause is gone) are
// pure functions over etcdcluster's observations, tested with tables; the
// plans run them against whatever reaches etcd: the apiserver tunnel from the
// workstation, or the host's own client certificate on a control-plane host.
package maintenance

import (
	"context"
	"fmt"
	"strings"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

// Cluster is what maintenance needs from etcd; *etcdcluster.Client has it.
type Cluster interface {
	etcdcluster.Cluster
	Alarms(ctx context.Context) ([]etcdcluster.Alarm, error)
	Disarm(ctx context.Context, a etcdcluster.Alarm) error
	Compact(ctx context.Context, rev int64) error
	Defragment(ctx context.Context, endpoint string) error
}

var _ Cluster = (*etcdcluster.Client)(nil)

// QuickReader is a Cluster that can also see whether each member answers,
// and how big its database is, quicker than Statuses does: the workstation
// reads each member's metrics through a port-forward, where a Statuses read
// costs an exec in an etcd pod (see etcdmetrics). prev is a Statuses read of
// the same run: the membership, and whatever a quick read does not refresh
// (alarms, errors, the raft term), come from it. A member the quick read
// cannot reach is returned unhealthy with its reason, as Statuses would; an
// error means the cluster cannot be read that way at all.
//
// Only the wait for a defragmented member to answer again uses it: a quick
// read cannot see a member that was added meanwhile, so no decision on
// whether a change is safe is made from one.
type QuickReader interface {
	QuickStatuses(ctx context.Context, prev []etcdcluster.Status) ([]etcdcluster.Status, error)
}

// HostOf names the host a member runs on ("" when none is known): the
// control-plane node from the workstation, the member's name on a host.
type HostOf func(etcdcluster.Member) string

// Names are the commands the advice quotes: the plugin's on the workstation
// ("kubectl etcd"), the host binary's on a host ("kubectl-etcd ... --local").
type Names struct {
	Defrag, Disarm, Remove string
}

// WorkstationNames are the plugin's commands.
var WorkstationNames = Names{
	Defrag: "kubectl etcd defrag --all --compact",
	Disarm: "kubectl etcd alarm disarm",
	Remove: "kubectl etcd remove",
}

// HostNames are the host-local commands.
var HostNames = Names{
	Defrag: "kubectl-etcd defrag --local --all --compact",
	Disarm: "kubectl-etcd alarm disarm --local",
	Remove: "kubectl-etcd remove --local",
}

// ActiveAlarms collects the alarms the members' statuses carry, sorted.
func ActiveAlarms(statuses []etcdcluster.Status) []etcdcluster.Alarm {
	var out []etcdcluster.Alarm
	seen := map[etcdcluster.Alarm]bool{}
	for _, s := range statuses {
		for _, t := range s.Alarms {
			a := etcdcluster.Alarm{MemberID: s.Member.ID, Type: t}
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	etcdcluster.SortAlarms(out)
	return out
}

// Advice says what an alarm means and what fixes it, in the words the
// status summary and the refusals of the mutating verbs share.
func Advice(a etcdcluster.Alarm, who string, n Names) string {
	switch a.Type {
	case etcdcluster.AlarmNoSpace:
		return fmt.Sprintf("etcd's NOSPACE alarm is raised (by %s): the database reached its quota and the cluster takes no writes; "+
			"free the space with `%s`, then clear the alarm with `%s`", who, n.Defrag, n.Disarm)
	case etcdcluster.AlarmCorrupt:
		return fmt.Sprintf("etcd's CORRUPT alarm is raised (for %s): that member's data differs from the others' and the cluster takes no writes; "+
			"remove that member (`%s`), clear the alarm with `%s`, then scale back", who, n.Remove, n.Disarm)
	}
	return fmt.Sprintf("etcd alarm %s is raised (by %s)", a.Type, who)
}

// describe names a member with its host, for messages.
func describe(m etcdcluster.Member, hostOf HostOf) string {
	if h := hostOf(m); h != "" {
		return fmt.Sprintf("member %s on %s", m, h)
	}
	return fmt.Sprintf("member %s", m)
}

// who names an alarm's member, or its ID when it is not a member any more.
func who(a etcdcluster.Alarm, members []etcdcluster.Member, hostOf HostOf) string {
	if m, ok := etcdcluster.Find(members, a.MemberID); ok {
		return describe(m, hostOf)
	}
	return fmt.Sprintf("member %x, no longer a member", a.MemberID)
}

// CheckNoAlarms refuses a membership change while an alarm is raised: a
// member add under NOSPACE fails half-way in etcd (the learner is added, its
// publish is refused), and under CORRUPT nothing but the fix should run.
// The one exception is removing the member that raised CORRUPT, which is
// that fix: removing, the member ID being removed, else 0.
func CheckNoAlarms(statuses []etcdcluster.Status, hostOf HostOf, n Names, removing uint64) error {
	members := etcdcluster.MembersOf(statuses)
	var why []string
	for _, a := range ActiveAlarms(statuses) {
		if a.Type == etcdcluster.AlarmCorrupt && a.MemberID == removing && removing != 0 {
			continue
		}
		why = append(why, Advice(a, who(a, members, hostOf), n))
	}
	if len(why) == 0 {
		return nil
	}
	return fmt.Errorf("refusing to change the membership under an active alarm (nothing was changed): %s", strings.Join(why, "; "))
}
