package maintenance

import (
	"context"
	"fmt"
	"strings"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
)

// DefaultQuotaBytes is etcd's --quota-backend-bytes when the flag is not
// given (etcd's own default, 2 GiB), which kubeadm does not set.
const DefaultQuotaBytes int64 = 2 << 30

// AlarmRow is one alarm for `alarm list`.
type AlarmRow struct {
	Type     string `json:"type"`
	MemberID string `json:"memberID"`
	Member   string `json:"member,omitempty"`
	Host     string `json:"host,omitempty"`
	// Advice is what the alarm means and what clears it.
	Advice string `json:"advice"`
}

// AlarmRows describes alarms for people and scripts.
func AlarmRows(alarms []etcdcluster.Alarm, members []etcdcluster.Member, hostOf HostOf, n Names) []AlarmRow {
	out := []AlarmRow{}
	for _, a := range alarms {
		r := AlarmRow{Type: a.Type, MemberID: fmt.Sprintf("%x", a.MemberID), Advice: Advice(a, who(a, members, hostOf), n)}
		if m, ok := etcdcluster.Find(members, a.MemberID); ok {
			r.Member, r.Host = m.Name, hostOf(m)
		}
		out = append(out, r)
	}
	return out
}

// CheckDisarm decides which alarms may be cleared now, because their cause
// is gone, and says why the others may not:
//   - NOSPACE: every member answers and its database file is under 90% of
//     its quota. etcd compares the file size, not the space in use, so a
//     compaction without a defragmentation is not enough; and a file just
//     under the quota (etcd raises the alarm when a write would not fit) would
//     raise it again at the next writes. quota gives each member's
//     --quota-backend-bytes.
//   - CORRUPT: the member it names is no longer a member (it was removed);
//     while it is, its data still differs, and clearing the alarm would let
//     the cluster take writes next to it.
func CheckDisarm(alarms []etcdcluster.Alarm, statuses []etcdcluster.Status, hostOf HostOf, quota func(etcdcluster.Member) int64, n Names) (ok []etcdcluster.Alarm, err error) {
	members := etcdcluster.MembersOf(statuses)
	var why []string
	for _, a := range alarms {
		switch a.Type {
		case etcdcluster.AlarmNoSpace:
			var over []string
			for _, s := range statuses {
				q := quota(s.Member)
				switch {
				case !s.Healthy:
					over = append(over, fmt.Sprintf("%s does not answer (%s), so its size is unknown", describe(s.Member, hostOf), s.Reason()))
				case s.DBSize >= q/10*9:
					over = append(over, fmt.Sprintf("%s has a %s database (%s in use) against its quota of %s (at most 90%% of it for the alarm to stay away)",
						describe(s.Member, hostOf), MiB(s.DBSize), MiB(s.DBSizeInUse), MiB(q)))
				}
			}
			if len(over) > 0 {
				why = append(why, fmt.Sprintf("NOSPACE (by %s) stays: %s; free the space with `%s` first "+
					"(if the data in use alone is near the quota, raise etcd's --quota-backend-bytes: ClusterConfiguration etcd.local.extraArgs)",
					who(a, members, hostOf), strings.Join(over, "; "), n.Defrag))
				continue
			}
		case etcdcluster.AlarmCorrupt:
			if _, still := etcdcluster.Find(members, a.MemberID); still {
				why = append(why, fmt.Sprintf("CORRUPT (for %s) stays: that member is still in the cluster; remove it (`%s`) first",
					who(a, members, hostOf), n.Remove))
				continue
			}
		default:
			why = append(why, fmt.Sprintf("%s stays: kubectl-etcd does not know how to check its cause", a))
			continue
		}
		ok = append(ok, a)
	}
	if len(why) > 0 {
		return ok, fmt.Errorf("%s", strings.Join(why, "; "))
	}
	return ok, nil
}

// AddDisarmSteps adds one step per alarm to clear. Each reads the alarms
// again first: one already cleared (a rerun) is noted, not an error.
func AddDisarmSteps(p *plan.Plan, c Cluster, alarms []etcdcluster.Alarm, members []etcdcluster.Member, hostOf HostOf) {
	for _, a := range alarms {
		p.Add("disarm "+a.Type, fmt.Sprintf("clear the %s alarm of %s", a.Type, who(a, members, hostOf)), func(ctx context.Context) (string, error) {
			active, err := c.Alarms(ctx)
			if err != nil {
				return "", err
			}
			found := false
			for _, x := range active {
				found = found || x == a
			}
			if !found {
				return "already cleared", nil
			}
			if err := c.Disarm(ctx, a); err != nil {
				return "", err
			}
			return "cleared", nil
		})
	}
}
