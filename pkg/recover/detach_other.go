//go:build !linux

package recover

import (
	"errors"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// startDetached: the plugin's host pods run on Linux nodes only.
func startDetached(_ *staticpod.Host, _ []string, _, _ string) (int, error) {
	return 0, errors.New("a detached restore is started on Linux hosts only")
}

func probeDetach(_ *staticpod.Host) error {
	return errors.New("a detached restore is started on Linux hosts only")
}
