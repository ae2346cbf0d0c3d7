//go:build unix

package diskspace

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Free is the space an unprivileged write may use on the filesystem holding
// dir (or its nearest existing parent), and true; false where it cannot be
// read.
func Free(dir string) (uint64, bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(existing(dir), &st); err != nil {
		return 0, false, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true, nil
}

// existing is dir or its nearest existing parent: the directory a write
// will create still lands on that one's filesystem.
func existing(dir string) string {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || d == filepath.Dir(d) {
			return d
		}
	}
}
