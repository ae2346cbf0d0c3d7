package staticpod

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeEtcd starts a process named etcd on the config's data dir that ignores
// SIGTERM, as an etcd still draining its clients does for up to 7 s. The
// data dir is a fresh temp path, so only this process matches it.
func fakeEtcd(t *testing.T, cfg *Config) *exec.Cmd {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	bin := filepath.Join(t.TempDir(), "etcd")
	raw, err := os.ReadFile(bash)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", `trap "" TERM; while :; do sleep 0.05; done`, "--data-dir="+cfg.DataDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	return cmd
}

func TestWaitEtcdGone(t *testing.T) {
	h, cfg := testHost(t, false)
	// The host's /proc is this machine's.
	if err := os.Symlink("/proc", h.Path("/proc")); err != nil {
		t.Fatal(err)
	}
	cfg.Init.Etcd.Local.DataDir = filepath.Join(t.TempDir(), "etcd-data")
	fakeEtcd(t, cfg)
	deadline := time.Now().Add(5 * time.Second)
	for len(h.EtcdPIDs(cfg)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the fake etcd never showed in /proc")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// SIGTERM only: an etcd that does not exit keeps running, and the
	// error says what is still there.
	_, err := h.WaitEtcdGone(context.Background(), cfg, 2500*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("WaitEtcdGone on an etcd ignoring SIGTERM = %v, want a still-running error", err)
	}
	if len(h.EtcdPIDs(cfg)) == 0 {
		t.Fatal("WaitEtcdGone killed the process; it must only send SIGTERM")
	}

	// Without a quorum: killed after the drain time, and the note says so.
	start := time.Now()
	note, err := h.WaitEtcdGoneWithoutQuorum(context.Background(), cfg, 10*time.Second)
	if err != nil {
		t.Fatalf("WaitEtcdGoneWithoutQuorum: %v", err)
	}
	if !strings.Contains(note, "SIGTERM") || !strings.Contains(note, "SIGKILL") {
		t.Errorf("note %q does not say SIGTERM then SIGKILL", note)
	}
	if d := time.Since(start); d < EtcdKillAfter+EtcdDrainKillAfter {
		t.Errorf("gone after %s, before the SIGTERM wait and the drain time (%s)", d, EtcdKillAfter+EtcdDrainKillAfter)
	}
	if pids := h.EtcdPIDs(cfg); len(pids) != 0 {
		t.Errorf("etcd pids %v still there", pids)
	}
}

// A manifest that still runs etcd on the data dir means kubelet is to stop
// it: nothing is signalled.
func TestWaitEtcdGoneLeavesAManagedEtcd(t *testing.T) {
	h, cfg := testHost(t, false)
	if err := os.Symlink("/proc", h.Path("/proc")); err != nil {
		t.Fatal(err)
	}
	cfg.Init.Etcd.Local.DataDir = filepath.Join(t.TempDir(), "etcd-data")
	if err := os.MkdirAll(h.Path(h.ManifestDir()), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.Path(filepath.Join(h.ManifestDir(), "etcd-other.yaml")), []byte("    - --data-dir="+cfg.DataDir()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fakeEtcd(t, cfg)
	time.Sleep(200 * time.Millisecond)
	if _, err := h.WaitEtcdGoneWithoutQuorum(context.Background(), cfg, 3500*time.Millisecond); err == nil {
		t.Fatal("an etcd another manifest runs was stopped")
	}
	if len(h.EtcdPIDs(cfg)) == 0 {
		t.Fatal("an etcd another manifest runs was signalled")
	}
}

// An etcd that kubelet starts a moment after its manifest left (it had read
// it before) is waited out, stopped in turn, and said; with none, the wait
// is EtcdStaysGoneFor.
func TestWaitEtcdStaysGone(t *testing.T) {
	h, cfg := testHost(t, false)
	if err := os.Symlink("/proc", h.Path("/proc")); err != nil {
		t.Fatal(err)
	}
	cfg.Init.Etcd.Local.DataDir = filepath.Join(t.TempDir(), "etcd-data")

	start := time.Now()
	note, err := h.WaitEtcdStaysGone(context.Background(), cfg, 20*time.Second)
	if err != nil || note != "" {
		t.Fatalf("with no etcd: note %q, err %v", note, err)
	}
	if d := time.Since(start); d < EtcdStaysGoneFor || d > EtcdStaysGoneFor+2*time.Second {
		t.Errorf("with no etcd: took %s, want about %s", d, EtcdStaysGoneFor)
	}

	// The late one: an "etcd" (a shell under that name) that exits on SIGTERM.
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	bin := filepath.Join(t.TempDir(), "etcd")
	raw, _ := os.ReadFile(bash)
	if err := os.WriteFile(bin, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	late := exec.Command(bin, "-c", `while :; do sleep 0.05; done`, "--data-dir="+cfg.DataDir())
	go func() {
		time.Sleep(time.Second)
		if err := late.Start(); err != nil {
			t.Error(err)
			return
		}
		late.Wait()
	}()
	t.Cleanup(func() {
		if late.Process != nil {
			late.Process.Kill()
		}
	})
	start = time.Now()
	note, err = h.WaitEtcdStaysGone(context.Background(), cfg, 20*time.Second)
	if err != nil {
		t.Fatalf("with a late etcd: %v", err)
	}
	if !strings.Contains(note, "started again after its manifest left") || !strings.Contains(note, "SIGTERM") {
		t.Errorf("note %q: want the late etcd and its SIGTERM said", note)
	}
	if len(h.EtcdPIDs(cfg)) != 0 {
		t.Error("the late etcd still runs")
	}
	if d := time.Since(start); d < time.Second+EtcdStaysGoneFor {
		t.Errorf("returned after %s, before the late etcd came and went plus %s", d, EtcdStaysGoneFor)
	}
}
