package etcdcluster

import (
	"errors"
	"strings"
	"testing"
)

// cluster builds members and statuses from a compact description: each entry
// is a member ID with flags: "l" learner, "d" dead (unhealthy), "u" unstarted,
// "n" no status row at all.
func cluster(spec map[uint64]string) ([]Member, []Status) {
	var ms []Member
	var ss []Status
	for id := uint64(1); id <= 9; id++ {
		flags, ok := spec[id]
		if !ok {
			continue
		}
		m := Member{ID: id, Name: "m" + string(rune('0'+id)), IsLearner: strings.Contains(flags, "l")}
		if strings.Contains(flags, "u") {
			m.Name = ""
		}
		ms = append(ms, m)
		if strings.Contains(flags, "n") {
			continue
		}
		s := Status{Member: m, Healthy: true, Leader: 1, RaftIndex: 100}
		if strings.Contains(flags, "d") {
			s = Status{Member: m, Err: errors.New("connection refused")}
		}
		ss = append(ss, s)
	}
	return ms, ss
}

func TestQuorum(t *testing.T) {
	for n, want := range []int{1, 1, 2, 2, 3, 3, 4} {
		if got := Quorum(n); got != want {
			t.Errorf("Quorum(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestCheckRemove(t *testing.T) {
	for _, tc := range []struct {
		name    string
		spec    map[uint64]string
		remove  uint64
		wantErr string // "" means allowed
	}{
		{"absent member is nothing to do", map[uint64]string{1: "", 2: "", 3: ""}, 7, ""},
		{"healthy three, remove one", map[uint64]string{1: "", 2: "", 3: ""}, 2, ""},
		{"last member", map[uint64]string{1: ""}, 1, "last member"},
		{"two members, other dead, remove the healthy one", map[uint64]string{1: "", 2: "d"}, 1, "no healthy quorum: 1 of 2"},
		{"two members, other dead, remove the dead one", map[uint64]string{1: "", 2: "d"}, 2, "no healthy quorum"},
		{"three, one dead, remove a healthy one", map[uint64]string{1: "", 2: "", 3: "d"}, 1, "only 1 of the 2 remaining"},
		{"three, one dead, remove the dead one", map[uint64]string{1: "", 2: "", 3: "d"}, 3, ""},
		{"three, two dead", map[uint64]string{1: "", 2: "d", 3: "d"}, 2, "no healthy quorum"},
		{"five, two dead, remove a healthy one", map[uint64]string{1: "", 2: "", 3: "", 4: "d", 5: "d"}, 1, "only 2 of the 4 remaining"},
		{"five, two dead, remove a dead one", map[uint64]string{1: "", 2: "", 3: "", 4: "d", 5: "d"}, 5, ""},
		{"learner, healthy quorum", map[uint64]string{1: "", 2: "", 3: "lu"}, 3, ""},
		{"learner, no quorum", map[uint64]string{1: "", 2: "d", 3: "l"}, 3, "no healthy quorum"},
		{"only voter with a learner", map[uint64]string{1: "", 2: "l"}, 1, "only voting member"},
		{"voter without status counts as unhealthy", map[uint64]string{1: "", 2: "", 3: "n"}, 1, "only 1 of the 2 remaining"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, ss := cluster(tc.spec)
			err := CheckRemove(ms, ss, tc.remove)
			checkErr(t, err, tc.wantErr)
			if err != nil && !strings.Contains(err.Error(), "refusing to remove member m") {
				t.Errorf("error %q does not name the member", err)
			}
		})
	}
}

func TestCheckAdd(t *testing.T) {
	for _, tc := range []struct {
		name    string
		spec    map[uint64]string
		wantErr string
	}{
		{"healthy", map[uint64]string{1: "", 2: "", 3: ""}, ""},
		{"one of three dead", map[uint64]string{1: "", 2: "", 3: "d"}, ""},
		{"single member", map[uint64]string{1: ""}, ""},
		{"learner pending", map[uint64]string{1: "", 2: "", 3: "lu"}, "3 (not started, peer URLs []) is still a learner"},
		{"two of three dead", map[uint64]string{1: "", 2: "d", 3: "d"}, "no healthy quorum: 1 of 3 voting members are healthy (m1) and a quorum is 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, ss := cluster(tc.spec)
			checkErr(t, CheckAdd(ms, ss), tc.wantErr)
		})
	}
}

func TestPickLeaderTarget(t *testing.T) {
	ms, ss := cluster(map[uint64]string{1: "", 2: "", 3: "", 4: "d", 5: "l", 6: "u"})
	// Make the learner and the unstarted member the most up to date, so
	// picking them would show.
	for i := range ss {
		switch ss[i].Member.ID {
		case 5, 6:
			ss[i].RaftIndex = 500
		case 3:
			ss[i].RaftIndex = 200
		}
	}
	if got, err := PickLeaderTarget(ms, ss, 1); err != nil || got != 3 {
		t.Errorf("PickLeaderTarget(exclude 1) = %d, %v; want 3 (highest raft index)", got, err)
	}
	if got, err := PickLeaderTarget(ms, ss, 3); err != nil || got != 1 {
		t.Errorf("PickLeaderTarget(exclude 3) = %d, %v; want 1 (tie broken by lowest ID)", got, err)
	}
	ms, ss = cluster(map[uint64]string{1: "", 2: "d", 3: "l"})
	_, err := PickLeaderTarget(ms, ss, 1)
	checkErr(t, err, "no healthy, started voting member other than 1")
}

func TestMemberString(t *testing.T) {
	if got := (Member{ID: 0xabc, Name: "h1"}).String(); got != "h1" {
		t.Errorf("String() = %q, want h1", got)
	}
	m := Member{ID: 0xabc, PeerURLs: []string{"https://10.0.0.4:2380"}}
	if m.Started() || m.String() != "abc" {
		t.Errorf("unstarted member: Started() = %v, String() = %q; want false, abc", m.Started(), m.String())
	}
	if got := describe(m); got != "abc (not started, peer URLs [https://10.0.0.4:2380])" {
		t.Errorf("describe = %q", got)
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Errorf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("error %q does not contain %q", err, want)
	}
}

func TestVotes(t *testing.T) {
	type row struct{ learner, healthy bool }
	for _, c := range []struct {
		rows      []row
		voters    int
		word      string
		tolerates int
	}{
		{nil, 0, "NO QUORUM", 0},
		{[]row{{false, true}}, 1, "quorum", 0},
		{[]row{{false, true}, {false, true}, {false, false}}, 3, "quorum", 0},
		{[]row{{false, true}, {false, true}, {false, true}, {true, true}}, 3, "quorum", 1},
		{[]row{{false, true}, {false, false}}, 2, "NO QUORUM", 0},
		{[]row{{false, true}, {false, true}, {false, false}, {false, false}}, 4, "NO QUORUM", 0},
		{[]row{{true, true}, {true, true}, {false, false}}, 1, "NO QUORUM", 0},
	} {
		v := CountVotes(c.rows, func(r row) bool { return r.learner }, func(r row) bool { return r.healthy })
		if v.Voters != c.voters || v.QuorumWord() != c.word || v.Tolerates() != c.tolerates {
			t.Errorf("%+v: got %+v %q tolerates %d, want %d voters %q tolerates %d", c.rows, v, v.QuorumWord(), v.Tolerates(), c.voters, c.word, c.tolerates)
		}
	}
}
