package etcdcluster_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/internal/etcdtest"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

// newClient connects to the given members of c (all when none are named).
func newClient(t *testing.T, c *etcdtest.Cluster, names ...string) *etcdcluster.Client {
	t.Helper()
	eps := c.Endpoints()
	if len(names) > 0 {
		eps = nil
		for _, n := range names {
			eps = append(eps, c.Member(n).ClientURL)
		}
	}
	cli, err := etcdcluster.New(etcdcluster.Config{
		Endpoints:     eps,
		TLS:           c.ClientTLS(),
		MemberTimeout: time.Second, // dead members are expected; don't wait long for them
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestMembersStatusesLeaderAndDeadMember(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 3)
	var dials atomic.Int32
	cli, err := etcdcluster.New(etcdcluster.Config{
		Endpoints:     c.Endpoints(),
		TLS:           c.ClientTLS(),
		MemberTimeout: time.Second,
		DialContext: func(ctx context.Context, addr string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := ctxFor(t, 30*time.Second)

	members, err := cli.Members(ctx)
	if err != nil {
		t.Fatalf("Members: %v", err)
	}
	if len(members) != 3 {
		t.Fatalf("Members = %v, want 3", members)
	}
	for _, m := range members {
		want := c.Member(m.Name)
		if want == nil || want.ID != m.ID || m.IsLearner || !m.Started() ||
			len(m.PeerURLs) != 1 || m.PeerURLs[0] != want.PeerURL || len(m.ClientURLs) != 1 || m.ClientURLs[0] != want.ClientURL {
			t.Errorf("member %+v does not match the started process %+v", m, want)
		}
	}
	if dials.Load() == 0 {
		t.Error("Config.DialContext was never used")
	}

	statuses, err := cli.Statuses(ctx)
	if err != nil {
		t.Fatalf("Statuses: %v", err)
	}
	var leaders int
	for _, s := range statuses {
		if !s.Healthy || s.Err != nil || s.Leader == 0 || s.RaftTerm == 0 || s.RaftIndex == 0 ||
			s.DBSize == 0 || s.Version != "3.7.0" || s.Endpoint != c.Member(s.Member.Name).ClientURL {
			t.Errorf("status of %s: %+v, want a healthy member on its client URL", s.Member, s)
		}
		// The test PKI issues day-long certificates.
		if left := time.Until(s.ServerCertNotAfter); left < 23*time.Hour || left > 25*time.Hour {
			t.Errorf("%s: serving certificate expires %v (in %s), want in about 24h", s.Member, s.ServerCertNotAfter, left)
		}
		if s.ClusterID == 0 || s.ClusterID != statuses[0].ClusterID {
			t.Errorf("%s reports cluster %x, %s cluster %x", s.Member, s.ClusterID, statuses[0].Member, statuses[0].ClusterID)
		}
		if s.IsLeader {
			leaders++
		}
		if s.Leader != statuses[0].Leader {
			t.Errorf("%s follows %x, %s follows %x", s.Member, s.Leader, statuses[0].Member, statuses[0].Leader)
		}
	}
	if leaders != 1 {
		t.Errorf("%d members report being leader, want 1", leaders)
	}
	leader, err := cli.Leader(ctx)
	if err != nil {
		t.Fatalf("Leader: %v", err)
	}
	if leader.Member.ID != statuses[0].Leader || !leader.IsLeader {
		t.Errorf("Leader() = %s, want %x", leader.Member, statuses[0].Leader)
	}

	// A dead member is a row with an error, not a failure of the whole call.
	var victim *etcdtest.Member
	for _, m := range c.Members {
		if m.ID != leader.Member.ID {
			victim = m
			break
		}
	}
	victim.Kill()
	statuses, err = cli.Statuses(ctx)
	if err != nil {
		t.Fatalf("Statuses with %s dead: %v", victim.Name, err)
	}
	if len(statuses) != 3 {
		t.Fatalf("Statuses with %s dead returned %d rows, want 3", victim.Name, len(statuses))
	}
	for _, s := range statuses {
		dead := s.Member.ID == victim.ID
		if dead {
			t.Logf("dead member: %v", s.Err)
		}
		if dead && (s.Healthy || s.Err == nil || !strings.Contains(s.Err.Error(), victim.ClientURL)) {
			t.Errorf("dead member's status = %+v, want unhealthy with an error naming %s", s, victim.ClientURL)
		}
		if !dead && (!s.Healthy || s.Err != nil) {
			t.Errorf("live member %s: %+v, want healthy", s.Member, s)
		}
	}
	// Two of three is still a quorum: removing the dead one is fine, removing
	// a live one would leave one healthy of two.
	members = etcdcluster.MembersOf(statuses)
	if err := etcdcluster.CheckRemove(members, statuses, victim.ID); err != nil {
		t.Errorf("CheckRemove(dead %s): %v", victim.Name, err)
	}
	if err := etcdcluster.CheckRemove(members, statuses, leader.Member.ID); err == nil || !strings.Contains(err.Error(), "quorum") {
		t.Errorf("CheckRemove(leader with another member dead) = %v, want a refusal mentioning quorum", err)
	}
}

func TestLearnerAddPromoteRemove(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 3)
	cli := newClient(t, c)
	ctx := ctxFor(t, 90*time.Second)

	members, err := cli.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	statuses, err := cli.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := etcdcluster.CheckAdd(members, statuses); err != nil {
		t.Fatalf("CheckAdd on a healthy cluster: %v", err)
	}

	ports := etcdtest.ReservePorts(t, 3)
	peerURL := etcdtest.URL(ports[1])
	self, all, err := cli.AddLearner(ctx, peerURL)
	if err != nil {
		t.Fatalf("AddLearner: %v", err)
	}
	if !self.IsLearner || self.Started() || self.ID == 0 || len(all) != 4 {
		t.Fatalf("AddLearner = %+v, %d members; want an unstarted learner among 4", self, len(all))
	}
	again, all, err := cli.AddLearner(ctx, peerURL)
	if err != nil {
		t.Fatalf("AddLearner again: %v", err)
	}
	if again.ID != self.ID || countLearners(all) != 1 || len(all) != 4 {
		t.Fatalf("AddLearner again = %x with %d learners among %d, want %x, one learner among 4", again.ID, countLearners(all), len(all), self.ID)
	}

	// While it is pending, adding another is refused, by us and by etcd.
	statuses, _ = cli.Statuses(ctx)
	if err := etcdcluster.CheckAdd(all, statuses); err == nil || !strings.Contains(err.Error(), "still a learner") {
		t.Errorf("CheckAdd with a pending learner = %v, want a refusal", err)
	}
	_, _, err = cli.AddLearner(ctx, etcdtest.URL(ports[2]))
	t.Logf("second learner: %v", err)
	if err == nil || !strings.Contains(err.Error(), "still a learner") || !strings.Contains(err.Error(), "remove it first") {
		t.Errorf("AddLearner of a second learner = %v, want an error naming the pending learner", err)
	}

	// Not started: Promote waits, and says what for when it gives up.
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	err = cli.Promote(short, self.ID)
	cancel()
	t.Logf("promoting an unstarted learner: %v", err)
	if err == nil || !strings.Contains(err.Error(), "waiting for the learner's etcd to start") {
		t.Errorf("Promote of an unstarted learner = %v, want a timeout saying it waited for the start", err)
	}

	m4 := c.StartMember(etcdtest.MemberConfig{
		Name: "m4", ClientPort: ports[0], PeerPort: ports[1],
		InitialCluster: c.InitialClusterFor("m4", peerURL),
	})
	if m4.ID != self.ID {
		t.Fatalf("started m4 runs as %x, was added as %x", m4.ID, self.ID)
	}
	if err := cli.Promote(ctx, self.ID); err != nil {
		t.Fatalf("Promote: %v", err)
	}
	members, err = cli.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := etcdcluster.Find(members, self.ID); !ok || m.IsLearner || m.Name != "m4" {
		t.Fatalf("after Promote, member = %+v, want voter m4", m)
	}
	if err := cli.Promote(ctx, self.ID); err != nil {
		t.Errorf("Promote of a voter: %v, want nil", err)
	}
	if err := cli.Promote(ctx, 0x1234); err == nil || !strings.Contains(err.Error(), "1234: no such member") {
		t.Errorf("Promote of an unknown ID = %v, want no such member", err)
	}

	statuses, err = cli.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := etcdcluster.CheckRemove(members, statuses, self.ID); err != nil {
		t.Fatalf("CheckRemove(m4) on a healthy 4-member cluster: %v", err)
	}
	for i := range 2 {
		if err := cli.Remove(ctx, self.ID); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	members, err = cli.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := etcdcluster.Find(members, self.ID); ok || len(members) != 3 {
		t.Errorf("after Remove, members = %v, want the original 3", members)
	}
}

func countLearners(ms []etcdcluster.Member) int {
	n := 0
	for _, m := range ms {
		if m.IsLearner {
			n++
		}
	}
	return n
}

func TestMoveLeader(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 3)
	ctx := ctxFor(t, 60*time.Second)
	probe := newClient(t, c)
	leader, err := probe.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Talk only to a follower: MoveLeader must find and dial the leader.
	var follower *etcdtest.Member
	for _, m := range c.Members {
		if m.ID != leader.Member.ID {
			follower = m
			break
		}
	}
	cli := newClient(t, c, follower.Name)
	statuses, err := cli.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	target, err := etcdcluster.PickLeaderTarget(etcdcluster.MembersOf(statuses), statuses, leader.Member.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.MoveLeader(ctx, target); err != nil {
		t.Fatalf("MoveLeader(%x): %v", target, err)
	}
	now, err := cli.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if now.Member.ID != target {
		t.Fatalf("after MoveLeader(%x) the leader is %s (%x)", target, now.Member, now.Member.ID)
	}
	if err := cli.MoveLeader(ctx, target); err != nil {
		t.Errorf("MoveLeader to the current leader: %v, want nil", err)
	}
	if err := cli.MoveLeader(ctx, 0x1234); err == nil || !strings.Contains(err.Error(), "no such member") {
		t.Errorf("MoveLeader to an unknown ID = %v, want no such member", err)
	}
}

// Two members, one dead: no quorum, so Members cannot answer, but Statuses
// can, and CheckRemove explains why neither member may be removed.
func TestCheckRemoveWithoutQuorum(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 2)
	m1, m2 := c.Members[0], c.Members[1]
	m2.Kill()
	cli := newClient(t, c, m1.Name)
	ctx := ctxFor(t, 30*time.Second)
	statuses, err := cli.Statuses(ctx)
	if err != nil {
		t.Fatalf("Statuses without quorum: %v", err)
	}
	members := etcdcluster.MembersOf(statuses)
	if len(members) != 2 {
		t.Fatalf("members = %v, want 2", members)
	}
	for _, id := range []uint64{m1.ID, m2.ID} {
		err := etcdcluster.CheckRemove(members, statuses, id)
		t.Logf("CheckRemove(%x): %v", id, err)
		if err == nil || !strings.Contains(err.Error(), "quorum") {
			t.Errorf("CheckRemove(%x) = %v, want a refusal mentioning quorum", id, err)
		}
	}
	if err := etcdcluster.CheckAdd(members, statuses); err == nil || !strings.Contains(err.Error(), "quorum") {
		t.Errorf("CheckAdd = %v, want a refusal mentioning quorum", err)
	}
}

func TestUnreachableEndpointIsNamed(t *testing.T) {
	t.Parallel()
	pki := etcdtest.NewPKI(t)
	tlsCfg, err := pki.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	// A port that was free a moment ago: nothing listens there.
	ep := etcdtest.URL(etcdtest.ReservePorts(t, 1)[0])
	cli, err := etcdcluster.New(etcdcluster.Config{Endpoints: []string{ep}, TLS: tlsCfg})
	if err != nil {
		t.Fatalf("New does not dial, yet failed: %v", err)
	}
	defer cli.Close()
	ctx := ctxFor(t, time.Second)
	_, err = cli.Members(ctx)
	t.Logf("unreachable: %v", err)
	if err == nil || !strings.Contains(err.Error(), ep) {
		t.Errorf("Members via %s = %v, want an error naming the endpoint", ep, err)
	}
	if _, err := cli.Statuses(ctx); err == nil || !strings.Contains(err.Error(), ep) {
		t.Errorf("Statuses via %s = %v, want an error naming the endpoint", ep, err)
	}
	if _, err := etcdcluster.New(etcdcluster.Config{}); err == nil {
		t.Error("New without endpoints succeeded")
	}
}

// A member removing itself answers "server stopped" (it stops as the
// removal applies); Remove sees through another member that it is gone and
// reports success, as it would for any completed removal.
func TestRemoveThroughTheRemovedMember(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 3)
	victim := c.Members[2]
	var others []string
	for _, m := range c.Members[:2] {
		others = append(others, m.ClientURL)
	}
	// The victim first, so the request goes to it.
	cli, err := etcdcluster.New(etcdcluster.Config{Endpoints: append([]string{victim.ClientURL}, others...), TLS: c.ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := ctxFor(t, 60*time.Second)
	if err := cli.Remove(ctx, victim.ID); err != nil {
		t.Fatalf("Remove of the member the client talks to: %v", err)
	}
	members, err := cli.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, found := etcdcluster.Find(members, victim.ID); found || len(members) != 2 {
		t.Errorf("members after the removal: %v", members)
	}
}

// The same with a client that knows only the removed member's endpoint (as
// `leave` reaches its own member through the host's loopback first): the
// check asks the other members, by the URLs they advertise.
func TestRemoveThroughOnlyTheRemovedMember(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 3)
	victim := c.Members[2]
	cli, err := etcdcluster.New(etcdcluster.Config{Endpoints: []string{victim.ClientURL}, TLS: c.ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := ctxFor(t, 60*time.Second)
	if err := cli.Remove(ctx, victim.ID); err != nil {
		t.Fatalf("Remove through the removed member alone: %v", err)
	}
	members, err := newClient(t, c, c.Members[0].Name).Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, found := etcdcluster.Find(members, victim.ID); found || len(members) != 2 {
		t.Errorf("members after the removal: %v", members)
	}
}
