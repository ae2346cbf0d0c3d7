//go:build linux

package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/internal/tmpfs"
)

// TestSaveRefusesWithoutSpace: a snapshot bound for a real filesystem
// without room for it (the member's database plus diskspace's margin) is
// refused before anything is written, with the numbers; with room it is
// saved.
func TestSaveRefusesWithoutSpace(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	small := tmpfs.Mount(t, 4<<20)
	path := filepath.Join(small, "snap.db")
	_, err := Save(ctx, f.source(), path, SaveOptions{})
	if err == nil || !strings.Contains(err.Error(), "not enough free space in "+small) ||
		!strings.Contains(err.Error(), "the snapshot of "+f.c.Members[0].ClientURL) || !strings.Contains(err.Error(), "is free") {
		t.Fatalf("a snapshot onto a 4 MiB filesystem: %v; want a refusal with the numbers", err)
	}
	if des, _ := os.ReadDir(small); len(des) != 0 {
		t.Errorf("the refused snapshot left %d entries, e.g. %s", len(des), des[0].Name())
	}

	roomy := tmpfs.Mount(t, 64<<20)
	if _, err := Save(ctx, f.source(), filepath.Join(roomy, "snap.db"), SaveOptions{}); err != nil {
		t.Errorf("a snapshot onto a 64 MiB filesystem: %v", err)
	}
}
