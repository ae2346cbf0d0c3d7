//go:build unix

package diskspace

import "golang.org/x/sys/unix"

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
