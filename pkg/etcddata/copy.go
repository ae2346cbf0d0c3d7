package etcddata

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/diskspace"
)

// CopyAside copies the data dir of a stopped member to
// <dir>.<reason>-<UTC time> next to it, or, when dir is a mount point (its
// own disk, where the space for a copy is), to dir/.kubectl-etcd-<reason>-<time>
// inside it (etcd and Read ignore such entries). The copy is made under a
// ".partial" name and renamed when complete and synced, so a crash never
// leaves something that looks like a full copy; the ".partial" copies for the
// same reason that an interrupted earlier call left are removed first (they
// are incomplete copies of ours, and dir, their source, is still here). It
// returns the copy's path.
func CopyAside(dir, reason string, now time.Time) (string, error) {
	if err := checkReason(reason); err != nil {
		return "", err
	}
	dir = filepath.Clean(dir)
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("copying data dir %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("copying data dir %s: not a directory", dir)
	}
	stamp := now.UTC().Format(stampLayout)
	base := fmt.Sprintf("%s.%s-%s", dir, reason, stamp)
	if isMountPoint(dir) {
		base = filepath.Join(dir, fmt.Sprintf("%s%s-%s", AsidePrefix, reason, stamp))
	}
	// An interrupted earlier copy: <prefix><stamp>[-n].partial.
	prefix := strings.TrimSuffix(base, stamp)
	left, err := filepath.Glob(globQuote(prefix) + "[0-9]*.partial")
	if err != nil {
		return "", fmt.Errorf("copying data dir %s: looking for interrupted copies: %w", dir, err)
	}
	for _, p := range left {
		if err := os.RemoveAll(p); err != nil {
			return "", fmt.Errorf("copying data dir %s: removing the incomplete copy %s of an interrupted run: %w", dir, p, err)
		}
	}
	target := base
	for i := 1; exists(target) || exists(target+".partial"); i++ {
		if i >= maxSuffix {
			return "", fmt.Errorf("copying %s aside: %s and %d numbered variants are all taken", dir, base, maxSuffix-1)
		}
		target = fmt.Sprintf("%s-%d", base, i)
	}
	partial := target + ".partial"
	size, err := treeSize(dir)
	if err != nil {
		return "", fmt.Errorf("copying data dir %s: measuring it: %w", dir, err)
	}
	if err := diskspace.Check(filepath.Dir(partial), size, "a copy of data dir "+dir); err != nil {
		return "", err
	}
	if err := copyTree(dir, partial); err != nil {
		return "", fmt.Errorf("copying data dir %s to %s: %w (the incomplete copy is left at %s)", dir, target, err, partial)
	}
	if err := renameNoReplace(partial, target); err != nil {
		return "", fmt.Errorf("copying data dir %s: renaming the finished copy: %w", dir, err)
	}
	return target, nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// walkData calls fn for src and everything under it, relative path and
// info, but earlier asides at its top (what a copy of the data dir leaves
// out).
func walkData(src string, fn func(p, rel string, d fs.DirEntry, info fs.FileInfo) error) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel != "." && strings.HasPrefix(strings.SplitN(rel, string(filepath.Separator), 2)[0], AsidePrefix) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return fn(p, rel, d, info)
	})
}

// copyTree copies regular files and directories (what an etcd data dir
// holds), keeping modes, skipping earlier asides inside dir, and syncing
// every file.
func copyTree(src, dst string) error {
	return walkData(src, func(p, rel string, d fs.DirEntry, info fs.FileInfo) error {
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, info.Mode().Perm()|0o700)
		case info.Mode().IsRegular():
			return copyFile(p, to, info.Mode().Perm())
		default:
			return fmt.Errorf("%s is neither a file nor a directory", p)
		}
	})
}

// treeSize is the bytes copyTree would copy from src.
func treeSize(src string) (int64, error) {
	var total int64
	err := walkData(src, func(_, _ string, _ fs.DirEntry, info fs.FileInfo) error {
		if info.Mode().IsRegular() {
			total += info.Size()
		}
		return nil
	})
	return total, err
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return errors.Join(out.Close())
}

// ReadInUse reads the state of a data dir whose etcd is running but cannot
// be asked (no quorum since it started: etcd serves clients only after it has
// rejoined): the database is locked by etcd, so a copy of it is read, with
// the WAL in place (reading the WAL takes no lock). The copy is taken from a
// member that commits nothing without a quorum; it is removed after reading
// (it is a temporary file of ours, not etcd data).
func ReadInUse(dataDir string) (*State, *Membership, error) {
	tmp, err := os.MkdirTemp("", "kubectl-etcd-survey-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	snapDir := filepath.Join(tmp, "member", "snap")
	if err := os.MkdirAll(snapDir, 0o700); err != nil {
		return nil, nil, err
	}
	if err := copyFile(filepath.Join(dataDir, "member", "snap", "db"), filepath.Join(snapDir, "db"), 0o600); err != nil {
		return nil, nil, fmt.Errorf("copying the database of %s to read it: %w", dataDir, err)
	}
	if err := os.Symlink(filepath.Join(dataDir, "member", "wal"), filepath.Join(tmp, "member", "wal")); err != nil {
		return nil, nil, err
	}
	st, err := Read(tmp)
	if err != nil {
		return nil, nil, fmt.Errorf("data dir %s (in use, read from a copy): %s", dataDir, strings.ReplaceAll(err.Error(), tmp, dataDir))
	}
	m, err := ReadMembership(tmp)
	if err != nil {
		return nil, nil, fmt.Errorf("data dir %s (in use, read from a copy): %s", dataDir, strings.ReplaceAll(err.Error(), tmp, dataDir))
	}
	return st, m, nil
}

// globQuote escapes the glob metacharacters of a literal path prefix.
func globQuote(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteRune('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
