//go:build e2e

// Package e2e runs kubectl-etcd and its test bed against real kubeadm
// clusters made of real kubelets, containerd, etcd and apiservers on this
// machine (see pkg/testbed). Run as root: `make e2e`.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

func TestMain(m *testing.M) {
	if err := testbed.CheckRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	// Build everything once, before any test's clock starts.
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	_, err := testbed.Prepare(ctx, os.Stderr)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: preparing the test bed:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// logWriter sends the bed's progress lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// upBed brings up a bed and registers its teardown, which must leave nothing.
func upBed(t *testing.T, name, subnet string, roles ...testbed.Role) *testbed.Bed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	b, err := testbed.Up(ctx, testbed.Options{Name: name, Subnet: subnet, Roles: roles, Log: logWriter{t}})
	if err != nil {
		t.Fatalf("bringing up bed %s: %v", name, err)
	}
	t.Logf("bed %s with %d hosts up in %s", name, len(roles), time.Since(start).Round(100*time.Millisecond))
	t.Cleanup(func() {
		if err := testbed.Down(context.Background(), name, "", logWriter{t}); err != nil {
			t.Errorf("tearing down bed %s: %v", name, err)
		}
	})
	return b
}
