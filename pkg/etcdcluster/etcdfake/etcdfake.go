// Package etcdfake is an in-memory etcdcluster.Cluster for tests, and the
// members and statuses they describe a cluster with.
package etcdfake

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

// Cluster answers from Views. Each Statuses call answers from the next view,
// the last one repeating, so a test plays a cluster coming up (or going
// down) as one view per poll; Members answers from the view the latest
// Statuses call used (the first before any). A context that has ended is
// the answer, as with a real client.
type Cluster struct {
	Views []View

	mu       sync.Mutex
	statuses int // Statuses calls so far
}

// View is the cluster at one moment.
type View struct {
	Statuses []etcdcluster.Status
	// Members, when nil, are those of Statuses (etcdcluster.MembersOf).
	Members []etcdcluster.Member
	// Err, when set, is what both calls return.
	Err error
}

var _ etcdcluster.Cluster = (*Cluster)(nil)

// view is the view the latest Statuses call used; next moves on first.
func (c *Cluster) view(ctx context.Context, next bool) (View, error) {
	if err := ctx.Err(); err != nil {
		return View{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.Views) == 0 {
		return View{}, errors.New("etcdfake: no views")
	}
	if next {
		c.statuses++
	}
	i := min(max(c.statuses-1, 0), len(c.Views)-1)
	return c.Views[i], c.Views[i].Err
}

// Members implements etcdcluster.Cluster.
func (c *Cluster) Members(ctx context.Context) ([]etcdcluster.Member, error) {
	v, err := c.view(ctx, false)
	if err != nil {
		return nil, err
	}
	if v.Members == nil {
		return etcdcluster.MembersOf(v.Statuses), nil
	}
	return v.Members, nil
}

// Statuses implements etcdcluster.Cluster.
func (c *Cluster) Statuses(ctx context.Context) ([]etcdcluster.Status, error) {
	v, err := c.view(ctx, true)
	if err != nil {
		return nil, err
	}
	return v.Statuses, nil
}

// StatusCalls is how many times Statuses was called.
func (c *Cluster) StatusCalls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statuses
}

// Member is a started voting member with kubeadm's URLs on 10.0.0.<id>
// (peer port 2380, client port 2379).
func Member(id uint64, name string) etcdcluster.Member {
	return etcdcluster.Member{ID: id, Name: name,
		PeerURLs:   []string{fmt.Sprintf("https://10.0.0.%d:2380", id)},
		ClientURLs: []string{fmt.Sprintf("https://10.0.0.%d:2379", id)}}
}

// Learner is m as a learner.
func Learner(m etcdcluster.Member) etcdcluster.Member {
	m.IsLearner = true
	return m
}

// Up is m answering healthy, following leader.
func Up(m etcdcluster.Member, leader uint64) etcdcluster.Status {
	s := etcdcluster.Status{Member: m, Healthy: true, Leader: leader, IsLeader: leader == m.ID}
	if len(m.ClientURLs) > 0 {
		s.Endpoint = m.ClientURLs[0]
	}
	return s
}

// Down is m not answering: connection refused at its client URL.
func Down(m etcdcluster.Member) etcdcluster.Status {
	s := etcdcluster.Status{Member: m}
	if len(m.ClientURLs) > 0 {
		s.Endpoint = m.ClientURLs[0]
	}
	s.Err = fmt.Errorf("status of member %s: cannot connect to %s: connection refused", m, s.Endpoint)
	return s
}
