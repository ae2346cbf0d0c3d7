package staticpod

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fakeProc writes a /proc under root with one kubelet (pid 4242) that
// started at ticks clock ticks after boot, the host up for uptime seconds.
func fakeProc(t *testing.T, root string, ticks uint64, uptime float64) {
	t.Helper()
	dir := filepath.Join(root, "proc", "4242")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "cmdline"), []byte("/usr/bin/kubelet\x00--config=/var/lib/kubelet/config.yaml\x00"), 0o644))
	// A command name with a space and a parenthesis, as /proc allows.
	stat := fmt.Sprintf("4242 (kube let)) S 1 4242 4242 0 -1 4194560 100 0 0 0 10 5 0 0 20 0 12 0 %d 1000000 100", ticks)
	must(os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644))
	must(os.WriteFile(filepath.Join(root, "proc", "uptime"), []byte(fmt.Sprintf("%.2f 1000.00\n", uptime)), 0o644))
}

func TestKubeletStartedAfter(t *testing.T) {
	const manifest = "/etc/kubernetes/manifests/etcd.yaml"
	setup := func(t *testing.T, manifestAge, kubeletAge time.Duration) *Host {
		root := t.TempDir()
		// Up 1000 s; the kubelet started kubeletAge ago.
		fakeProc(t, root, uint64((1000*time.Second-kubeletAge)/(time.Second/userHZ)), 1000)
		p := filepath.Join(root, manifest)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(-manifestAge)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		return NewHost(root)
	}
	// A rerun: the earlier run wrote the manifest, then restarted kubelet
	// 300 ms later; both a while ago.
	if h := setup(t, 20*time.Second, 19700*time.Millisecond); !h.KubeletStartedAfter(manifest) {
		t.Error("kubelet started 300 ms after the manifest was written: want true")
	}
	// The normal case: the manifest was just written, kubelet is older.
	if h := setup(t, 100*time.Millisecond, 10*time.Minute); h.KubeletStartedAfter(manifest) {
		t.Error("kubelet started 10 min before the manifest was written: want false")
	}
	// No manifest, or no kubelet: false.
	h := setup(t, time.Second, 500*time.Millisecond)
	if h.KubeletStartedAfter("/etc/kubernetes/manifests/missing.yaml") {
		t.Error("missing file: want false")
	}
	if err := os.RemoveAll(filepath.Join(h.Root, "proc", "4242")); err != nil {
		t.Fatal(err)
	}
	if h.KubeletStartedAfter(manifest) {
		t.Error("no kubelet running: want false")
	}
}

// The real /proc: this test process started before now, and not long ago.
func TestProcessStartOfThisProcess(t *testing.T) {
	start, err := NewHost("/").processStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if age := time.Since(start); age < -100*time.Millisecond || age > 10*time.Minute {
		t.Errorf("this process started %s ago by /proc, want a few seconds", age)
	}
}
