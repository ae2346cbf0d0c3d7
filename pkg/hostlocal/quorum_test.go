package hostlocal

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster/etcdfake"
)

var (
	m1, m2, m3 = etcdfake.Member(1, "cp-1"), etcdfake.Member(2, "cp-2"), etcdfake.Member(3, "cp-3")
	selfPeer   = m1.PeerURLs[0] // this host's member is m1
)

func TestQuorumWith(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []etcdcluster.Status
		ok       bool
		note     string
	}{
		{"all healthy", []etcdcluster.Status{etcdfake.Up(m1, 1), etcdfake.Up(m2, 1), etcdfake.Up(m3, 1)},
			true, "3 of 3 voting members healthy"},
		{"one down is named", []etcdcluster.Status{etcdfake.Up(m1, 2), etcdfake.Up(m2, 2), etcdfake.Down(m3)},
			true, "2 of 3 voting members healthy; not answering: cp-3"},
		{"learners neither vote nor count as down", []etcdcluster.Status{etcdfake.Up(m1, 1), etcdfake.Down(etcdfake.Learner(m2))},
			true, "1 of 1 voting members healthy"},
		{"single member", []etcdcluster.Status{etcdfake.Up(m1, 1)}, true, "1 of 1 voting members healthy"},
		{"quorum without this host's member", []etcdcluster.Status{etcdfake.Down(m1), etcdfake.Up(m2, 2), etcdfake.Up(m3, 2)},
			false, "2 of 3 voting members healthy, this host's member healthy: false"},
		{"this host's member still a learner", []etcdcluster.Status{etcdfake.Up(etcdfake.Learner(m1), 2), etcdfake.Up(m2, 2), etcdfake.Up(m3, 2)},
			false, "2 of 2 voting members healthy, this host's member healthy: false"},
		{"no quorum", []etcdcluster.Status{etcdfake.Up(m1, 1), etcdfake.Down(m2), etcdfake.Down(m3)},
			false, "1 of 3 voting members healthy, this host's member healthy: true"},
		{"half is not a quorum", []etcdcluster.Status{etcdfake.Up(m1, 1), etcdfake.Down(m2)},
			false, "1 of 2 voting members healthy, this host's member healthy: true"},
		{"no members", nil, false, "0 of 0 voting members healthy, this host's member healthy: false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			note, ok := quorumWith(tc.statuses, selfPeer)
			if ok != tc.ok || note != tc.note {
				t.Errorf("quorumWith = %q, %v; want %q, %v", note, ok, tc.note, tc.ok)
			}
		})
	}
}

// waitQuorum polls until the local member is part of a healthy quorum, and
// a wait that runs out says what it saw last.
func TestWaitQuorum(t *testing.T) {
	ctx := context.Background()
	noQuorum := etcdfake.View{Statuses: []etcdcluster.Status{etcdfake.Up(m1, 1), etcdfake.Down(m2), etcdfake.Down(m3)}}
	quorum := etcdfake.View{Statuses: []etcdcluster.Status{etcdfake.Up(m1, 1), etcdfake.Up(m2, 1), etcdfake.Down(m3)}}

	c := &etcdfake.Cluster{Views: []etcdfake.View{noQuorum, quorum}}
	note, err := waitQuorum(ctx, c, selfPeer, time.Minute)
	if err != nil || note != "2 of 3 voting members healthy; not answering: cp-3" || c.StatusCalls() != 2 {
		t.Errorf("a cluster coming up: %q, %v after %d looks; want the second look's note", note, err, c.StatusCalls())
	}

	c = &etcdfake.Cluster{Views: []etcdfake.View{noQuorum}}
	_, err = waitQuorum(ctx, c, selfPeer, 0)
	want := "timed out after 0s waiting for a healthy quorum: 1 of 3 voting members healthy, this host's member healthy: true"
	if err == nil || err.Error() != want {
		t.Errorf("no quorum: %v, want %q", err, want)
	}

	c = &etcdfake.Cluster{Views: []etcdfake.View{{Err: errors.New("listing etcd members via https://10.0.0.1:2379: context deadline exceeded")}}}
	_, err = waitQuorum(ctx, c, selfPeer, 0)
	if err == nil || !strings.HasSuffix(err.Error(), "waiting for a healthy quorum: listing etcd members via https://10.0.0.1:2379: context deadline exceeded") {
		t.Errorf("a cluster that does not answer: %v", err)
	}

	done, cancel := context.WithCancel(ctx)
	cancel()
	c = &etcdfake.Cluster{Views: []etcdfake.View{noQuorum}}
	if _, err := waitQuorum(done, c, selfPeer, time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("an ended context: %v", err)
	}
}
