package staticpod

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// A recovery parks the host's kube-apiserver while it restarts kubelet.
//
// Why: a kubelet that starts while its apiserver accepts connections but
// cannot answer them (etcd has no quorum, or is stopped: the apiserver's
// etcd client waits for a connection until the request's 60 s deadline)
// mounts no volume for a new pod for 60–120 s. At start it reconstructs the
// volumes of the pods already on the host, and while any of them (a
// projected service-account token, as kube-proxy's or any DaemonSet's pod
// has) is not confirmed from its Node object, every pass of its volume
// reconciler first GETs the Node, which hangs for the whole deadline. A new
// static pod needs two passes. Measured on the test bed: the quarantined
// etcd started 2 min after the restart when a workload pod ran on the host,
// in seconds when none did. An apiserver that is not running refuses the
// connection at once, and the reconciler goes on. It serves nothing anyway
// until the recovered member does; the recovery puts it back then.

// APIServerKillAfter is how long ParkAPIServer waits after SIGTERM before it
// kills a kube-apiserver that is still shutting down: it cannot serve (its
// etcd has no quorum), so its graceful shutdown only waits for requests
// that will fail.
const APIServerKillAfter = 2 * time.Second

func (h *Host) parkedAPIServerManifest() string {
	return filepath.Join(h.StateDir(), "kube-apiserver.yaml.parked")
}

// apiServerManifestToRead is the kube-apiserver manifest to read the host's
// settings from: the parked one while a recovery holds it (a rerun of the
// recovery reads its configuration then).
func (h *Host) apiServerManifestToRead() string {
	if !h.exists(h.APIServerManifest()) && h.APIServerParked() {
		return h.parkedAPIServerManifest()
	}
	return h.APIServerManifest()
}

// APIServerParked reports whether ParkAPIServer holds the manifest.
func (h *Host) APIServerParked() bool { return h.exists(h.parkedAPIServerManifest()) }

// ParkAPIServer moves kube-apiserver.yaml out of the manifests dir (into the
// state dir, never deleted) and stops the kube-apiserver process itself: a
// kubelet that has not reached its apiserver since it started does not stop
// a removed static pod. It is safe to run again; the note says what it did.
func (h *Host) ParkAPIServer(ctx context.Context, timeout time.Duration) (string, error) {
	manifest, parked := h.APIServerManifest(), h.parkedAPIServerManifest()
	note := "parked already"
	if h.exists(manifest) {
		if h.exists(parked) {
			// Written since an earlier park (kubeadm, by hand): the
			// newer one is the one to keep; the old stays beside it.
			if _, err := h.moveAside(parked, "superseded", ""); err != nil {
				return "", err
			}
		}
		if err := os.MkdirAll(h.Path(h.StateDir()), 0o700); err != nil {
			return "", fmt.Errorf("creating %s: %w", h.StateDir(), err)
		}
		if err := os.Rename(h.Path(manifest), h.Path(parked)); err != nil {
			return "", fmt.Errorf("moving %s out of the manifests dir: %w", manifest, err)
		}
		note = fmt.Sprintf("moved %s to %s", manifest, parked)
	} else if !h.exists(parked) {
		return "no kube-apiserver manifest on this host", nil
	}
	if len(h.APIServerPIDs()) == 0 {
		return note, nil
	}
	start := time.Now()
	var termed time.Time
	err := pollEvery(ctx, timeout, 100*time.Millisecond, func() (bool, error) {
		pids := h.APIServerPIDs()
		if len(pids) == 0 {
			return true, nil
		}
		sig := syscall.Signal(0)
		switch {
		case termed.IsZero():
			sig, termed = syscall.SIGTERM, time.Now()
		case time.Since(termed) > APIServerKillAfter:
			sig = syscall.SIGKILL
		}
		if sig != 0 {
			signalPIDs(pids, sig)
		}
		return false, nil
	}, func() string {
		return fmt.Sprintf("kube-apiserver (pids %v) still runs %s after its manifest was parked", h.APIServerPIDs(), timeout)
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s; kube-apiserver stopped in %s", note, time.Since(start).Round(100*time.Millisecond)), nil
}

// UnparkAPIServer puts a parked kube-apiserver.yaml back, and reports
// whether it did. A manifest written there since wins; the parked one is
// then kept aside.
func (h *Host) UnparkAPIServer() (bool, error) {
	manifest, parked := h.APIServerManifest(), h.parkedAPIServerManifest()
	if !h.exists(parked) {
		return false, nil
	}
	if h.exists(manifest) {
		_, err := h.moveAside(parked, "superseded", "")
		return false, err
	}
	if err := os.Rename(h.Path(parked), h.Path(manifest)); err != nil {
		return false, fmt.Errorf("putting %s back: %w", manifest, err)
	}
	return true, nil
}
