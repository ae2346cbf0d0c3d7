package recover

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kubectl-etcd/kubectl-etcd/internal/etcdtest"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcddata"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
)

// hostWithMemberData is a test host (see testEnv) holding c's etcd CA and a
// copy of m's data dir as its /var/lib/etcd: the survivor's host after
// m was stopped, as recover finds it.
func hostWithMemberData(t *testing.T, c *etcdtest.Cluster, m *etcdtest.Member) *hostlocal.Env {
	t.Helper()
	e := testEnv(t)
	certPEM, keyPEM := c.PKI.CAPEM(t)
	if _, err := e.Host.InstallEtcdCA(e.Config, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(e.Host.Path("/var/lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(e.Host.Path("/var/lib/etcd"), os.DirFS(m.DataDir)); err != nil {
		t.Fatal(err)
	}
	return e
}

// waitLeader waits until m answers with a leader.
func waitLeader(t *testing.T, c *etcdtest.Cluster, m *etcdtest.Member) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL}, TLS: c.ClientTLS(), DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := cli.Status(ctx, m.ClientURL)
		cancel()
		if err == nil && st.Leader != 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no leader after 30s: %v", m.Name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSurveyOfStoppedMember is recover run again after it was killed right
// after "stop local etcd": there is no journal yet, and this host's etcd is
// stopped. The survey reads this member's identity, raft index, revision and
// the membership from its data dir on disk, asks the other members (real
// etcd processes), and recover decides from that: refused while the others
// hold a quorum; once they are down too, planned afresh from this data,
// cutting the others off.
func TestSurveyOfStoppedMember(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	a, b, cc := c.Members[0], c.Members[1], c.Members[2]
	cli := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var rev int64
	for i := range 5 {
		put, err := cli.Put(ctx, fmt.Sprintf("/registry/k%d", i), "v")
		if err != nil {
			t.Fatal(err)
		}
		rev = put.Header.Revision
	}
	st, err := cli.Status(ctx, a.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	indexBefore, clusterID := st.RaftIndex, st.Header.ClusterId
	a.Stop()
	e := hostWithMemberData(t, c, a)

	// b and c still have a quorum: nothing to recover.
	waitLeader(t, c, b)
	s, err := survey(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Quorum || s.Local.Running || !s.Local.Offline {
		t.Errorf("with b and c up: quorum %v, local running %v offline %v; want a quorum seen from a stopped member", s.Quorum, s.Local.Running, s.Local.Offline)
	}
	if _, err := recoverHere(s, false); err == nil || !strings.HasPrefix(err.Error(), "the cluster has a quorum (") || !strings.Contains(err.Error(), "there is nothing to recover") {
		t.Errorf("recover with b and c up: %v", err)
	}

	// Quorum lost: b and c are powered off too.
	b.Kill()
	cc.Kill()
	r, err := PlanRecover(ctx, e, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s = r.Res.Survey
	if s == nil {
		t.Fatal("no survey: a run without a journal must survey")
	}
	l := s.Local
	if !l.Offline || l.Running || l.id != a.ID || l.clusterID != clusterID {
		t.Errorf("local %+v: want offline facts of member %x of cluster %x", l, a.ID, clusterID)
	}
	if l.Revision != rev || l.RaftIndex < indexBefore {
		t.Errorf("local revision %d, raft index %d; want revision %d and raft index at least %d", l.Revision, l.RaftIndex, rev, indexBefore)
	}
	var members, others []string
	for _, m := range s.Members {
		members = append(members, fmt.Sprintf("%s %x %v %v", m.Name, m.ID, m.PeerURLs, m.ClientURLs))
	}
	var want []string
	for _, m := range c.Members {
		want = append(want, fmt.Sprintf("%s %x [%s] [%s]", m.Name, m.ID, m.PeerURL, m.ClientURL))
	}
	slices.Sort(members)
	slices.Sort(want)
	if !slices.Equal(members, want) {
		t.Errorf("membership read from disk:\n%s\nwant\n%s", strings.Join(members, "\n"), strings.Join(want, "\n"))
	}
	for _, o := range s.Others {
		others = append(others, o.Name)
		if o.Running || o.Silent || o.Error == "" {
			t.Errorf("other %+v: want it down, with the error", o)
		}
	}
	slices.Sort(others)
	if !slices.Equal(others, []string{b.Name, cc.Name}) || s.Quorum || s.Ahead != nil || s.Silent != nil {
		t.Errorf("others %v, quorum %v, ahead %v, silent %v; want %s and %s down, no quorum", others, s.Quorum, s.Ahead, s.Silent, b.Name, cc.Name)
	}

	j := r.j
	var old []uint64
	for _, m := range j.Old {
		old = append(old, m.ID)
	}
	if j.MemberID != a.ID || j.ClusterID != clusterID || j.Index != l.RaftIndex || j.Revision != rev ||
		!slices.Equal(old, []uint64{b.ID, cc.ID}) && !slices.Equal(old, []uint64{cc.ID, b.ID}) {
		t.Errorf("journal to be %+v", j)
	}
	if got := stepNames(r.Plan); len(got) < 2 || got[0] != "stop local etcd" || got[1] != "copy data dir" {
		t.Errorf("steps %q: a run without a journal stops etcd and copies the data first", got)
	}
	if _, err := os.Stat(e.Host.Path(journalPath(e.Host))); !os.IsNotExist(err) {
		t.Errorf("planning wrote the journal: %v", err)
	}
}

// TestRecoverWithoutData: a host with no etcd data and no etcd running has
// nothing to recover from; recover says so and changes nothing.
func TestRecoverWithoutData(t *testing.T) {
	e := testEnv(t)
	p := etcdtest.NewPKI(t)
	certPEM, _ := os.ReadFile(p.CACert)
	keyPEM, _ := os.ReadFile(p.CAKey)
	if _, err := e.Host.InstallEtcdCA(e.Config, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(e.Host.Path("/var/lib/etcd"), 0o700); err != nil {
		t.Fatal(err)
	}
	before := tree(t, e.Host.Root)
	_, err := PlanRecover(context.Background(), e, Options{})
	want := "cp-1 has no etcd data in /var/lib/etcd and no etcd running: there is nothing here to recover from; run recover on a host that has its data dir, or restore a snapshot (kubectl-etcd restore FILE)"
	if err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}
	if tree(t, e.Host.Root) != before {
		t.Error("the refused recover changed the host")
	}
}

// A survivor known only by its peer URL is reached at its client port,
// the address bracketed when it is IPv6.
func TestClientURLOf(t *testing.T) {
	for _, tc := range []struct {
		m    etcddata.Member
		want string
	}{
		{etcddata.Member{ClientURLs: []string{"https://10.0.0.1:2379"}, PeerURLs: []string{"https://10.0.0.1:2380"}}, "https://10.0.0.1:2379"},
		{etcddata.Member{PeerURLs: []string{"https://10.0.0.2:2380"}}, "https://10.0.0.2:2379"},
		{etcddata.Member{PeerURLs: []string{"https://[fd00::3]:2380"}}, "https://[fd00::3]:2379"},
		{etcddata.Member{PeerURLs: []string{"https://cp-4.example.internal:2380"}}, "https://cp-4.example.internal:2379"},
		{etcddata.Member{}, ""},
	} {
		if got := clientURLOf(tc.m); got != tc.want {
			t.Errorf("clientURLOf(%+v) = %q, want %q", tc.m, got, tc.want)
		}
	}
}
