package etcdfake

import (
	"context"
	"errors"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

// Statuses moves through the views and stays on the last; Members answers
// from the view Statuses last used, and an ended context is the answer.
func TestViews(t *testing.T) {
	a, b := Member(1, "a"), Member(2, "b")
	boom := errors.New("boom")
	c := &Cluster{Views: []View{{Err: boom}, {Statuses: []etcdcluster.Status{Up(a, 1), Down(b)}}}}
	ctx := context.Background()
	if _, err := c.Members(ctx); !errors.Is(err, boom) {
		t.Errorf("Members before any Statuses: %v, want the first view's error", err)
	}
	if _, err := c.Statuses(ctx); !errors.Is(err, boom) {
		t.Errorf("first Statuses: %v, want boom", err)
	}
	for range 2 {
		ss, err := c.Statuses(ctx)
		if err != nil || len(ss) != 2 || !ss[0].Healthy || ss[1].Healthy || ss[1].Err == nil {
			t.Errorf("later Statuses: %+v, %v", ss, err)
		}
	}
	if ms, err := c.Members(ctx); err != nil || len(ms) != 2 || ms[0].ID != 1 || ms[1].ID != 2 {
		t.Errorf("Members of the last view: %+v, %v", ms, err)
	}
	if n := c.StatusCalls(); n != 3 {
		t.Errorf("StatusCalls = %d, want 3", n)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Statuses(done); !errors.Is(err, context.Canceled) {
		t.Errorf("Statuses with an ended context: %v", err)
	}
}
