package recover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// The local kube-apiserver is kept off while etcd is recovered: it cannot
// serve without etcd anyway, it must not write to a member before it is
// verified, and while it hangs on a dead etcd, kubelet's calls to it (mirror
// pods) hold up every static-pod change by a minute or more.
func parkedAPIServer(h *staticpod.Host) string {
	return filepath.Join(h.StateDir(), "kube-apiserver.yaml.recovering")
}

const apiserverParkDetail = "move kube-apiserver.yaml out of the manifests dir until the recovered member is verified (it cannot serve without etcd; kubelet waits on a hung apiserver before changing static pods)"

// parkAPIServer moves the apiserver manifest aside and waits until it is gone.
func parkAPIServer(ctx context.Context, e *hostlocal.Env) (string, error) {
	h := e.Host
	from, to := h.Path(h.APIServerManifest()), h.Path(parkedAPIServer(h))
	if _, err := os.Stat(from); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(to); err == nil {
			return "already parked", nil
		}
		return "no kube-apiserver on this host", nil
	}
	if _, err := os.Stat(to); err == nil {
		return "", fmt.Errorf("both %s and the parked %s exist: look at them (nothing was changed)", h.APIServerManifest(), parkedAPIServer(h))
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return "", err
	}
	if err := os.Rename(from, to); err != nil {
		return "", fmt.Errorf("parking %s: %w", h.APIServerManifest(), err)
	}
	deadline := time.Now().Add(e.Timeouts.EtcdStop)
	for len(h.APIServerPIDs()) > 0 {
		if time.Now().After(deadline) {
			return "", fmt.Errorf("kube-apiserver still runs %s after its manifest was moved out: is kubelet running?", e.Timeouts.EtcdStop)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return "parked at " + parkedAPIServer(h), nil
}

// unparkAPIServer puts a parked apiserver manifest back.
func unparkAPIServer(h *staticpod.Host) (bool, error) {
	from, to := h.Path(parkedAPIServer(h)), h.Path(h.APIServerManifest())
	if _, err := os.Stat(from); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if _, err := os.Stat(to); err == nil {
		return false, fmt.Errorf("both %s and the parked %s exist: look at them", h.APIServerManifest(), parkedAPIServer(h))
	}
	if err := os.Rename(from, to); err != nil {
		return false, fmt.Errorf("putting %s back: %w", h.APIServerManifest(), err)
	}
	return true, nil
}
