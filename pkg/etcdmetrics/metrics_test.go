package etcdmetrics

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubectl-etcd/kubectl-etcd/internal/etcdtest"
)

// startMember starts a one-member cluster serving its metrics over plain
// HTTP at base.
func startMember(t *testing.T) (base string, cli *clientv3.Client) {
	port := etcdtest.ReservePorts(t, 1)[0]
	base = fmt.Sprintf("http://127.0.0.1:%d", port)
	return base, etcdtest.StartCluster(t, 1, "--listen-metrics-urls="+base).Client()
}

// A real member's metrics page: its ID, leadership, size and revision are
// what its own status API says.
func TestGetRealMember(t *testing.T) {
	base, cli := startMember(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 20 {
		if _, err := cli.Put(ctx, fmt.Sprintf("/k/%d", i), strings.Repeat("v", 4096)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := cli.Status(ctx, cli.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}
	s, err := Get(ctx, http.DefaultClient, base)
	if err != nil {
		t.Fatal(err)
	}
	if s.ServerID != st.Header.MemberId {
		t.Errorf("ServerID %x, the member's ID is %x", s.ServerID, st.Header.MemberId)
	}
	if !s.HasLeader || !s.IsLeader {
		t.Errorf("a single member leads itself; got HasLeader %v IsLeader %v", s.HasLeader, s.IsLeader)
	}
	if s.DBSize != st.DbSize || s.DBSizeInUse <= 0 || s.DBSizeInUse > s.DBSize {
		t.Errorf("sizes %d (in use %d), status says %d (in use %d)", s.DBSize, s.DBSizeInUse, st.DbSize, st.DbSizeInUse)
	}
	if s.Revision != st.Header.Revision {
		t.Errorf("revision %d, status says %d", s.Revision, st.Header.Revision)
	}
	if s.Version != st.Version {
		t.Errorf("version %q, status says %q", s.Version, st.Version)
	}
	if s.CommittedIndex == 0 || s.CommittedIndex > st.RaftIndex {
		t.Errorf("committed index %d, status' raft index %d", s.CommittedIndex, st.RaftIndex)
	}
}

func TestGetNotEtcd(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "# HELP go_goroutines Number of goroutines.\ngo_goroutines 12")
	}))
	defer srv.Close()
	_, err := Get(context.Background(), srv.Client(), srv.URL)
	if err == nil || !strings.Contains(err.Error(), "not an etcd member's metrics: no etcd_server_id, etcd_server_has_leader, etcd_mvcc_db_total_size_in_bytes") {
		t.Fatalf("want the missing metrics named, got %v", err)
	}
	_, err = Get(context.Background(), srv.Client(), srv.URL+"/nowhere")
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("want the HTTP status, got %v", err)
	}
}

func TestParseBadID(t *testing.T) {
	_, err := Parse(strings.NewReader(`etcd_server_id{server_id="zz"} 1` + "\n"))
	if err == nil || !strings.Contains(err.Error(), `server_id "zz", not a member ID`) {
		t.Fatalf("got %v", err)
	}
}

func TestLoopbackPort(t *testing.T) {
	for _, tc := range []struct {
		args []string
		port uint16
		ok   bool
	}{
		{[]string{"etcd", "--listen-metrics-urls=http://127.0.0.1:2381"}, 2381, true},
		{[]string{"etcd", "--listen-metrics-urls", "http://[::1]:2399"}, 2399, true},
		{[]string{"etcd", "--listen-metrics-urls=https://127.0.0.1:2381,http://localhost:2390"}, 2390, true},
		{[]string{"etcd", "--listen-metrics-urls=http://0.0.0.0:2381"}, 2381, true},
		{[]string{"etcd", "--listen-metrics-urls=http://10.0.0.5:2381"}, 0, false},
		{[]string{"etcd", "--listen-metrics-urls=https://127.0.0.1:2381"}, 0, false},
		{[]string{"etcd", "--listen-client-urls=http://127.0.0.1:2379"}, 0, false},
		{[]string{"etcd", "--listen-metrics-urls=http://127.0.0.1"}, 0, false},
	} {
		port, ok := LoopbackPort(tc.args)
		if port != tc.port || ok != tc.ok {
			t.Errorf("%q: got %d %v, want %d %v", tc.args, port, ok, tc.port, tc.ok)
		}
	}
}

// A member's known peers are the membership as it applied it: itself, and
// a member added that never started (which has no metrics of its own), so
// a reader can tell that such a member exists. Its /health names an alarm.
func TestKnownPeersAndHealth(t *testing.T) {
	base, cli := startMember(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Get(ctx, http.DefaultClient, base)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.KnownPeers) != 1 || s.KnownPeers[0] != s.ServerID || s.IsLearner {
		t.Fatalf("a single member: known peers %x (learner %v), want only itself (%x)", s.KnownPeers, s.IsLearner, s.ServerID)
	}
	if why, err := Health(ctx, http.DefaultClient, base); err != nil || why != "" {
		t.Fatalf("a healthy member's /health: %q, %v", why, err)
	}

	added, err := cli.MemberAddAsLearner(ctx, []string{"https://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if s, err = Get(ctx, http.DefaultClient, base); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.KnownPeers, added.Member.ID) || !slices.Contains(s.KnownPeers, s.ServerID) || len(s.KnownPeers) != 2 {
		t.Errorf("after adding learner %x: known peers %x", added.Member.ID, s.KnownPeers)
	}
	if _, err := cli.MemberRemove(ctx, added.Member.ID); err != nil {
		t.Fatal(err)
	}
	if s, err = Get(ctx, http.DefaultClient, base); err != nil {
		t.Fatal(err)
	}
	if len(s.KnownPeers) != 1 || s.KnownPeers[0] != s.ServerID {
		t.Errorf("after removing it again: known peers %x, want only %x", s.KnownPeers, s.ServerID)
	}

	if _, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Alarm(ctx, &pb.AlarmRequest{
		Action: pb.AlarmRequest_ACTIVATE, MemberID: s.ServerID, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatal(err)
	}
	if why, err := Health(ctx, http.DefaultClient, base); err != nil || why != "ALARM NOSPACE" {
		t.Errorf("/health under NOSPACE: %q, %v", why, err)
	}
}

func TestHealthNotEtcd(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such thing", http.StatusNotFound)
	}))
	defer srv.Close()
	_, err := Health(context.Background(), srv.Client(), srv.URL)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "not etcd's answer") {
		t.Fatalf("got %v", err)
	}
}
