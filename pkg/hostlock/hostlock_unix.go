//go:build unix

package hostlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Take locks path (created 0600, in a directory created 0700, if missing) for
// what, or says who holds it. release unlocks it; the file stays.
func Take(path, what string) (release func(), err error) {
	// Only the lock's own directory is private: a parent created here
	// (/etc/kubernetes before kubeadm ran) gets the usual 0755.
	dir := filepath.Dir(path)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("creating the run lock's directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("creating the run lock's directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the run lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			h := strings.TrimSpace(string(holder))
			if h == "" {
				h = "a run that has not said what it does yet"
			}
			return nil, fmt.Errorf("another kubectl-etcd run on this host holds its run lock (%s): %s; nothing was changed. Wait for it to end: the lock is freed when that process exits, also when it is killed", path, h)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	// Who holds it, for the one refused. Written after locking, so only
	// the holder writes.
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "pid %d, %s, since %s\n", os.Getpid(), what, time.Now().UTC().Format(time.RFC3339))
	}
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
