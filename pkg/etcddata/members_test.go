package etcddata_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubectl-etcd/kubectl-etcd/internal/etcdtest"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcddata"
)

// A stopped member's database knows the membership, including removed IDs;
// a copy aside of it is complete, leaves the original alone, and reads the same.
func TestMembershipAndCopyAside(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli := c.Client()
	ml, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The victim is a follower other than m1 (whose data the test reads):
	// killing the leader would add an election to a test about data.
	st, err := cli.Status(ctx, c.Member("m1").ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	var removed uint64
	victim := ""
	for _, m := range ml.Members {
		if m.Name != "m1" && m.ID != st.Leader && victim == "" {
			removed, victim = m.ID, m.Name
		}
	}
	c.Member(victim).Kill()
	one, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Member("m1").ClientURL}, TLS: c.ClientTLS(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	// Under load (parallel packages on two cores) the cluster may be
	// electing a leader just then: etcd's answer is a retryable timeout.
	for i := 0; ; i++ {
		_, err := one.MemberRemove(ctx, removed)
		if err == nil {
			break
		}
		if i == 10 {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
	m1 := c.Member("m1")
	live, liveM, err := etcddata.ReadInUse(m1.DataDir)
	if err != nil {
		t.Fatalf("ReadInUse of a running member: %v", err)
	}
	if live.MemberID == 0 || len(liveM.Members) != 2 {
		t.Errorf("ReadInUse: %+v, %+v", live, liveM)
	}
	m1.Stop()
	got, err := etcddata.ReadMembership(m1.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Members) != 2 || len(got.Removed) != 1 || got.Removed[0] != removed {
		t.Fatalf("membership %+v, want 2 members and %x removed", got, removed)
	}
	for _, m := range got.Members {
		if m.Name == "" || len(m.PeerURLs) != 1 || len(m.ClientURLs) != 1 {
			t.Errorf("member %+v lacks name or URLs", m)
		}
	}

	before, err := etcddata.Read(m1.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if before.MemberID != live.MemberID {
		t.Errorf("ReadInUse read member %x, offline %x", live.MemberID, before.MemberID)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	copied, err := etcddata.CopyAside(m1.DataDir, "before-recover", now)
	if err != nil {
		t.Fatal(err)
	}
	if want := m1.DataDir + ".before-recover-20260102T030405Z"; copied != want {
		t.Errorf("copy at %s, want %s", copied, want)
	}
	// A copy interrupted by a crash (a .partial from an earlier second) is
	// removed by the next copy; the finished copy stays.
	interrupted := m1.DataDir + ".before-recover-20260102T030300Z.partial"
	if err := os.MkdirAll(filepath.Join(interrupted, "member", "snap"), 0o700); err != nil {
		t.Fatal(err)
	}
	again, err := etcddata.CopyAside(m1.DataDir, "before-recover", now)
	if _, serr := os.Stat(interrupted); !os.IsNotExist(serr) {
		t.Errorf("the interrupted copy %s is still there: %v", interrupted, serr)
	}
	if _, serr := os.Stat(copied); serr != nil {
		t.Errorf("the finished copy %s is gone: %v", copied, serr)
	}
	if err != nil || !strings.HasSuffix(again, "-1") {
		t.Errorf("second copy in the same second: %s, %v (want a -1 name)", again, err)
	}
	for _, dir := range []string{m1.DataDir, copied} {
		st, err := etcddata.Read(dir)
		if err != nil {
			t.Fatal(err)
		}
		if st.MemberID != before.MemberID || st.Revision != before.Revision || st.RaftCommit != before.RaftCommit {
			t.Errorf("%s reads %+v, want %+v", dir, st, before)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(m1.DataDir), "*.partial")); len(left) > 0 {
		t.Errorf("partial copies left: %v", left)
	}
	if _, err := etcddata.CopyAside(filepath.Join(t.TempDir(), "missing"), "x", now); err == nil {
		t.Error("copying a missing dir succeeded")
	}
	if _, err := etcddata.CopyAside(m1.DataDir, "bad/reason", now); err == nil {
		t.Error("a reason with a slash was accepted")
	}
	if _, err := os.Stat(m1.DataDir); err != nil {
		t.Errorf("the original dir is gone: %v", err)
	}
}
