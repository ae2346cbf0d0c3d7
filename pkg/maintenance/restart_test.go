package maintenance

import (
	"errors"
	"strings"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

func down(id uint64, name, why string) etcdcluster.Status {
	return etcdcluster.Status{Member: member(id, name), Err: errors.New(why)}
}

func TestCheckRestart(t *testing.T) {
	three := []etcdcluster.Status{healthy(1, "h1", true), healthy(2, "h2", false), healthy(3, "h3", false)}
	h3Expired := []etcdcluster.Status{healthy(1, "h1", true), healthy(2, "h2", false), down(3, "h3", "tls: certificate has expired")}
	five := []etcdcluster.Status{healthy(1, "h1", true), healthy(2, "h2", false), healthy(3, "h3", false), down(4, "h4", "connection refused"), healthy(5, "h5", false)}
	fiveTwoDown := []etcdcluster.Status{healthy(1, "h1", true), healthy(2, "h2", false), healthy(3, "h3", false), down(4, "h4", "connection refused"), down(5, "h5", "i/o timeout")}
	withLearner := []etcdcluster.Status{healthy(1, "h1", true), healthy(2, "h2", false)}
	withLearner[1].Member.IsLearner = true
	single := []etcdcluster.Status{healthy(1, "h1", true)}
	for _, tc := range []struct {
		name     string
		statuses []etcdcluster.Status
		self     uint64
		wantErr  string
	}{
		{"three healthy, a follower", three, 2, ""},
		{"three healthy, the leader", three, 1, ""},
		{"a host without a member", h3Expired, 0, ""},
		{"the expired member itself: down already, nothing to lose", h3Expired, 3, ""},
		{"a healthy member while another is down: quorum lost", h3Expired, 2, "refusing to restart member h2 on h2: the other healthy voters (1 of 3) could not hold the quorum of 2"},
		{"the hint names the host-local renew", h3Expired, 1, "`kubectl-etcd certs renew --local` on it as root"},
		{"the refusal names the member that is down", h3Expired, 1, "member h3 on h3: tls: certificate has expired"},
		{"five, one down: three others hold 3 of 5", five, 2, ""},
		{"five, two down: two others cannot hold 3", fiveTwoDown, 2, "the other healthy voters (2 of 5) could not hold the quorum of 3"},
		{"a learner restarts freely", withLearner, 2, ""},
		{"a single member: restarting it is the only way", single, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckRestart(tc.statuses, tc.self, byName, "kubectl-etcd certs renew --local")
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected refusal: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestRestartOrder(t *testing.T) {
	statuses := []etcdcluster.Status{healthy(1, "h1", false), healthy(2, "h2", true), healthy(3, "h3", false)}
	for _, tc := range []struct {
		hosts []string
		want  string
	}{
		{[]string{"h1", "h2", "h3"}, "h1,h3,h2"},
		{[]string{"h3", "h2", "h1", "h4"}, "h1,h3,h4,h2"},
		{[]string{"h2"}, "h2"},
		{[]string{"h3", "h1"}, "h1,h3"},
	} {
		if got := strings.Join(RestartOrder(tc.hosts, statuses, byName), ","); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.hosts, got, tc.want)
		}
	}
}
