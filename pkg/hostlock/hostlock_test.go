package hostlock

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTakeRefusesASecondRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "run.lock")
	release, err := Take(path, "join")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v %v", fi, err)
	}
	// A second holder (another open file, as another process has) is
	// refused with the first one's pid and verb.
	_, err = Take(path, "leave")
	if err == nil || !strings.Contains(err.Error(), "another kubectl-etcd run on this host holds its run lock") ||
		!strings.Contains(err.Error(), "join") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("second take: %v", err)
	}
	release()
	release2, err := Take(path, "leave")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	release2()
}

// A holder that is killed frees the lock.
func TestKilledHolderFreesIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.lock")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// -o: the lock is flock(1)'s own, not inherited by sleep.
	cmd := exec.Command("flock", "-o", "-x", path, "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("no flock(1) to hold the lock from another process: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		release, err := Take(path, "join")
		if err != nil {
			break // the other process holds it
		}
		release()
		if time.Now().After(deadline) {
			t.Fatal("flock(1) never took the lock")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	release, err := Take(path, "join")
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	release()
}

func TestTakeRefusesASymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "run.lock")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if _, err := Take(path, "join"); err == nil {
		t.Fatal("a symlinked lock file was followed")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the symlink's target was written: %q", b)
	}
}
