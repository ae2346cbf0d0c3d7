package hostlocal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/internal/etcdtest"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster/etcdfake"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcddata"
)

// TestRowsJSON pins the member rows of `status --local -o json`, which
// scripts and the e2e tests parse: every field's name, and which are left
// out when empty.
func TestRowsJSON(t *testing.T) {
	unstarted := etcdfake.Learner(etcdcluster.Member{ID: 4, PeerURLs: []string{"https://10.0.0.4:2380"}})
	members := []etcdcluster.Member{m1, m2, m3, unstarted}
	up := etcdfake.Up(m1, 1)
	up.RaftIndex, up.RaftTerm, up.Revision, up.DBSize, up.DBSizeInUse, up.Version = 120, 3, 77, 3<<20, 1<<20, "3.6.5"
	up.Alarms = []string{"NOSPACE"}
	down := etcdfake.Down(m2)
	down.Err = errors.New("status of member cp-2: cannot connect to https://10.0.0.2:2379: connection refused")
	statuses := []etcdcluster.Status{up, down, etcdfake.Up(m3, 1)}
	got, err := json.MarshalIndent(rows(members, statuses, selfPeer), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	const want = `[
  {
    "name": "4",
    "id": "4",
    "peerURL": "https://10.0.0.4:2380",
    "clientURL": "",
    "leader": false,
    "learner": true,
    "healthy": false
  },
  {
    "name": "cp-1",
    "id": "1",
    "peerURL": "https://10.0.0.1:2380",
    "clientURL": "https://10.0.0.1:2379",
    "leader": true,
    "learner": false,
    "started": true,
    "healthy": true,
    "dbSize": 3145728,
    "dbSizeInUse": 1048576,
    "raftIndex": 120,
    "raftTerm": 3,
    "revision": 77,
    "version": "3.6.5",
    "alarms": [
      "NOSPACE"
    ],
    "thisHost": true
  },
  {
    "name": "cp-2",
    "id": "2",
    "peerURL": "https://10.0.0.2:2380",
    "clientURL": "https://10.0.0.2:2379",
    "leader": false,
    "learner": false,
    "started": true,
    "healthy": false,
    "error": "status of member cp-2: cannot connect to https://10.0.0.2:2379: connection refused"
  },
  {
    "name": "cp-3",
    "id": "3",
    "peerURL": "https://10.0.0.3:2380",
    "clientURL": "https://10.0.0.3:2379",
    "leader": false,
    "learner": false,
    "started": true,
    "healthy": true
  }
]`
	if string(got) != want {
		t.Errorf("status --local -o json member rows:\n%s\nwant:\n%s", got, want)
	}
}

// TestPrintState pins `status --local`'s text, byte for byte: a host whose
// etcd runs, and one whose etcd is stopped with data in its data dir.
func TestPrintState(t *testing.T) {
	up := etcdfake.Up(m1, 1)
	up.RaftIndex, up.Revision = 120, 77
	statuses := []etcdcluster.Status{up, etcdfake.Down(m2), etcdfake.Up(etcdfake.Learner(m3), 1)}
	members := etcdcluster.MembersOf(statuses)
	running := &State{Node: "cp-1", Address: "10.0.0.1", PeerURL: selfPeer, ManifestPresent: true, EtcdRunning: true, DataDir: "/var/lib/etcd",
		ClusterID: "c1", Members: rows(members, statuses, selfPeer),
		APIServerEtcdServers: []string{"https://127.0.0.1:2379"}}
	running.Local = &running.Members[0]
	running.Summary = summarize(running)
	stopped := &State{Node: "cp-2", Address: "10.0.0.2", PeerURL: m2.PeerURLs[0], DataDir: "/var/lib/etcd",
		DataDirFacts: &etcddata.State{HasData: true, MemberID: 2, ClusterID: 0xc1, RaftTerm: 3, RaftCommit: 118, Revision: 76},
		ClusterError: "no etcd endpoint answered (https://10.0.0.1:2379): context deadline exceeded"}
	stopped.Summary = summarize(stopped)
	full := etcdfake.Up(m1, 1)
	full.Alarms = []string{"NOSPACE"}
	fullStatuses := []etcdcluster.Status{full}
	alarmed := &State{Node: "cp-1", Address: "10.0.0.1", PeerURL: selfPeer, ManifestPresent: true, EtcdRunning: true, DataDir: "/var/lib/etcd",
		ClusterID: "c1", Members: rows(etcdcluster.MembersOf(fullStatuses), fullStatuses, selfPeer)}
	alarmed.Local = &alarmed.Members[0]
	alarmed.Summary = summarize(alarmed)

	for _, tc := range []struct {
		st   *State
		want string
	}{
		{running, `Host cp-1 (10.0.0.1), peer URL https://10.0.0.1:2380
  etcd manifest: yes   etcd running: yes   data dir: /var/lib/etcd
  kube-apiserver reads etcd at: https://127.0.0.1:2379
Cluster c1 members:
  NAME              ID  ROLE     HEALTH                                          LEADER  RAFT INDEX  REVISION  PEER URL
  cp-1 (this host)  1   voter    healthy                                         yes     120         77        https://10.0.0.1:2380
  cp-2              2   voter    down: status of member cp-2: cannot connect...  no      0           0         https://10.0.0.2:2380
  cp-3              3   learner  healthy                                         no      0           0         https://10.0.0.3:2380
State: cp-1 is a voting member; cluster: 2 voting members, 1 healthy (NO QUORUM)
`},
		{stopped, `Host cp-2 (10.0.0.2), peer URL https://10.0.0.2:2380
  etcd manifest: no   etcd running: no   data dir: /var/lib/etcd
  data dir (offline): member 2 of cluster c1, raft term 3 commit 118, revision 76
  cluster: no etcd endpoint answered (https://10.0.0.1:2379): context deadline exceeded
State: cp-2 has no etcd member; no cluster member answered
`},
		{alarmed, `Host cp-1 (10.0.0.1), peer URL https://10.0.0.1:2380
  etcd manifest: yes   etcd running: yes   data dir: /var/lib/etcd
Cluster c1 members:
  NAME              ID  ROLE   HEALTH                   LEADER  RAFT INDEX  REVISION  PEER URL
  cp-1 (this host)  1   voter  ALARM NOSPACE (healthy)  yes     0           0         https://10.0.0.1:2380
State: cp-1 is a voting member; cluster: 1 voting members, 1 healthy (quorum); ALARM NOSPACE raised by cp-1: the cluster takes no writes (see ` + "`kubectl-etcd alarm list --local`" + `)
`},
	} {
		var b bytes.Buffer
		PrintState(&b, tc.st)
		if b.String() != tc.want {
			t.Errorf("PrintState(%s):\n%s\nwant:\n%s", tc.st.Node, b.String(), tc.want)
		}
	}
}

// Under quorum loss, status --local is the runbook's first command on every
// host: it says at once that the member it asks has no leader, instead of
// waiting out the linearizable member list's 10 s and calling the host's
// etcd "not a member of the cluster it can see".
func TestReadStateWithoutQuorum(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	e, _ := testEnv(t, false)
	certPEM, keyPEM := c.PKI.CAPEM(t)
	if _, err := e.Host.InstallEtcdCA(e.Config, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st := e.ReadState(ctx, c.Endpoints())
	if st.NoLeader != "" || len(st.Members) != 3 || !strings.Contains(st.Summary, "3 voting members, 3 healthy") {
		t.Fatalf("all members up: no leader %q, %d members, summary %q", st.NoLeader, len(st.Members), st.Summary)
	}

	c.Members[1].Kill()
	c.Members[2].Kill()
	tlsCfg, err := e.Host.EphemeralClientTLS(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		s, err := etcdcluster.StatusOf(ctx, tlsCfg, c.Members[0].ClientURL, time.Second)
		if err == nil && s.Leader == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("m1 still follows a leader 20 s after the others were killed (%v)", err)
		}
	}
	start := time.Now()
	st = e.ReadState(ctx, c.Endpoints())
	took := time.Since(start)
	t.Logf("status without a quorum: %s: %s", took.Round(time.Millisecond), st.Summary)
	if !strings.Contains(st.NoLeader, "has no leader") || !strings.Contains(st.NoLeader, c.Members[0].ClientURL) {
		t.Errorf("no leader: %q", st.NoLeader)
	}
	if !strings.Contains(st.Summary, "the cluster has lost its quorum, or is electing a leader") || strings.Contains(st.Summary, "not a member") {
		t.Errorf("summary %q", st.Summary)
	}
	if took > leaderlessCall+3*time.Second {
		t.Errorf("status without a quorum took %s: the linearizable read should be bounded by %s", took, leaderlessCall)
	}
}

// Where nothing listens, status says so at once, naming each endpoint,
// instead of letting etcd's client retry the dials for 10 s.
func TestReadStateNothingListens(t *testing.T) {
	e, _ := testEnv(t, false)
	pki := etcdtest.NewPKI(t)
	certPEM, keyPEM := pki.CAPEM(t)
	if _, err := e.Host.InstallEtcdCA(e.Config, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	ports := etcdtest.ReservePorts(t, 2)
	eps := []string{fmt.Sprintf("https://127.0.0.1:%d", ports[0]), fmt.Sprintf("https://127.0.0.1:%d", ports[1])}
	start := time.Now()
	st := e.ReadState(context.Background(), eps)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("status with nothing listening took %s", took)
	}
	for _, ep := range eps {
		if !strings.Contains(st.ClusterError, ep+": ") {
			t.Errorf("cluster error %q does not name %s", st.ClusterError, ep)
		}
	}
	if !strings.Contains(st.ClusterError, "connection refused") || len(st.Members) != 0 || !strings.HasSuffix(st.Summary, "no cluster member answered") {
		t.Errorf("cluster error %q, members %v, summary %q", st.ClusterError, st.Members, st.Summary)
	}
}
