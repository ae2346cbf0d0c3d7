package workstation

import (
	"errors"
	"strings"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

func st(name string, rev int64, leader, healthy, learner bool) etcdcluster.Status {
	s := etcdcluster.Status{Member: etcdcluster.Member{Name: name, IsLearner: learner, PeerURLs: []string{"https://10.0.0." + name[1:] + ":2380"}},
		Endpoint: "https://10.0.0." + name[1:] + ":2379", Healthy: healthy, IsLeader: leader, Revision: rev}
	if !healthy {
		s.Err = errors.New("connection refused")
	}
	return s
}

func TestPickSnapshotSource(t *testing.T) {
	nodes := []Node{{Name: "cp-1", Address: "10.0.0.1"}, {Name: "cp-2", Address: "10.0.0.2"}, {Name: "cp-3", Address: "10.0.0.3"}}
	cases := []struct {
		name     string
		statuses []etcdcluster.Status
		want     string
	}{
		{"leader on a tie", []etcdcluster.Status{st("h1", 10, false, true, false), st("h2", 10, true, true, false), st("h3", 10, false, true, false)}, "h2"},
		{"most advanced over leader", []etcdcluster.Status{st("h1", 11, false, true, false), st("h2", 10, true, true, false)}, "h1"},
		{"healthy only", []etcdcluster.Status{st("h1", 99, true, false, false), st("h3", 10, false, true, false)}, "h3"},
		{"voter over learner", []etcdcluster.Status{st("h1", 12, false, true, true), st("h2", 10, false, true, false)}, "h2"},
		{"learner when alone", []etcdcluster.Status{st("h1", 12, false, true, true), st("h2", 10, false, false, false)}, "h1"},
	}
	for _, c := range cases {
		src, err := PickSnapshotSource(c.statuses, nodes)
		if err != nil || src.Member != c.want {
			t.Errorf("%s: got %+v, %v; want %s", c.name, src, err, c.want)
		}
	}
	src, _ := PickSnapshotSource([]etcdcluster.Status{st("h2", 10, true, true, false)}, nodes)
	if src.Node != "cp-2" || src.Endpoint != "https://10.0.0.2:2379" || !src.Leader {
		t.Errorf("source facts: %+v", src)
	}
	_, err := PickSnapshotSource([]etcdcluster.Status{st("h1", 1, false, false, false)}, nodes)
	if err == nil || !strings.Contains(err.Error(), "no healthy etcd member") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("no healthy member: %v", err)
	}
}
