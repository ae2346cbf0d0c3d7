package workstation

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdctl"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/podexec"
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

// TestReadByExecWaitsOnlyForMembers: an etcd pod whose host is no longer a
// member (cut off by a recovery and powered off) is asked by an exec of its
// own, which hangs until etcdctl's timeout; the members' rows do not wait
// for it.
func TestReadByExecWaitsOnlyForMembers(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile("../etcdctl/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	members, statuses := read("healthy.member-list.stdout"), read("healthy.endpoint-status.stdout")
	stale := "https://10.99.42.14:2379"
	var mu sync.Mutex
	var asked []string
	staleAsked := make(chan struct{}) // closed by its exec, which runs on after readByExec returns
	run := func(ctx context.Context, argv []string) (*podexec.Result, error) {
		cmd := strings.Join(argv, " ")
		mu.Lock()
		asked = append(asked, cmd)
		mu.Unlock()
		switch {
		case strings.Contains(cmd, "--endpoints="+stale+" "):
			close(staleAsked)
			<-ctx.Done() // a powered-off host: nothing until the timeout
			return nil, ctx.Err()
		case strings.HasSuffix(cmd, " member list"):
			return &podexec.Result{Stdout: members}, nil
		case strings.HasSuffix(cmd, " endpoint status"):
			return &podexec.Result{Stdout: statuses}, nil
		}
		return &podexec.Result{ExitCode: 1, Stderr: []byte("unexpected " + cmd)}, nil
	}
	var pods []etcdPod
	for i, u := range []string{"https://10.99.42.11:2379", "https://10.99.42.12:2379", "https://10.99.42.13:2379", stale} {
		n := fmt.Sprintf("h%d", i+1)
		pods = append(pods, etcdPod{name: "etcd-" + n, node: n, ready: u != stale, access: etcdctl.AccessFromArgs(nil), clientURLs: []string{u}})
	}
	nodes := []Node{{Name: "h1", Ready: true}, {Name: "h2", Ready: true}, {Name: "h3", Ready: true}}
	start := time.Now()
	// The tunnel found no way to the powered-off host: no refusal settles it.
	certs := probed(map[string]certProbe{stale: {}})
	r, err := readByExec(context.Background(), run, pods[0], pods, nodes, certs)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s: waited for the non-member's exec", d)
	}
	if len(r.statuses) != 3 {
		t.Fatalf("%d statuses, want the 3 members'", len(r.statuses))
	}
	for _, st := range r.statuses {
		if !st.Healthy || st.Err != nil {
			t.Errorf("member %s: %+v", st.Member.Name, st)
		}
	}
	select {
	case <-staleAsked:
	case <-time.After(5 * time.Second):
		t.Error("the non-ready pod's URL was never asked on its own")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, c := range asked {
		if strings.Contains(c, stale) && strings.Contains(c, "10.99.42.11") {
			t.Errorf("the non-ready pod's URL was asked with the others: %s", c)
		}
	}
}

// TestLagging: a host whose kubelet missed two node-lease renewals is asked
// apart; one that renewed, or has no lease, is not.
func TestLagging(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	o := &observed{now: now, leases: map[string]nodeLease{
		"fresh":  {renewed: now.Add(-9 * time.Second), duration: 40 * time.Second},
		"edge":   {renewed: now.Add(-20 * time.Second), duration: 40 * time.Second},
		"silent": {renewed: now.Add(-21 * time.Second), duration: 40 * time.Second},
		"short":  {renewed: now.Add(-6 * time.Second), duration: 10 * time.Second},
	}}
	for node, want := range map[string]bool{"fresh": false, "edge": false, "silent": true, "short": true, "nolease": false} {
		if got := o.lagging(node); got != want {
			t.Errorf("lagging(%s) = %v, want %v", node, got, want)
		}
	}
}
