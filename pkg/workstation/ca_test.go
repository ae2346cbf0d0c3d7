package workstation

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// failingTransport answers every call the way a host whose kubelet never
// picks up the host pod does: nothing on stdout, a line on stderr, an error.
// It notes each call as "NODE ARGV..." (calls may come in parallel).
type failingTransport struct {
	mu    sync.Mutex
	calls []string
}

func (f *failingTransport) Exec(_ context.Context, node string, c hostapi.Call, _ io.Reader, _, stderr io.Writer) error {
	f.mu.Lock()
	f.calls = append(f.calls, node+" "+strings.Join(c.Argv, " "))
	f.mu.Unlock()
	fmt.Fprintln(stderr, "pod kube-system/kubectl-etcd-h2-x was not picked up")
	return fmt.Errorf("on %s: %w", node, hostapi.ErrUnreachable)
}

// TestEnsureCAFailsWithoutHanging: when the target's host pod fails before
// saying anything, ensureCA returns that failure (it once waited for the
// failed call's result twice and hung for good) and asks no member host for
// the CA.
func TestEnsureCAFailsWithoutHanging(t *testing.T) {
	tr := &failingTransport{}
	var out bytes.Buffer
	s := &Session{Out: &out, Hosts: &hostapi.Client{Transport: tr, Out: &out}}
	errc := make(chan error, 1)
	go func() { errc <- s.ensureCA(context.Background(), "h2", []string{"h1"}) }()
	var err error
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("ensureCA did not return after the target's host pod failed")
	}
	if err == nil {
		t.Fatal("ensureCA succeeded with a target that never answered")
	}
	for _, want := range []string{"asking h2 for its etcd CA", "not picked up"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if len(tr.calls) != 1 || tr.calls[0] != "h2 ca-receive" {
		t.Errorf("calls %q, want only the target's ca-receive", tr.calls)
	}
	if strings.Contains(out.String(), "sending it") {
		t.Errorf("ensureCA said it sends the CA:\n%s", out.String())
	}
}
