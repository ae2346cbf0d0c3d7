// Package staticpod is the host-level library of kubectl-etcd: everything it
// does to a control-plane host — the etcd certificates, the etcd static-pod
// manifest, the data dir, stopping and starting the member, re-pointing the
// local kube-apiserver, reading the local member's state — in one place.
//
// It works on a host root directory: "/" when the binary runs on the host
// itself (first bootstrap, or when the apiserver is down), "/host" when it
// runs in a privileged pod with the host's / mounted there. Paths written
// into manifests and certificates are always the host's own paths; only the
// files this process touches are prefixed with the root.
//
// Certificates and manifests come from kubeadm's own phase libraries, so what
// is written is what kubeadm would write, and `kubeadm upgrade` / `kubeadm
// join` keep working on the host afterwards.
package staticpod

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/atomicfile"
)

// Host is a control-plane host as seen through its root directory.
type Host struct {
	// Root is where the host's / is mounted for this process.
	Root string
	// KubernetesDir is kubeadm's /etc/kubernetes.
	KubernetesDir string
	// Now is the clock, for names of things moved aside (tests set it).
	Now func() time.Time
}

// NewHost returns the host mounted at root with kubeadm's default layout.
func NewHost(root string) *Host {
	if root == "" {
		root = "/"
	}
	return &Host{Root: root, KubernetesDir: "/etc/kubernetes", Now: time.Now}
}

// Path maps a path as the host sees it to the path this process uses.
func (h *Host) Path(hostPath string) string {
	return filepath.Join(h.Root, filepath.Clean("/"+hostPath))
}

// HostPathOf is the inverse of Path: the path, as the host sees it, of a
// path under Root (for messages and records that outlive this process,
// which may run in a pod with the host at /host).
func (h *Host) HostPathOf(p string) string {
	if h.Root == "/" || h.Root == "" || p == "" {
		return p
	}
	return "/" + strings.TrimLeft(strings.TrimPrefix(p, strings.TrimSuffix(h.Root, "/")), "/")
}

// ManifestDir is where kubelet reads static pods (host path).
func (h *Host) ManifestDir() string { return filepath.Join(h.KubernetesDir, "manifests") }

// EtcdManifest is the etcd static-pod manifest (host path).
func (h *Host) EtcdManifest() string { return filepath.Join(h.ManifestDir(), "etcd.yaml") }

// APIServerManifest is the kube-apiserver static-pod manifest (host path).
func (h *Host) APIServerManifest() string {
	return filepath.Join(h.ManifestDir(), "kube-apiserver.yaml")
}

// StateDir is where kubectl-etcd keeps what it moved out of kubeadm's
// directories (stopped manifests, replaced certificates), on the host.
func (h *Host) StateDir() string { return filepath.Join(h.KubernetesDir, "kubectl-etcd") }

func (h *Host) stamp() string { return h.Now().UTC().Format("20060102T150405Z") }

// exists reports whether a host path exists.
func (h *Host) exists(hostPath string) bool {
	_, err := os.Stat(h.Path(hostPath))
	return err == nil
}

// WriteFile writes a host file atomically (see atomicfile), creating its
// directory (0700) when missing: kubelet, which ignores dotfiles, never reads
// a half-written manifest, and a rerun after a crash finds the old file or
// the whole new one.
func (h *Host) WriteFile(hostPath string, data []byte, mode os.FileMode) error {
	p := h.Path(hostPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(hostPath), err)
	}
	if err := atomicfile.WriteFile(p, data, mode); err != nil {
		return fmt.Errorf("%s: %w", hostPath, err)
	}
	return nil
}

// moveAside renames a host file or directory to <path>.<reason>-<stamp>
// (or into dir when given), never deleting anything, and returns the new host path.
func (h *Host) moveAside(hostPath, reason, dir string) (string, error) {
	if strings.ContainsAny(reason, "/ ") || reason == "" {
		return "", fmt.Errorf("bad reason %q for moving %s aside", reason, hostPath)
	}
	if !h.exists(hostPath) {
		return "", nil
	}
	base := hostPath
	if dir != "" {
		base = filepath.Join(dir, filepath.Base(hostPath))
		if err := os.MkdirAll(h.Path(dir), 0o700); err != nil {
			return "", fmt.Errorf("creating %s: %w", dir, err)
		}
	}
	target := fmt.Sprintf("%s.%s-%s", base, reason, h.stamp())
	for i := 1; h.exists(target); i++ {
		target = fmt.Sprintf("%s.%s-%s-%d", base, reason, h.stamp(), i)
	}
	if err := os.Rename(h.Path(hostPath), h.Path(target)); err != nil {
		return "", fmt.Errorf("moving %s aside to %s: %w", hostPath, target, err)
	}
	return target, nil
}
