//go:build !unix

package backup

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked")

// tryLock: backups run on Linux control-plane hosts only; a workstation
// build (the plugin on macOS or Windows) never takes this lock.
func tryLock(*os.File) error { return errors.New("backup runs only on Linux hosts") }
