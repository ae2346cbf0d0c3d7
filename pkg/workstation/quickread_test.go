package workstation

import (
	"errors"
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
