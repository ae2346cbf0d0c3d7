// Package diskspace checks, before a snapshot or a copy of etcd data is
// written, that the filesystem has room for it: a write that fills the disk
// half-way fails late, leaves a partial file to clean up, and on a
// control-plane host can take etcd's own disk (and so etcd) down with it.
package diskspace

import "fmt"

// Margin is kept free on top of what a write needs: the filesystem's own
// metadata and whatever else writes there meanwhile.
const Margin = 16 << 20

// Need is what writing size bytes asks of the filesystem: size, a twentieth
// more, and Margin.
func Need(size int64) uint64 {
	if size < 0 {
		size = 0
	}
	return uint64(size) + uint64(size)/20 + Margin
}

// Check refuses, with the numbers, when the filesystem holding dir has less
// room than Need(size) for what (e.g. "the snapshot"). Where free space
// cannot be read (a platform without statfs), it does not refuse.
func Check(dir string, size int64, what string) error {
	free, ok, err := Free(dir)
	if err != nil {
		return fmt.Errorf("reading the free space in %s: %w", dir, err)
	}
	if !ok {
		return nil
	}
	if need := Need(size); free < need {
		return fmt.Errorf("not enough free space in %s for %s: it takes about %s (%s with a margin), %s is free; free some space or choose another place (nothing was written)",
			dir, what, Bytes(uint64(max(size, 0))), Bytes(need), Bytes(free))
	}
	return nil
}

// Bytes formats a byte count for people.
func Bytes(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}
