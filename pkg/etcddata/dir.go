package etcddata

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// IsEmpty reports whether dir is missing or an empty directory: the two
// states in which etcd may create a member's data from scratch.
func IsEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking data dir %s: %w", dir, err)
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(64)
		for _, n := range names {
			if !strings.HasPrefix(n, AsidePrefix) {
				return false, nil
			}
		}
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("checking data dir %s: %w", dir, err)
		}
	}
}

// AsidePrefix starts the name of data moved aside inside a data dir that is
// a mount point (see MoveAside). etcd ignores such entries (with a warning),
// and so do IsEmpty and Read.
const AsidePrefix = ".kubectl-etcd-"

// stampLayout is the UTC time in moved-aside names: sortable, and free of
// characters that need quoting in a shell.
const stampLayout = "20060102T150405Z"

// maxSuffix bounds the search for a free name; more moves of one dir for one
// reason within a second means something is looping.
const maxSuffix = 100

// MoveAside renames dir to <dir>.<reason>-<UTC time>, adding -1, -2, ... if
// that name is taken, and returns the new path. It never deletes and never
// replaces anything: the old data stays next to where it was, on the same
// filesystem, for a human to inspect or delete. A dir that is a mount point
// (cannot be renamed) keeps its data in dir/.kubectl-etcd-<reason>-<time>
// instead. A missing dir returns "", nil.
// reason becomes part of a file name: letters, digits, '.', '_' and '-' only.
func MoveAside(dir, reason string, now time.Time) (string, error) {
	if err := checkReason(reason); err != nil {
		return "", err
	}
	dir = filepath.Clean(dir)
	if b := filepath.Base(dir); b == "/" || b == "." || b == ".." {
		return "", fmt.Errorf("refusing to move %q aside: it does not name a directory entry", dir)
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("moving %s aside: %w", dir, err)
	}
	base := fmt.Sprintf("%s.%s-%s", dir, reason, now.UTC().Format(stampLayout))
	for i := range maxSuffix {
		target := base
		if i > 0 {
			target = fmt.Sprintf("%s-%d", base, i)
		}
		err := renameNoReplace(dir, target)
		if err == nil {
			return target, nil
		}
		if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EXDEV) {
			// dir is a mount point (etcd on its own disk, as often advised):
			// it cannot be renamed, and its parent is another filesystem.
			// Keep the data on its own disk, in a hidden dir inside it.
			return moveContentsAside(dir, reason, now)
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("moving %s aside to %s: %w", dir, target, err)
		}
	}
	return "", fmt.Errorf("moving %s aside: %s and %d numbered variants are all taken", dir, base, maxSuffix-1)
}

// moveContentsAside moves every entry of dir (but earlier asides) into
// dir/.kubectl-etcd-<reason>-<time>, which leaves dir empty for etcd while
// keeping the data on the same filesystem.
func moveContentsAside(dir, reason string, now time.Time) (string, error) {
	target := filepath.Join(dir, fmt.Sprintf("%s%s-%s", AsidePrefix, reason, now.UTC().Format(stampLayout)))
	for i := 1; ; i++ {
		if err := os.Mkdir(target, 0o700); err == nil {
			break
		} else if !errors.Is(err, fs.ErrExist) || i >= maxSuffix {
			return "", fmt.Errorf("moving the contents of %s aside: %w", dir, err)
		}
		target = filepath.Join(dir, fmt.Sprintf("%s%s-%s-%d", AsidePrefix, reason, now.UTC().Format(stampLayout), i))
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("moving the contents of %s aside: %w", dir, err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), AsidePrefix) {
			continue
		}
		if err := renameNoReplace(filepath.Join(dir, e.Name()), filepath.Join(target, e.Name())); err != nil {
			return "", fmt.Errorf("moving %s aside into %s: %w", filepath.Join(dir, e.Name()), target, err)
		}
	}
	return target, nil
}

func checkReason(reason string) error {
	ok := reason != ""
	for _, r := range reason {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("reason %q for moving a data dir aside must be a non-empty word of letters, digits, '.', '_' or '-': it becomes part of a file name", reason)
	}
	return nil
}

// renameNoReplaceFallback is renameNoReplace for systems or filesystems
// without an atomic no-replace rename: check, then rename. Only a concurrent
// writer of the very same name could slip in between.
func renameNoReplaceFallback(from, to string) error {
	if _, err := os.Lstat(to); err == nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: fs.ErrExist}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Rename(from, to)
}
