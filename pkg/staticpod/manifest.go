package staticpod

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	etcdphase "k8s.io/kubernetes/cmd/kubeadm/app/phases/etcd"
	kubeadmutil "k8s.io/kubernetes/cmd/kubeadm/app/util"
	etcdutil "k8s.io/kubernetes/cmd/kubeadm/app/util/etcd"
	staticpodutil "k8s.io/kubernetes/cmd/kubeadm/app/util/staticpod"
)

// Member is one entry of a manifest's --initial-cluster.
type Member = etcdutil.Member

// RenderEtcdManifest returns the etcd static-pod manifest kubeadm would write
// for this config: a new single-member cluster when members is empty, else a
// member joining the existing cluster made of members (which must include this
// host), with --initial-cluster-state=existing. It is kubeadm's own
// GetEtcdPodSpec serialised by kubeadm's own marshaller, so the bytes are
// kubeadm's.
func RenderEtcdManifest(cfg *Config, members []Member) ([]byte, error) {
	pod, err := RenderEtcdPod(cfg, members)
	if err != nil {
		return nil, err
	}
	out, err := kubeadmutil.MarshalToYaml(pod, v1.SchemeGroupVersion)
	if err != nil {
		return nil, fmt.Errorf("serialising the etcd manifest: %w", err)
	}
	return out, nil
}

// RenderEtcdPod is RenderEtcdManifest's pod, before serialising.
func RenderEtcdPod(cfg *Config, members []Member) (*v1.Pod, error) {
	pod := etcdphase.GetEtcdPodSpec(&cfg.Init.ClusterConfiguration, &cfg.Init.LocalAPIEndpoint, cfg.NodeName(), members)
	if cfg.patchesPath != "" {
		// As kubeadm does in prepareAndWriteEtcdStaticPod.
		patched, err := staticpodutil.PatchStaticPod(&pod, cfg.patchesPath, io.Discard)
		if err != nil {
			return nil, fmt.Errorf("applying the kubeadm patches in %s to the etcd manifest: %w", cfg.Patches, err)
		}
		return patched, nil
	}
	return &pod, nil
}

// WriteEtcdManifest writes the manifest atomically (kubeadm's mode 0600).
func (h *Host) WriteEtcdManifest(manifest []byte) error {
	return h.WriteFile(h.EtcdManifest(), manifest, 0o600)
}

// ReadManifest parses a static-pod manifest on the host. A manifest edited
// into something unparseable is an error naming the file, never ignored.
func (h *Host) ReadManifest(hostPath string) (*v1.Pod, error) {
	pod, err := staticpodutil.ReadStaticPodFromDisk(h.Path(hostPath))
	if err != nil {
		if os.IsNotExist(err) || strings.Contains(err.Error(), "no such file") {
			return nil, err
		}
		return nil, fmt.Errorf("the static-pod manifest %s cannot be parsed (edited by hand?): %w", hostPath, err)
	}
	return pod, nil
}

// CurrentEtcdManifest is the member's manifest, or where a stop step of an
// interrupted run parked it; nil when there is neither.
func (h *Host) CurrentEtcdManifest() (*v1.Pod, error) {
	for _, m := range []string{h.EtcdManifest(), h.stoppedManifest()} {
		if h.exists(m) {
			return h.ReadManifest(m)
		}
	}
	return nil, nil
}

// EtcdManifestExists reports whether the etcd static pod is configured here.
func (h *Host) EtcdManifestExists() bool { return h.exists(h.EtcdManifest()) }

// stoppedManifest is where StopEtcd parks the manifest (outside the manifests
// dir: kubelet stops the pod when its file leaves that dir).
func (h *Host) stoppedManifest() string { return h.StateDir() + "/etcd.yaml.stopped" }

// StopEtcd moves the etcd manifest out of the manifests dir, the static-pod
// way of stopping a member; the data dir is untouched. Idempotent.
func (h *Host) StopEtcd() error {
	if !h.exists(h.EtcdManifest()) {
		return nil
	}
	if err := os.MkdirAll(h.Path(h.StateDir()), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", h.StateDir(), err)
	}
	if err := os.Rename(h.Path(h.EtcdManifest()), h.Path(h.stoppedManifest())); err != nil {
		return fmt.Errorf("moving %s out of the manifests dir: %w", h.EtcdManifest(), err)
	}
	return nil
}

// StoppedManifestExists reports whether StopEtcd parked a manifest.
func (h *Host) StoppedManifestExists() bool { return h.exists(h.stoppedManifest()) }

// RetireStoppedManifest moves a parked manifest aside for good (after the
// member was removed), so it can never be started again by accident.
func (h *Host) RetireStoppedManifest() (string, error) {
	return h.moveAside(h.stoppedManifest(), "removed", "")
}

// container finds a container by name.
func container(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// FlagValue returns the value of --name=value in a command line, "" when
// absent.
func FlagValue(cmd []string, name string) string {
	for _, a := range cmd {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// APIServerEtcdServers returns the local kube-apiserver's --etcd-servers.
func (h *Host) APIServerEtcdServers() ([]string, error) {
	pod, err := h.ReadManifest(h.APIServerManifest())
	if err != nil {
		return nil, err
	}
	c := container(pod, kubeadmconstants.KubeAPIServer)
	if c == nil {
		return nil, fmt.Errorf("%s has no kube-apiserver container", h.APIServerManifest())
	}
	v := FlagValue(c.Command, "etcd-servers")
	if v == "" {
		return nil, fmt.Errorf("%s has no --etcd-servers", h.APIServerManifest())
	}
	return strings.Split(v, ","), nil
}

// SetAPIServerEtcdServers points the local kube-apiserver at the given etcd
// client URLs, editing only that flag of kubeadm's manifest (kubelet then
// restarts the apiserver). Returns false when it already had them. In
// kubeadm's stacked layout a host's apiserver reads only its local member, so
// this must happen before the local member goes away, and be undone once it
// is back.
func (h *Host) SetAPIServerEtcdServers(servers []string) (bool, error) {
	raw, err := os.ReadFile(h.Path(h.APIServerManifest()))
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", h.APIServerManifest(), err)
	}
	if _, err := h.ReadManifest(h.APIServerManifest()); err != nil {
		return false, err
	}
	want := "--etcd-servers=" + strings.Join(servers, ",")
	// Edit the one line in place rather than re-serialising, so the rest of
	// the file stays byte-for-byte what kubeadm (or the user) wrote.
	lines := bytes.Split(raw, []byte("\n"))
	found, changed := false, false
	for i, l := range lines {
		t := bytes.TrimSpace(l)
		if bytes.HasPrefix(t, []byte("- --etcd-servers=")) {
			found = true
			indent := l[:bytes.Index(l, []byte("-"))]
			nl := append(append([]byte{}, indent...), []byte("- "+want)...)
			if !bytes.Equal(nl, l) {
				lines[i], changed = nl, true
			}
		}
	}
	if !found {
		return false, fmt.Errorf("%s has no --etcd-servers line to change", h.APIServerManifest())
	}
	if !changed {
		return false, nil
	}
	if err := h.WriteFile(h.APIServerManifest(), bytes.Join(lines, []byte("\n")), 0o600); err != nil {
		return false, err
	}
	return true, nil
}

// LocalEtcdServer is the client URL kubeadm gives a stacked apiserver.
func LocalEtcdServer(cfg *Config) string {
	if strings.Contains(cfg.AdvertiseAddress(), ":") {
		return "https://[::1]:2379"
	}
	return "https://127.0.0.1:2379"
}

// ManifestPeers lists the peer URLs in the --initial-cluster of this host's
// etcd manifest (running or parked), a way to find the cluster when the
// local member is down.
func (h *Host) ManifestPeers() []string {
	var out []string
	for _, p := range []string{h.EtcdManifest(), h.stoppedManifest()} {
		pod, err := h.ReadManifest(p)
		if err != nil {
			continue
		}
		c := container(pod, kubeadmconstants.Etcd)
		if c == nil {
			continue
		}
		for _, kv := range strings.Split(FlagValue(c.Command, "initial-cluster"), ",") {
			if _, u, ok := strings.Cut(kv, "="); ok {
				out = append(out, u)
			}
		}
	}
	return out
}

// EtcdFlag is the value of one flag (without its dashes) of the etcd
// container in this host's etcd manifest; "" when the flag is not given or
// there is no manifest.
func (h *Host) EtcdFlag(name string) string {
	pod, err := h.ReadManifest(h.EtcdManifest())
	if err != nil {
		return ""
	}
	c := container(pod, kubeadmconstants.Etcd)
	if c == nil {
		return ""
	}
	return FlagValue(c.Command, name)
}
