package workstation

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// sshLike is failingTransport marked as needing no kubelet, as SSH is.
type sshLike struct{ *failingTransport }

func (sshLike) ReachesWithoutKubelet() {}

// TestCheckCertsNotReadyNode: host pods cannot run on a NotReady node, so
// certs check tells the operator to run the host-local command there
// without trying; over SSH the node is tried, since Ready lags minutes
// behind a host that just came back (CI once failed on exactly that).
func TestCheckCertsNotReadyNode(t *testing.T) {
	nodes := []Node{{Name: "h1"}, {Name: "h2", Ready: true}}
	for _, tc := range []struct {
		name      string
		free      bool
		wantCalls []string
		wantH1    string
	}{
		{"host pods", false, []string{"h2"}, "h1 is NotReady and cannot run a host pod: run `kubectl-etcd certs check --local` on it as root"},
		{"ssh", true, []string{"h1", "h2"}, "reading the certificates of h1: on h1: on h1: " + hostapi.ErrUnreachable.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &failingTransport{}
			var tr hostapi.Transport = rec
			if tc.free {
				tr = sshLike{rec}
			}
			s := &Session{Out: io.Discard, Hosts: &hostapi.Client{Transport: tr}}
			if got := s.Hosts.NeedsKubelet(); got == tc.free {
				t.Errorf("NeedsKubelet() = %v for %s", got, tc.name)
			}
			out := s.checkCertsOn(context.Background(), nodes)
			var called []string
			for _, c := range rec.calls {
				called = append(called, strings.Fields(c)[0])
			}
			slices.Sort(called)
			if !slices.Equal(called, tc.wantCalls) {
				t.Errorf("called %q, want %q", rec.calls, tc.wantCalls)
			}
			if len(out.Hosts) != 2 || out.Hosts[0].Node != "h1" || !strings.HasPrefix(out.Hosts[0].Error, tc.wantH1) {
				t.Errorf("h1's report %+v, want an error starting %q", out.Hosts[0], tc.wantH1)
			}
			if !strings.Contains(out.Hosts[1].Error, "reading the certificates of h2") {
				t.Errorf("h2's report %+v, want the call's error", out.Hosts[1])
			}
		})
	}
}
