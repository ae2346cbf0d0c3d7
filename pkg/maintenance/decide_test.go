package maintenance

import (
	"errors"
	"strings"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

func member(id uint64, name string) etcdcluster.Member {
	return etcdcluster.Member{ID: id, Name: name, ClientURLs: []string{"https://" + name + ":2379"}}
}

func healthy(id uint64, name string, leader bool) etcdcluster.Status {
	return etcdcluster.Status{Member: member(id, name), Endpoint: "https://" + name + ":2379", Healthy: true, IsLeader: leader, Leader: 2, DBSize: 100 << 20, DBSizeInUse: 10 << 20}
}

func byName(m etcdcluster.Member) string { return m.Name }

func targetsString(ts []DefragTarget) string {
	var s []string
	for _, t := range ts {
		s = append(s, t.Host+"("+t.role()+")")
	}
	return strings.Join(s, ",")
}

func TestDefragTargets(t *testing.T) {
	three := []etcdcluster.Status{healthy(3, "h3", false), healthy(2, "h2", true), healthy(1, "h1", false)}
	down := []etcdcluster.Status{healthy(1, "h1", true), healthy(2, "h2", false), {Member: member(3, "h3"), Err: errors.New("connection refused")}}
	learner := []etcdcluster.Status{healthy(1, "h1", true), healthy(2, "h2", false)}
	learner[1].Member.IsLearner = true
	for _, tc := range []struct {
		name     string
		statuses []etcdcluster.Status
		hosts    []string
		all      bool
		want     string
		wantErr  string
	}{
		{name: "all: followers by host, the leader last", statuses: three, all: true, want: "h1(follower),h3(follower),h2(the leader, last)"},
		{name: "named hosts keep that order", statuses: three, hosts: []string{"h2", "h1"}, want: "h1(follower),h2(the leader, last)"},
		{name: "one follower", statuses: three, hosts: []string{"h3"}, want: "h3(follower)"},
		{name: "a learner is defragmented with the followers", statuses: learner, all: true, want: "h2(learner),h1(the leader, last)"},
		{name: "a member down: refused, naming it", statuses: down, all: true,
			wantErr: "refusing to defragment while a member is down (a defragmenting member answers nothing, so the cluster could lose its quorum): member h3 on h3: connection refused"},
		{name: "down even when not a target", statuses: down, hosts: []string{"h1"}, wantErr: "member h3 on h3: connection refused"},
		{name: "an unknown host", statuses: three, hosts: []string{"h1", "nope"}, wantErr: "no etcd member runs on nope (the members: member h3 on h3, member h2 on h2, member h1 on h1)"},
		{name: "neither --all nor hosts", statuses: three, wantErr: "give --all or the nodes"},
		{name: "both --all and hosts", statuses: three, all: true, hosts: []string{"h1"}, wantErr: "not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DefragTargets(tc.statuses, byName, tc.hosts, tc.all)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				if got != nil {
					t.Errorf("targets %v alongside the error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := targetsString(got); s != tc.want {
				t.Errorf("targets %s, want %s", s, tc.want)
			}
		})
	}
}

func TestCheckNoAlarms(t *testing.T) {
	ok := []etcdcluster.Status{healthy(1, "h1", true), healthy(2, "h2", false)}
	if err := CheckNoAlarms(ok, byName, WorkstationNames, 0); err != nil {
		t.Errorf("no alarm: %v", err)
	}
	nospace := []etcdcluster.Status{healthy(1, "h1", true), healthy(2, "h2", false)}
	nospace[1].Alarms = []string{etcdcluster.AlarmNoSpace}
	err := CheckNoAlarms(nospace, byName, WorkstationNames, 0)
	for _, want := range []string{"refusing to change the membership under an active alarm (nothing was changed)",
		"NOSPACE alarm is raised (by member h2 on h2)", "`kubectl etcd defrag --all --compact`", "`kubectl etcd alarm disarm`"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NOSPACE: err = %v, want it to contain %q", err, want)
		}
	}
	if err := CheckNoAlarms(nospace, byName, WorkstationNames, 2); err == nil {
		t.Error("removing the member that raised NOSPACE: want a refusal (only CORRUPT's member may go)")
	}
	corrupt := []etcdcluster.Status{healthy(1, "h1", true), healthy(2, "h2", false)}
	corrupt[1].Alarms = []string{etcdcluster.AlarmCorrupt}
	if err := CheckNoAlarms(corrupt, byName, HostNames, 0); err == nil || !strings.Contains(err.Error(), "CORRUPT alarm is raised (for member h2 on h2)") ||
		!strings.Contains(err.Error(), "`kubectl-etcd alarm disarm --local`") {
		t.Errorf("CORRUPT: err = %v", err)
	}
	if err := CheckNoAlarms(corrupt, byName, WorkstationNames, 2); err != nil {
		t.Errorf("removing the CORRUPT member is the fix, want it allowed: %v", err)
	}
}

func TestCheckDisarm(t *testing.T) {
	quota := func(etcdcluster.Member) int64 { return 128 << 20 }
	statuses := []etcdcluster.Status{healthy(1, "h1", true), healthy(2, "h2", false)}
	nospace := etcdcluster.Alarm{MemberID: 2, Type: etcdcluster.AlarmNoSpace}
	ok, err := CheckDisarm([]etcdcluster.Alarm{nospace}, statuses, byName, quota, WorkstationNames)
	if err != nil || len(ok) != 1 {
		t.Errorf("every database under the quota: ok %v, err %v", ok, err)
	}

	full := []etcdcluster.Status{healthy(1, "h1", true), healthy(2, "h2", false)}
	full[0].DBSize, full[0].DBSizeInUse = 116<<20, 20<<20 // compacted, not defragmented: under the quota, not under 90% of it
	ok, err = CheckDisarm([]etcdcluster.Alarm{nospace}, full, byName, quota, WorkstationNames)
	if len(ok) != 0 || err == nil || !strings.Contains(err.Error(), "NOSPACE (by member h2 on h2) stays: member h1 on h1 has a 116.0 MiB database (20.0 MiB in use) against its quota of 128.0 MiB (at most 90% of it") ||
		!strings.Contains(err.Error(), "`kubectl etcd defrag --all --compact` first") {
		t.Errorf("a file over the quota: ok %v, err %v", ok, err)
	}

	silent := []etcdcluster.Status{healthy(1, "h1", true), {Member: member(2, "h2"), Err: errors.New("deadline exceeded")}}
	if ok, err = CheckDisarm([]etcdcluster.Alarm{nospace}, silent, byName, quota, WorkstationNames); len(ok) != 0 || err == nil ||
		!strings.Contains(err.Error(), "member h2 on h2 does not answer (deadline exceeded), so its size is unknown") {
		t.Errorf("a silent member: ok %v, err %v", ok, err)
	}

	corrupt := etcdcluster.Alarm{MemberID: 2, Type: etcdcluster.AlarmCorrupt}
	if ok, err = CheckDisarm([]etcdcluster.Alarm{corrupt}, statuses, byName, quota, WorkstationNames); len(ok) != 0 || err == nil ||
		!strings.Contains(err.Error(), "CORRUPT (for member h2 on h2) stays: that member is still in the cluster; remove it (`kubectl etcd remove`) first") {
		t.Errorf("CORRUPT of a member still there: ok %v, err %v", ok, err)
	}
	gone := etcdcluster.Alarm{MemberID: 9, Type: etcdcluster.AlarmCorrupt}
	if ok, err = CheckDisarm([]etcdcluster.Alarm{gone, nospace}, statuses, byName, quota, WorkstationNames); err != nil || len(ok) != 2 {
		t.Errorf("CORRUPT of a removed member and NOSPACE with room: ok %v, err %v", ok, err)
	}
}

func TestActiveAlarmsDeduplicatesAndSorts(t *testing.T) {
	s := []etcdcluster.Status{healthy(2, "h2", false), healthy(1, "h1", true)}
	s[0].Alarms = []string{etcdcluster.AlarmNoSpace}
	s[1].Alarms = []string{etcdcluster.AlarmNoSpace, etcdcluster.AlarmCorrupt, etcdcluster.AlarmNoSpace}
	got := ActiveAlarms(s)
	want := []etcdcluster.Alarm{{MemberID: 1, Type: "CORRUPT"}, {MemberID: 1, Type: "NOSPACE"}, {MemberID: 2, Type: "NOSPACE"}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %v, want %v", got, want)
		}
	}
}
