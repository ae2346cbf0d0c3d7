package etcdcluster_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/internal/etcdtest"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

// One-endpoint calls answer for that member alone, also after the others are
// gone (no quorum needed), and a dead endpoint fails within the timeout,
// naming it.
func TestEndpointCallsWithoutQuorum(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 3)
	ctx := ctxFor(t, 30*time.Second)
	m1, m2, m3 := c.Member("m1"), c.Member("m2"), c.Member("m3")
	m2.Kill()
	m3.Kill()

	st, err := etcdcluster.StatusOf(ctx, c.ClientTLS(), m1.ClientURL, 3*time.Second)
	if err != nil {
		t.Fatalf("StatusOf m1 without quorum: %v", err)
	}
	if st.Header.MemberId != m1.ID {
		t.Errorf("StatusOf m1 answered as member %x, want %x", st.Header.MemberId, m1.ID)
	}
	ms, err := etcdcluster.MembersAt(ctx, c.ClientTLS(), m1.ClientURL, 3*time.Second)
	if err != nil || len(ms) != 3 || ms[0].ID > ms[1].ID || ms[1].ID > ms[2].ID {
		t.Fatalf("MembersAt m1 without quorum: %v %+v", err, ms)
	}
	start := time.Now()
	_, err = etcdcluster.StatusOf(ctx, c.ClientTLS(), m2.ClientURL, time.Second)
	if err == nil || !strings.Contains(err.Error(), m2.ClientURL) {
		t.Fatalf("StatusOf a dead member: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a dead member took %s, want about the 1s timeout", took)
	}
}
