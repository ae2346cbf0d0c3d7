//go:build e2e

// Package e2e runs kubectl-etcd and its test bed against real kubeadm
// clusters made of real kubelets, containerd, etcd and apiservers on this
// machine (see pkg/testbed). Run as root: `make e2e`.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
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

// cmdTimeout bounds every command a test runs (a verb, a plugin call): the
// longest verb takes about 4 min on a bed; a hung one must fail its test with
// its output, not hang the run until go test's own timeout kills everything.
const cmdTimeout = 12 * time.Minute

// cmdContext is a context for one command, ended after cmdTimeout.
func cmdContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	t.Cleanup(cancel)
	return ctx
}

// workstation runs the plugin binary from "the workstation", bounded by
// cmdTimeout.
func workstation(t *testing.T, b *testbed.Bed, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(cmdContext(t), filepath.Join(b.BinDir(), "kubectl-etcd"), append([]string{"--kubeconfig", b.Kubeconfig()}, args...)...)
	cmd.WaitDelay = 10 * time.Second
	return cmd
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
	return upBedWith(t, testbed.Options{Name: name, Subnet: subnet, Roles: roles})
}

// upBedWith is upBed with the bed's other options (EtcdExtraArgs).
func upBedWith(t *testing.T, opts testbed.Options) *testbed.Bed {
	t.Helper()
	name, roles := opts.Name, opts.Roles
	lockBeds(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	opts.Log = logWriter{t}
	b, err := testbed.Up(ctx, opts)
	if err != nil {
		t.Fatalf("bringing up bed %s: %v", name, err)
	}
	t.Logf("bed %s with %d hosts up in %s", name, len(roles), time.Since(start).Round(100*time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("KETCD_KEEP_FAILED_BED") == "1" {
			// For diagnosis: the hosts' logs and files stay; the next
			// upBed of this name replaces the bed, and `make bed-down` removes it.
			t.Logf("KETCD_KEEP_FAILED_BED=1: bed %s left up for diagnosis (testbed --name %s exec h1 -- bash; testbed --name %s down)", name, name, name)
			return
		}
		if err := testbed.Down(context.Background(), name, "", logWriter{t}); err != nil {
			t.Errorf("tearing down bed %s: %v", name, err)
		}
	})
	return b
}

// bedLock serialises test beds across test processes and work trees: the
// machine has two cores, and two beds at once make both tests' timings
// meaningless (and slow enough to time out).
var bedLock struct {
	sync.Mutex
	f     *os.File
	count int
}

// BedLockPath is taken (flock) while this process has a bed up. Scripts that
// bring beds up outside the tests take it too, with -o
// (`flock -o /var/tmp/kubectl-etcd-bed.lock ...`): without it the bed's
// daemons inherit the lock and keep it after the script ends.
const bedLockPath = "/var/tmp/kubectl-etcd-bed.lock"

func lockBeds(t *testing.T) {
	t.Helper()
	bedLock.Lock()
	defer bedLock.Unlock()
	if bedLock.count == 0 {
		f, err := os.OpenFile(bedLockPath, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatalf("opening the bed lock: %v", err)
		}
		start := time.Now()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			t.Fatalf("taking the bed lock %s: %v", bedLockPath, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Logf("waited %s for another process's test bed (%s)", d.Round(time.Second), bedLockPath)
		}
		bedLock.f = f
		if os.Getenv("KETCD_HOLD_BED_LOCK") != "" {
			// Keep it for the whole run: a series of tests is not
			// interleaved with other processes' beds.
			bedLock.count++
		}
	}
	bedLock.count++
	// Registered before the bed's teardown, so it runs after it.
	t.Cleanup(func() {
		bedLock.Lock()
		defer bedLock.Unlock()
		bedLock.count--
		if bedLock.count == 0 {
			bedLock.f.Close() // releases the flock
			bedLock.f = nil
		}
	})
}
