package etcdmetrics

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/internal/etcdtest"
)

// A real member's metrics page: its ID, leadership, size and revision are
// what its own status API says.
func TestGetRealMember(t *testing.T) {
	port := etcdtest.ReservePorts(t, 1)[0]
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	c := etcdtest.StartCluster(t, 1, "--listen-metrics-urls="+base)
	cli := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 20 {
		if _, err := cli.Put(ctx, fmt.Sprintf("/k/%d", i), strings.Repeat("v", 4096)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := cli.Status(ctx, c.Members[0].ClientURL)
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
