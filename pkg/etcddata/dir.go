package etcddata

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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
	if _, err := f.Readdirnames(1); err != nil {
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		return false, fmt.Errorf("checking data dir %s: %w", dir, err)
	}
	return false, nil
}

// stampLayout is the UTC time in moved-aside names: sortable, and free of
// characters that need quoting in a shell.
const stampLayout = "20060102T150405Z"

// maxSuffix bounds the search for a free name; more moves of one dir for one
// reason within a second means something is looping.
const maxSuffix = 100

// MoveAside renames dir to <dir>.<reason>-<UTC time>, adding -1, -2, ... if
// that name is taken, and returns the new path. It never deletes and never
// replaces anything: the old data stays next to where it was, on the same
// filesystem, for a human to inspect or delete. A missing dir returns "", nil.
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
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("moving %s aside to %s: %w", dir, target, err)
		}
	}
	return "", fmt.Errorf("moving %s aside: %s and %d numbered variants are all taken", dir, base, maxSuffix-1)
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
