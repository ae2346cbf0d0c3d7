//go:build linux

package diskspace

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/internal/tmpfs"
)

// On a real 32 MiB filesystem: its free space is read (also through a
// directory not made yet), a write that fits passes, one that does not is
// refused with the numbers.
func TestCheckOnASmallFilesystem(t *testing.T) {
	dir := tmpfs.Mount(t, 32<<20)
	free, ok, err := Free(filepath.Join(dir, "not", "made", "yet"))
	if err != nil || !ok || free == 0 || free > 32<<20 {
		t.Fatalf("Free = %d, %v, %v; want about 32 MiB", free, ok, err)
	}
	if err := Check(dir, 4<<20, "the snapshot"); err != nil {
		t.Errorf("4 MiB on 32 MiB: %v", err)
	}
	err = Check(dir, 30<<20, "the snapshot")
	if err == nil {
		t.Fatal("30 MiB (plus a margin) on 32 MiB was not refused")
	}
	for _, want := range []string{"not enough free space in " + dir + " for the snapshot", "about 30.0 MiB", "32.0 MiB is free", "nothing was written"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v: lacks %q", err, want)
		}
	}
}
