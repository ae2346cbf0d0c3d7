//go:build !linux

package testbed

import (
	"errors"
	"runtime"
)

// inNetns needs Linux network namespaces: test beds run on Linux only. This
// keeps `go build ./...` working on the plugin's other platforms.
func inNetns(string, func() error) error {
	return errors.New("test beds need Linux network namespaces, not " + runtime.GOOS)
}
