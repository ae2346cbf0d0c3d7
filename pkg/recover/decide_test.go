package recover

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// Survivors for the tables: this host at raft index 100; others running
// (with their raft index and the leader they follow), silent, or down.
func here(leader string) Survivor {
	return Survivor{Name: "cp-1", ID: "1", ThisHost: true, Offline: leader == "", RaftIndex: 100, Revision: 50, Leader: leader}
}

func running(name string, index uint64, leader string) Survivor {
	return Survivor{Name: name, ID: name[len(name)-1:], Running: true, RaftIndex: index, Revision: int64(index / 2), Leader: leader}
}

func silent(name string) Survivor {
	return Survivor{Name: name, ID: name[len(name)-1:], Silent: true, Error: "etcd is up but does not answer"}
}

func down(name string) Survivor {
	return Survivor{Name: name, ID: name[len(name)-1:], Error: "connection refused"}
}

func nameOf(s *Survivor) string {
	if s == nil {
		return ""
	}
	return s.Name
}

func TestSurveyJudge(t *testing.T) {
	for _, tc := range []struct {
		name          string
		local         Survivor
		others        []Survivor
		quorum        bool
		ahead, silent string
	}{
		{"alone and behind nobody", here(""), []Survivor{down("cp-2"), down("cp-3")}, false, "", ""},
		{"this host follows a leader", here("2"), []Survivor{down("cp-2")}, true, "", ""},
		{"another follows a leader", here(""), []Survivor{running("cp-2", 90, "3"), down("cp-3")}, true, "", ""},
		{"a running other behind is no survivor to prefer", here(""), []Survivor{running("cp-2", 99, ""), down("cp-3")}, false, "", ""},
		{"equal is not ahead", here(""), []Survivor{running("cp-2", 100, "")}, false, "", ""},
		{"the furthest ahead wins", here(""), []Survivor{running("cp-2", 120, ""), running("cp-3", 150, ""), running("cp-4", 130, "")}, false, "cp-3", ""},
		{"the first of equals wins", here(""), []Survivor{running("cp-2", 150, ""), running("cp-3", 150, "")}, false, "cp-2", ""},
		{"a down member's index does not count", here(""), []Survivor{{Name: "cp-2", RaftIndex: 500, Error: "connection refused"}}, false, "", ""},
		{"the first silent one is named", here(""), []Survivor{down("cp-2"), silent("cp-3"), silent("cp-4")}, false, "", "cp-3"},
		{"silent beside one ahead", here(""), []Survivor{silent("cp-2"), running("cp-3", 101, "")}, false, "cp-3", "cp-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Survey{Local: tc.local, Others: tc.others}
			s.judge()
			if s.Quorum != tc.quorum || nameOf(s.Ahead) != tc.ahead || nameOf(s.Silent) != tc.silent {
				t.Errorf("quorum %v, ahead %q, silent %q; want %v, %q, %q", s.Quorum, nameOf(s.Ahead), nameOf(s.Silent), tc.quorum, tc.ahead, tc.silent)
			}
		})
	}
}

func TestAnswered(t *testing.T) {
	answer := func(member, leader uint64) *etcdcluster.EndpointStatus {
		return &etcdcluster.EndpointStatus{Header: &etcdserverpb.ResponseHeader{MemberId: member, ClusterId: 0xc1, Revision: 60},
			Leader: leader, RaftIndex: 120, RaftTerm: 3}
	}
	refused := errors.New("https://10.0.0.2:2379: context deadline exceeded")
	for _, tc := range []struct {
		name      string
		st        *etcdcluster.EndpointStatus
		err       error
		open      bool
		want      Survivor
		askedOpen bool
	}{
		{name: "answers", st: answer(2, 3),
			want: Survivor{ID: "2", Running: true, RaftIndex: 120, RaftTerm: 3, Revision: 60, Leader: "3", ClusterID: "c1"}},
		{name: "answers without a leader", st: answer(2, 0),
			want: Survivor{ID: "2", Running: true, RaftIndex: 120, RaftTerm: 3, Revision: 60, ClusterID: "c1"}},
		{name: "answers as another member", st: answer(9, 3),
			want: Survivor{ID: "2", Error: "https://10.0.0.2:2379 answers as member 9, not 2"}},
		{name: "down", err: refused, open: false, askedOpen: true,
			want: Survivor{ID: "2", Error: refused.Error()}},
		{name: "up but silent", err: refused, open: true, askedOpen: true,
			want: Survivor{ID: "2", Silent: true, Error: "etcd is up but does not answer (restarted without a quorum): its raft index is unknown"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Survivor{ID: "2", id: 2, ClientURL: "https://10.0.0.2:2379"}
			asked := false
			answered(&o, tc.st, tc.err, func() bool { asked = true; return tc.open })
			got := o
			got.ClientURL, got.id, got.clusterID, got.leader = "", 0, 0, 0
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
			if asked != tc.askedOpen {
				t.Errorf("port probe consulted: %v, want %v (only when the member does not answer)", asked, tc.askedOpen)
			}
		})
	}
}

func TestRecoverHere(t *testing.T) {
	survey := func(local Survivor, others ...Survivor) *Survey {
		s := &Survey{Local: local, Others: others}
		s.judge()
		return s
	}
	for _, tc := range []struct {
		name     string
		s        *Survey
		here     bool
		err      []string // all in the error; none: allowed
		warnings []string
	}{
		{name: "no quorum, nobody ahead", s: survey(here(""), down("cp-2"), running("cp-3", 90, ""))},
		{name: "quorum: nothing to recover", s: survey(here(""), running("cp-2", 90, "2"), running("cp-3", 90, "2")),
			err: []string{"the cluster has a quorum (cp-2 follows leader 2, cp-3 follows leader 2): there is nothing to recover"}},
		{name: "quorum: --here does not override", s: survey(here("2"), running("cp-2", 90, "2")), here: true,
			err: []string{"the cluster has a quorum (cp-1 follows leader 2, cp-2 follows leader 2)"}},
		{name: "another ahead", s: survey(here(""), running("cp-2", 150, ""), down("cp-3")),
			err: []string{"cp-2 (member 2, raft index 150, revision 75) is further ahead than this host (raft index 100, revision 50)", "Run `kubectl-etcd recover` as root on cp-2 instead"}},
		{name: "another ahead, --here", s: survey(here(""), running("cp-2", 150, "")), here: true,
			warnings: []string{"--here: cp-2 is further ahead (raft index 150 vs 100 here); the writes only it has are lost, and it is cut off like every other member"}},
		{name: "a silent one may be ahead", s: survey(here(""), silent("cp-2")),
			err: []string{"cp-2 (member 2) is up but its etcd does not answer", "this host (raft index 100, revision 50) cannot be told from here", "--dry-run` as root on cp-2"}},
		{name: "a silent one, --here", s: survey(here(""), silent("cp-2")), here: true,
			warnings: []string{"--here: cp-2 is up but could not be asked; writes only it has are lost"}},
		{name: "silent and one ahead: the one ahead decides", s: survey(here(""), silent("cp-2"), running("cp-3", 150, "")),
			err: []string{"cp-3 (member 3, raft index 150, revision 75) is further ahead"}},
		{name: "silent and one ahead, --here: one warning", s: survey(here(""), silent("cp-2"), running("cp-3", 150, "")), here: true,
			warnings: []string{"--here: cp-3 is further ahead (raft index 150 vs 100 here); the writes only it has are lost, and it is cut off like every other member"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			warnings, err := recoverHere(tc.s, tc.here)
			switch {
			case len(tc.err) == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case len(tc.err) > 0 && err == nil:
				t.Fatalf("allowed, want a refusal containing %q", tc.err)
			}
			for _, want := range tc.err {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if !slices.Equal(warnings, tc.warnings) {
				t.Errorf("warnings %q, want %q", warnings, tc.warnings)
			}
		})
	}
}

func TestRestoreOver(t *testing.T) {
	row := func(name string, healthy, this bool) hostapi.MemberRow {
		return hostapi.MemberRow{Name: name, Healthy: healthy, ThisHost: this}
	}
	const secondCluster = "the etcd cluster has a quorum (member %s answers with a leader): restoring a snapshot here would start a second cluster beside it"
	for _, tc := range []struct {
		name    string
		members []hostapi.MemberRow
		soleOK  bool
		err     string
	}{
		{name: "no member answers", members: nil},
		{name: "every member down", members: []hostapi.MemberRow{row("cp-1", false, true), row("cp-2", false, false)}},
		{name: "a healthy member", members: []hostapi.MemberRow{row("cp-1", false, true), row("cp-2", true, false)},
			err: strings.Replace(secondCluster, "%s", "cp-2", 1)},
		{name: "this host's healthy sole member", members: []hostapi.MemberRow{row("cp-1", true, true)},
			err: strings.Replace(secondCluster, "%s", "cp-1", 1)},
		{name: "--replace-sole-member over this host's sole member", members: []hostapi.MemberRow{row("cp-1", true, true)}, soleOK: true},
		{name: "--replace-sole-member over another host's sole member", members: []hostapi.MemberRow{row("cp-2", true, false)}, soleOK: true,
			err: strings.Replace(secondCluster, "%s", "cp-2", 1)},
		{name: "--replace-sole-member with two members", members: []hostapi.MemberRow{row("cp-1", true, true), row("cp-2", false, false)}, soleOK: true,
			err: "--replace-sole-member: the etcd cluster has 2 members, not only this host's: shrink it to this host's member first (kubectl etcd scale --nodes cp-1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := restoreOver(tc.members, "cp-1", tc.soleOK)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)):
				t.Errorf("got %v, want an error starting %q", err, tc.err)
			}
		})
	}
}
