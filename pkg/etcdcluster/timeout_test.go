package etcdcluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/internal/etcdtest"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

// Every call bounds itself by the Config's timeouts: against a member that
// has stopped (etcd's client would wait for it forever), each returns once
// its own bound has passed, with an error that names what it did and where,
// and a caller's earlier deadline ends it sooner.
func TestCallsBoundThemselves(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 1)
	m := c.Members[0]
	const (
		call    = 600 * time.Millisecond
		change  = 900 * time.Millisecond
		promote = 1200 * time.Millisecond
	)
	cli, err := etcdcluster.New(etcdcluster.Config{Endpoints: []string{m.ClientURL}, TLS: c.ClientTLS(), MemberTimeout: time.Second,
		CallTimeout: call, ChangeTimeout: change, PromoteTimeout: promote})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Members(context.Background()); err != nil {
		t.Fatalf("Members while the member runs: %v", err)
	}
	m.Stop()

	for _, tc := range []struct {
		name  string
		bound time.Duration
		op    string // what the error must say was being done
		do    func(ctx context.Context) error
	}{
		{"Members", call, "listing etcd members", func(ctx context.Context) error { _, err := cli.Members(ctx); return err }},
		{"Get", call, "reading /k", func(ctx context.Context) error { _, _, err := cli.Get(ctx, "/k"); return err }},
		{"Put", call, "writing /k", func(ctx context.Context) error { return cli.Put(ctx, "/k", "v") }},
		{"Statuses", 2 * call, "listing etcd members", func(ctx context.Context) error { _, err := cli.Statuses(ctx); return err }},
		{"Leader", 2 * call, "listing etcd members", func(ctx context.Context) error { _, err := cli.Leader(ctx); return err }},
		{"AddLearner", change, "adding learner https://127.0.0.1:1", func(ctx context.Context) error {
			_, _, err := cli.AddLearner(ctx, "https://127.0.0.1:1")
			return err
		}},
		{"Remove", change, "removing member", func(ctx context.Context) error { return cli.Remove(ctx, m.ID) }},
		{"MoveLeader", change, "moving leadership", func(ctx context.Context) error { return cli.MoveLeader(ctx, m.ID) }},
		{"Promote", promote, "promoting member", func(ctx context.Context) error { return cli.Promote(ctx, m.ID) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			err := tc.do(context.Background())
			took := time.Since(start)
			t.Logf("after %s: %v", took.Round(time.Millisecond), err)
			// The upper margin allows for the probe that explains a timeout.
			if took < tc.bound || took > tc.bound+1500*time.Millisecond {
				t.Errorf("took %s, want its own bound %s", took, tc.bound)
			}
			if err == nil || !strings.Contains(err.Error(), tc.op) || !strings.Contains(err.Error(), m.ClientURL) {
				t.Errorf("error %v, want one saying %q and naming %s", err, tc.op, m.ClientURL)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start = time.Now()
			err = tc.do(ctx)
			if took := time.Since(start); err == nil || took >= tc.bound {
				t.Errorf("with a caller's deadline of 200ms: %v after %s, want an error before its own bound %s", err, took, tc.bound)
			}
		})
	}
}
