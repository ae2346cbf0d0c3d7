package workstation

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdmetrics"
)

// refresh takes from each sample only what a metrics page says, matches it
// to its member by ID, and keeps the rest of the previous read.
func TestRefresh(t *testing.T) {
	m := func(id uint64, name string) etcdcluster.Member {
		return etcdcluster.Member{ID: id, Name: name, ClientURLs: []string{"https://" + name + ":2379"}}
	}
	prev := []etcdcluster.Status{
		{Member: m(1, "a"), Healthy: true, Leader: 1, IsLeader: true, DBSize: 900, DBSizeInUse: 10, Revision: 5, RaftIndex: 7, RaftTerm: 2, Version: "3.6.0", Errors: []string{"NOSPACE"}, Alarms: []string{"NOSPACE"}},
		{Member: m(2, "b"), Healthy: true, Leader: 1, DBSize: 900, Revision: 5, RaftIndex: 7, RaftTerm: 2},
		{Member: m(3, "c"), Healthy: true, Leader: 1, DBSize: 900, Revision: 5, RaftIndex: 7, RaftTerm: 2},
		{Member: m(4, "d"), Healthy: true, Leader: 1, DBSize: 900, Revision: 5, RaftIndex: 7, RaftTerm: 2},
	}
	samples := []etcdmetrics.Sample{
		{ServerID: 1, HasLeader: true, IsLeader: true, DBSize: 100, DBSizeInUse: 20, Revision: 6, CommittedIndex: 9, Version: "3.6.1"},
		{ServerID: 2, HasLeader: true, DBSize: 200, DBSizeInUse: 30},
		{ServerID: 9, HasLeader: true, DBSize: 1},
		{},
	}
	errs := []error{nil, nil, nil, errors.New("port-forward refused")}
	got := refresh(prev, samples, errs)

	a := got[0]
	if !a.Healthy || !a.IsLeader || a.Leader != 1 || a.DBSize != 100 || a.DBSizeInUse != 20 || a.Revision != 6 || a.RaftIndex != 9 || a.Version != "3.6.1" {
		t.Errorf("a refreshed wrongly: %+v", a)
	}
	if a.RaftTerm != 2 || len(a.Alarms) != 1 || len(a.Errors) != 1 {
		t.Errorf("a lost what metrics do not say (term, alarms, errors): %+v", a)
	}
	b := got[1]
	if !b.Healthy || b.IsLeader || b.Leader != 1 || b.DBSize != 200 || b.Revision != 5 || b.RaftIndex != 7 {
		t.Errorf("b: want the leader from a's sample, sizes from its own, revision and index kept where unreported: %+v", b)
	}
	c := got[2]
	if c.Healthy || c.Err == nil || !strings.Contains(c.Err.Error(), "is member 9") || c.DBSize != 900 {
		t.Errorf("c's host answers as another member: want it unhealthy with that reason and its old size, got %+v", c)
	}
	d := got[3]
	if d.Healthy || d.Err == nil || d.Err.Error() != "port-forward refused" || d.Leader != 0 {
		t.Errorf("d's metrics could not be read: want it unhealthy with the reason, got %+v", d)
	}
	if !prev[1].Healthy || prev[2].Err != nil || prev[0].DBSize != 900 {
		t.Errorf("refresh changed its input: %+v", prev)
	}

	// Without a leader anywhere, nobody is healthy.
	lost := refresh(prev[:2], []etcdmetrics.Sample{{ServerID: 1, DBSize: 1}, {ServerID: 2, DBSize: 1}}, []error{nil, nil})
	for _, s := range lost {
		if s.Healthy || s.Leader != 0 {
			t.Errorf("member %s without a leader: %+v", s.Member.Name, s)
		}
	}
}

// settle takes the members' metrics as the look only when they leave
// nothing to guess; every other case says why, for the exec look to decide.
func TestSettle(t *testing.T) {
	pod := func(n int) etcdPod {
		addr := fmt.Sprintf("10.0.0.%d", 10+n)
		return etcdPod{name: fmt.Sprintf("etcd-h%d", n), node: fmt.Sprintf("h%d", n), metricsPort: 2381, memberName: fmt.Sprintf("h%d", n),
			peerURLs: []string{"https://" + addr + ":2380"}, clientURLs: []string{"https://" + addr + ":2379"}}
	}
	nodes := []Node{{Name: "h1", Address: "10.0.0.11"}, {Name: "h2", Address: "10.0.0.12"}, {Name: "h3", Address: "10.0.0.13"}}
	sample := func(id uint64, leader bool, peers ...uint64) etcdmetrics.Sample {
		return etcdmetrics.Sample{ServerID: id, HasLeader: true, IsLeader: leader, DBSize: int64(id) * 100, DBSizeInUse: 50, Revision: 7, CommittedIndex: 9, Version: "3.7.0", KnownPeers: peers}
	}
	good := func() []etcdmetrics.Sample {
		return []etcdmetrics.Sample{sample(0x30, false, 0x10, 0x20, 0x30), sample(0x10, true, 0x10, 0x20, 0x30), sample(0x20, false, 0x30, 0x10, 0x20)}
	}
	for _, tc := range []struct {
		name    string
		samples func() []etcdmetrics.Sample
		health  []string
		errs    []error
		nodes   []Node
		want    string // "" settles
	}{
		{name: "settled", samples: good},
		{name: "a member not answering", samples: good, errs: []error{nil, errors.New("port-forward refused"), nil}, want: "etcd pod etcd-h2: port-forward refused"},
		{name: "an alarm", samples: good, health: []string{"", "", "ALARM NOSPACE"}, want: "etcd pod etcd-h3: /health says ALARM NOSPACE"},
		{name: "an etcd before 3.6", samples: func() []etcdmetrics.Sample { s := good(); s[0].KnownPeers = nil; return s }, want: "names no known peers"},
		{name: "a member without a pod (down, or added and never started)", samples: func() []etcdmetrics.Sample {
			s := good()
			s[1].KnownPeers = append(s[1].KnownPeers, 0x40)
			return s
		}, want: "the member of etcd pod etcd-h2 knows members [10 20 30 40]; the pods run [10 20 30]"},
		{name: "a pod whose etcd is not a member", samples: func() []etcdmetrics.Sample {
			s := good()
			for i := range s {
				s[i].KnownPeers = []uint64{0x10, 0x20}
			}
			return s
		}, want: "knows members [10 20]; the pods run [10 20 30]"},
		{name: "no leader", samples: func() []etcdmetrics.Sample { s := good(); s[1].IsLeader = false; return s }, want: "no member says it leads"},
		{name: "lost its leader", samples: func() []etcdmetrics.Sample { s := good(); s[2].HasLeader = false; return s }, want: "etcd pod etcd-h3's member has no leader"},
		{name: "two leaders", samples: func() []etcdmetrics.Sample { s := good(); s[0].IsLeader = true; return s }, want: "two members say they lead"},
		{name: "two pods, one member", samples: func() []etcdmetrics.Sample { s := good(); s[2].ServerID = 0x30; return s }, want: "etcd pods etcd-h1 and etcd-h3 answer as the same member 30"},
		{name: "a node without a member", samples: good, nodes: append(slices.Clone(nodes), Node{Name: "h4", Address: "10.0.0.14"}), want: "control-plane node h4 runs no member"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &observed{pods: []etcdPod{pod(1), pod(2), pod(3)}, nodes: nodes}
			if tc.nodes != nil {
				o.nodes = tc.nodes
			}
			health, errs := tc.health, tc.errs
			if health == nil {
				health = make([]string, 3)
			}
			if errs == nil {
				errs = make([]error, 3)
			}
			why := settle(o, tc.samples(), health, errs)
			if tc.want != "" {
				if !strings.Contains(why, tc.want) || o.members != nil || o.statuses != nil {
					t.Fatalf("why %q (members %v), want %q and nothing filled", why, o.members, tc.want)
				}
				return
			}
			if why != "" {
				t.Fatalf("not settled: %s", why)
			}
			if len(o.members) != 3 || len(o.statuses) != 3 {
				t.Fatalf("members %v, statuses %v", o.members, o.statuses)
			}
			for i, want := range []struct {
				id     uint64
				name   string
				leader bool
			}{{0x10, "h2", true}, {0x20, "h3", false}, {0x30, "h1", false}} {
				m, st := o.members[i], o.statuses[i]
				if m.ID != want.id || m.Name != want.name || st.Member.ID != want.id || st.IsLeader != want.leader || !st.Healthy || st.Leader != 0x10 {
					t.Errorf("#%d: member %+v status %+v, want %x %s leader %v", i, m, st, want.id, want.name, want.leader)
				}
				if n := o.hostOf(m); n != want.name {
					t.Errorf("member %x is on %q, want %s", m.ID, n, want.name)
				}
				if st.Endpoint != m.ClientURLs[0] || st.DBSize != int64(want.id)*100 || st.RaftIndex != 9 || st.Revision != 7 || st.Version != "3.7.0" {
					t.Errorf("status %+v", st)
				}
			}
		})
	}
}
