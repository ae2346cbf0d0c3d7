package etcddata

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var stamp = time.Date(2026, 7, 8, 9, 10, 11, 0, time.FixedZone("CEST", 2*3600))

func TestIsEmpty(t *testing.T) {
	tmp := t.TempDir()
	for _, tc := range []struct {
		path string
		want bool
	}{
		{filepath.Join(tmp, "missing"), true},
		{tmp, true},
	} {
		if got, err := IsEmpty(tc.path); err != nil || got != tc.want {
			t.Errorf("IsEmpty(%s) = %v, %v; want %v", tc.path, got, err, tc.want)
		}
	}
	if err := os.Mkdir(filepath.Join(tmp, "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	if got, err := IsEmpty(tmp); err != nil || got {
		t.Errorf("IsEmpty(dir with a subdir) = %v, %v; want false", got, err)
	}
	if _, err := IsEmpty(filepath.Join(tmp, "member", "x", "y")); err != nil {
		t.Errorf("IsEmpty of a missing nested path: %v", err)
	}
	file := filepath.Join(tmp, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := IsEmpty(file); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("IsEmpty(regular file) = %v, want an error naming it", err)
	}
}

func TestMoveAside(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "etcd")
	fill := func(content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, "member"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "member", "data"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	base := dir + ".failed-join-20260708T071011Z" // the stamp in UTC

	// An empty directory squats the first name: rename(2) would replace it,
	// MoveAside must not.
	if err := os.Mkdir(base, 0o700); err != nil {
		t.Fatal(err)
	}
	fill("first")
	got, err := MoveAside(dir, "failed-join", stamp)
	if err != nil || got != base+"-1" {
		t.Fatalf("MoveAside = %q, %v; want %q", got, err, base+"-1")
	}
	fill("second")
	got, err = MoveAside(dir, "failed-join", stamp)
	if err != nil || got != base+"-2" {
		t.Fatalf("second MoveAside = %q, %v; want %q", got, err, base+"-2")
	}
	for path, want := range map[string]string{base + "-1": "first", base + "-2": "second"} {
		data, err := os.ReadFile(filepath.Join(path, "member", "data"))
		if err != nil || string(data) != want {
			t.Errorf("%s holds %q, %v; want %q", path, data, err, want)
		}
	}
	if entries, _ := os.ReadDir(base); len(entries) != 0 {
		t.Errorf("the squatting empty dir %s was written to: %v", base, entries)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after moving it aside (stat: %v)", dir, err)
	}

	if got, err := MoveAside(dir, "failed-join", stamp); got != "" || err != nil {
		t.Errorf("MoveAside of a missing dir = %q, %v; want \"\", nil", got, err)
	}
	fill("third")
	for _, reason := range []string{"", "a/b", "a b", "tab\there", "../up"} {
		if _, err := MoveAside(dir, reason, stamp); err == nil || !strings.Contains(err.Error(), "reason") {
			t.Errorf("MoveAside with reason %q = %v, want a refusal", reason, err)
		}
	}
	if _, err := MoveAside("/", "x", stamp); err == nil {
		t.Error("MoveAside(/) succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "member", "data")); err != nil {
		t.Errorf("a refused MoveAside touched %s: %v", dir, err)
	}
}

// TestMoveAsideMountPoint: a data dir on its own filesystem cannot be
// renamed; its data is kept inside it, and the dir then counts as empty.
func TestMoveAsideMountPoint(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	dir := filepath.Join(t.TempDir(), "etcd")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	os.MkdirAll(filepath.Join(dir, "member", "snap"), 0o700)
	os.WriteFile(filepath.Join(dir, "member", "snap", "db"), []byte("data"), 0o600)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	moved, err := MoveAside(dir, "left", now)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, ".kubectl-etcd-left-20261126T120000Z"); moved != want {
		t.Errorf("moved to %s, want %s", moved, want)
	}
	if b, err := os.ReadFile(filepath.Join(moved, "member", "snap", "db")); err != nil || string(b) != "data" {
		t.Errorf("data not kept: %v %q", err, b)
	}
	if empty, err := IsEmpty(dir); err != nil || !empty {
		t.Errorf("after moving aside the dir must count as empty: %v %v", empty, err)
	}
	if st, err := Read(dir); err != nil || st.HasData {
		t.Errorf("Read after moving aside: %+v %v", st, err)
	}
	// A second move keeps the first aside where it is.
	os.MkdirAll(filepath.Join(dir, "member"), 0o700)
	moved2, err := MoveAside(dir, "left", now)
	if err != nil || moved2 == moved {
		t.Fatalf("second move: %s %v", moved2, err)
	}
	if _, err := os.Stat(filepath.Join(moved, "member", "snap", "db")); err != nil {
		t.Errorf("first aside disturbed: %v", err)
	}
}
