package workstation

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdctl"
)

// probed is a certProbes whose handshakes have already ended as given.
func probed(results map[string]certProbe) *certProbes {
	c := &certProbes{running: map[string]*certProbe{}}
	for u, r := range results {
		p := r
		p.done = make(chan struct{})
		close(p.done)
		c.running[u] = &p
	}
	return c
}

// TestStatusAnswer: how one member's row comes out of its exec and its
// handshake, with etcdctl output captured on a bed (see ../etcdctl/testdata).
func TestStatusAnswer(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile("../etcdctl/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	h2 := etcdcluster.Member{ID: 4708037332500582587, Name: "h2", ClientURLs: []string{"https://10.99.42.12:2379"}}
	h3 := etcdcluster.Member{ID: 2945090400751739879, Name: "h3", ClientURLs: []string{"https://10.99.42.13:2379"}}
	dead := etcdctl.Output{Stdout: read("dead-members.endpoint-status.stdout"), Stderr: read("dead-members.endpoint-status.stderr"), ExitCode: 1}
	year := time.Date(2027, 12, 5, 6, 55, 15, 0, time.UTC)
	refused := errors.New("TLS handshake with https://10.99.42.13:2379: connection refused")
	certs := probed(map[string]certProbe{
		"https://10.99.42.12:2379": {notAfter: year},
		"https://10.99.42.13:2379": {err: refused},
	})

	// h2 answered: healthy, with the expiry from its handshake.
	st, err := (&statusAnswer{output: dead}).status(h2, certs)
	if err != nil || !st.Healthy || !st.ServerCertNotAfter.Equal(year) {
		t.Errorf("h2: %+v, %v", st, err)
	}
	// h3 did not answer etcdctl, and nothing listens: the tunnel's reason, as the host-pod path gives it.
	st, err = (&statusAnswer{output: dead}).status(h3, certs)
	if err != nil || st.Healthy || st.Err == nil || st.Err.Error() != "status of member h3 (28df101da03863e7): "+refused.Error() {
		t.Errorf("h3: %+v, %v", st, err)
	}
	// Not waited for: the handshake settled it.
	st, _ = (&statusAnswer{refused: true}).status(h3, certs)
	if st.Healthy || st.Err == nil || !strings.Contains(st.Err.Error(), "connection refused") {
		t.Errorf("h3 refused: %+v", st)
	}
	// No handshake (the default table does not want the expiry): etcdctl's reason.
	st, _ = (&statusAnswer{output: dead}).status(h3, probed(nil))
	if st.Err == nil || st.Err.Error() != "status of member h3 (28df101da03863e7) at https://10.99.42.13:2379: context deadline exceeded" || !st.ServerCertNotAfter.IsZero() {
		t.Errorf("h3 without a handshake: %+v", st)
	}
	st, _ = (&statusAnswer{timedOut: 7 * time.Second}).status(h3, probed(nil))
	if st.Err == nil || !strings.HasSuffix(st.Err.Error(), "at https://10.99.42.13:2379: no answer within 7s") {
		t.Errorf("h3 timed out: %+v", st)
	}
	// The exec itself failing is the pod's failure, not the member's.
	if _, err := (&statusAnswer{execErr: errors.New("pods \"etcd-h1\" is forbidden")}).status(h2, certs); err == nil {
		t.Error("an exec error made a row")
	}
	if _, err := (&statusAnswer{output: etcdctl.Output{Stdout: []byte("h2 is healthy")}}).status(h2, certs); err == nil || !strings.Contains(err.Error(), "reading etcdctl endpoint status's JSON") {
		t.Errorf("unreadable output: %v", err)
	}
	// No client URL: asked by nobody, never started.
	var none *statusAnswer
	st, err = none.status(etcdcluster.Member{ID: 0xd8b577ec7e624660, PeerURLs: []string{"https://10.99.42.11:12380"}, IsLearner: true}, certs)
	if err != nil || st.Err == nil || !strings.HasSuffix(st.Err.Error(), "has no client URL: it has not started") {
		t.Errorf("unstarted: %+v, %v", st, err)
	}
}

func TestParseStatusVia(t *testing.T) {
	for _, v := range []string{"auto", "exec", "host-pod"} {
		if got, err := ParseStatusVia(v); err != nil || string(got) != v {
			t.Errorf("%s: %v %v", v, got, err)
		}
	}
	if _, err := ParseStatusVia("tunnel"); err == nil || err.Error() != `unknown --via "tunnel" (auto, exec, host-pod)` {
		t.Errorf("tunnel: %v", err)
	}
}

func TestSameIn(t *testing.T) {
	forbidden := func(pod string) error {
		return errors.New(`etcdctl member list in kube-system/` + pod + `: exec etcdctl in kube-system/` + pod + ` (container etcd): pods "` + pod + `" is forbidden`)
	}
	pods := []string{"etcd-h1", "etcd-h2", "etcd-h3"}
	got := sameIn([]error{forbidden("etcd-h1"), forbidden("etcd-h2"), forbidden("etcd-h3")}, pods).Error()
	if want := forbidden("etcd-h1").Error() + " (the same in etcd-h2, etcd-h3)"; got != want {
		t.Errorf("same errors:\n got %s\nwant %s", got, want)
	}
	mixed := sameIn([]error{forbidden("etcd-h1"), errors.New("etcdctl member list in kube-system/etcd-h2: exit code 1: context deadline exceeded")}, pods[:2]).Error()
	if !strings.Contains(mixed, "etcd-h1\" is forbidden\n") || !strings.HasSuffix(mixed, "context deadline exceeded") {
		t.Errorf("different errors: %s", mixed)
	}
	if got := sameIn([]error{forbidden("etcd-h1")}, pods[:1]).Error(); got != forbidden("etcd-h1").Error() {
		t.Errorf("one pod: %s", got)
	}
}
