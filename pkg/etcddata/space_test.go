//go:build linux

package etcddata

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/internal/tmpfs"
)

// TestCopyAsideRefusesWithoutSpace: a data dir on its own small disk (a
// real tmpfs) is copied inside it, where a second copy of a database that
// fills half of it does not fit: refused with the numbers, nothing written,
// the data untouched.
func TestCopyAsideRefusesWithoutSpace(t *testing.T) {
	dir := tmpfs.Mount(t, 8<<20)
	db := filepath.Join(dir, "member", "snap", "db")
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		t.Fatal(err)
	}
	data := []byte(strings.Repeat("d", 4<<20))
	if err := os.WriteFile(db, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := CopyAside(dir, "before-recover", time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	if err == nil || !strings.Contains(err.Error(), "not enough free space in "+dir+" for a copy of data dir "+dir) ||
		!strings.Contains(err.Error(), "about 4.0 MiB") {
		t.Fatalf("CopyAside of 4 MiB on an 8 MiB disk: %v; want a refusal with the numbers", err)
	}
	des, _ := os.ReadDir(dir)
	if len(des) != 1 || des[0].Name() != "member" {
		t.Errorf("the refused copy left entries in %s: %v", dir, des)
	}
	if b, _ := os.ReadFile(db); len(b) != len(data) {
		t.Errorf("the data changed: %d bytes", len(b))
	}
}
