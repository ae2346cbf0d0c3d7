package staticpod

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
)

// Restarting a static pod's process to load new certificates. The
// container's process is sent SIGTERM and kubelet starts a new one in the
// same pod (restartPolicy Always), the way `crictl stop` would: the pod,
// its manifest and its UID stay, so kubelet has no new pod to admit and
// nothing of kubeadm's files changes. A pod whose container is not running
// (kubelet backing off its restarts, up to 5 min) gets a kubelet restart,
// which starts it at once (see kubelet.go).

// EtcdRestartKillAfter is how long RestartEtcd lets etcd stop gracefully
// after SIGTERM (a leader first hands leadership to a follower; then etcd
// waits for its clients' streams) before it kills it. A member whose
// cluster keeps its quorum loses nothing to the kill: every write it
// acknowledged is fsynced in its WAL, and it catches up from the leader.
const EtcdRestartKillAfter = 10 * time.Second

// StartedBefore says whether any of pids started before the newest of the
// given host files was written: such a process still holds what it read
// before. Unreadable processes or files count as "before" (restart, to be
// sure); no process is false (nothing holds anything).
func (h *Host) StartedBefore(pids []int, files ...string) bool {
	var newest time.Time
	for _, f := range files {
		fi, err := os.Stat(h.Path(f))
		if err != nil {
			return len(pids) > 0
		}
		if fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
	}
	for _, pid := range pids {
		start, err := h.processStart(pid)
		if err != nil || !start.After(newest) {
			return true
		}
	}
	return false
}

// EtcdServingCerts are the member's server and peer certificate files.
func EtcdServingCerts(cfg *Config) []string {
	d := cfg.CertDir()
	return []string{filepath.Join(d, kubeadmconstants.EtcdServerCertName), filepath.Join(d, kubeadmconstants.EtcdServerKeyName),
		filepath.Join(d, kubeadmconstants.EtcdPeerCertName), filepath.Join(d, kubeadmconstants.EtcdPeerKeyName)}
}

// APIServerEtcdClientCerts are kube-apiserver's etcd client certificate files.
func APIServerEtcdClientCerts(cfg *Config) []string {
	d := cfg.CertDir()
	return []string{filepath.Join(d, kubeadmconstants.APIServerEtcdClientCertName), filepath.Join(d, kubeadmconstants.APIServerEtcdClientKeyName)}
}

// RestartEtcd restarts the local etcd process so that it loads the
// certificates on disk, and waits until the new one serves, with a leader
// when wantLeader (a cluster without a quorum before has none to give it).
// The note says where the time went.
func (h *Host) RestartEtcd(ctx context.Context, cfg *Config, kubeletTimeout, timeout time.Duration, wantLeader bool) (string, error) {
	start := time.Now()
	old := h.EtcdPIDs(cfg)
	note, err := h.restartProcess(ctx, "etcd", old, func() []int { return h.EtcdPIDs(cfg) }, EtcdRestartKillAfter, kubeletTimeout, timeout)
	if err != nil {
		return note, err
	}
	var last string
	err = pollUntil(ctx, timeout-time.Since(start), func() (bool, error) {
		st, err := h.LocalStatus(ctx, cfg)
		switch {
		case err != nil:
			last = err.Error()
		case st.Leader == 0 && wantLeader:
			last = "serving, but without a leader"
		default:
			return true, nil
		}
		return false, nil
	}, func() string {
		return fmt.Sprintf("the restarted etcd on %s did not serve with a leader within %s (last: %s); see the etcd container's log (crictl logs) on the host", cfg.NodeName(), timeout, last)
	})
	if err != nil {
		return note, err
	}
	what := "serving with a leader"
	if !wantLeader {
		what = "serving (a leader comes once enough members run with new certificates)"
	}
	return note + fmt.Sprintf("; %s %s after the restart began", what, time.Since(start).Round(100*time.Millisecond)), nil
}

// RestartAPIServer restarts the local kube-apiserver process so that it
// loads the certificates on disk, and waits until the new one is ready
// when wantReady (without an etcd quorum it cannot be).
func (h *Host) RestartAPIServer(ctx context.Context, cfg *Config, kubeletTimeout, timeout time.Duration, wantReady bool) (string, error) {
	start := time.Now()
	note, err := h.restartProcess(ctx, "kube-apiserver", h.APIServerPIDs(), h.APIServerPIDs, h.apiServerShutdownKillAfter(), kubeletTimeout, timeout)
	if err != nil {
		return note, err
	}
	if !wantReady {
		return note + "; not waiting for it to be ready: etcd has no quorum yet", nil
	}
	if err := h.WaitAPIServerReady(ctx, cfg, timeout-time.Since(start)); err != nil {
		return note, err
	}
	return note + fmt.Sprintf("; ready %s after the restart began", time.Since(start).Round(100*time.Millisecond)), nil
}

// restartProcess stops the processes old (SIGTERM, SIGKILL after
// killAfter) and waits for kubelet to start a new one (list lists the
// current ones). With none running, kubelet is backing off the
// container's restarts: kubelet itself is restarted when this process can
// and kubeletTimeout (its bound) is not 0.
func (h *Host) restartProcess(ctx context.Context, name string, old []int, list func() []int, killAfter, kubeletTimeout, timeout time.Duration) (string, error) {
	start := time.Now()
	var note string
	if len(old) == 0 {
		if kubeletTimeout <= 0 {
			note = fmt.Sprintf("%s is not running (kubelet backing off its restarts?); kubelet starts it after its back-off (up to 5 min), not restarted as asked", name)
		} else if err := h.CanRestartKubelet(); err != nil {
			note = fmt.Sprintf("%s is not running (kubelet backing off its restarts?); kubelet starts it after its back-off (up to 5 min): it cannot be restarted from here (%v)", name, err)
		} else {
			if err := h.RestartKubelet(ctx, kubeletTimeout); err != nil {
				return "", fmt.Errorf("%s is not running, and restarting kubelet to start it at once failed: %w", name, err)
			}
			note = fmt.Sprintf("%s was not running (kubelet backing off its restarts): restarted kubelet, which starts it at once", name)
		}
	} else {
		signalPIDs(old, syscall.SIGTERM)
		killed, err := waitGone(ctx, old, list, start, killAfter, timeout, func() string {
			return fmt.Sprintf("%s (pids %v) did not stop within %s of SIGTERM and SIGKILL", name, old, timeout)
		})
		if err != nil {
			return "", err
		}
		note = fmt.Sprintf("old %s (pids %v) stopped after %s", name, old, time.Since(start).Round(100*time.Millisecond))
		if killed {
			note = fmt.Sprintf("old %s (pids %v) killed %s after SIGTERM (still draining its clients)", name, old, killAfter)
		}
	}
	err := pollEvery(ctx, timeout-time.Since(start), 200*time.Millisecond, func() (bool, error) {
		return slices.ContainsFunc(list(), func(p int) bool { return !slices.Contains(old, p) }), nil
	}, func() string {
		return fmt.Sprintf("kubelet did not start %s again within %s (see `journalctl -u kubelet` and `crictl ps -a` on the host)", name, timeout)
	})
	return note, err
}

// APIServerManifestExists reports whether kube-apiserver's static pod is
// configured here (not parked by a recovery).
func (h *Host) APIServerManifestExists() bool { return h.exists(h.APIServerManifest()) }

// waitGone waits until none of the processes old is in list() any more,
// killing (SIGKILL) those left killAfter after start. It reports whether it
// had to kill.
func waitGone(ctx context.Context, old []int, list func() []int, start time.Time, killAfter, timeout time.Duration, msg func() string) (killed bool, err error) {
	err = pollEvery(ctx, timeout, 200*time.Millisecond, func() (bool, error) {
		var left []int
		for _, p := range list() {
			if slices.Contains(old, p) {
				left = append(left, p)
			}
		}
		if len(left) > 0 && !killed && time.Since(start) > killAfter {
			killed = true
			signalPIDs(left, syscall.SIGKILL)
		}
		return len(left) == 0, nil
	}, msg)
	return killed, err
}

// InitialCluster is what a manifest's --initial-cluster lists, in its
// order, and whether it joined an existing cluster
// (--initial-cluster-state=existing): rendered again with both, a
// member's manifest keeps its bootstrap flags as they are.
func InitialCluster(pod *v1.Pod) (members []Member, existing bool) {
	c := container(pod, kubeadmconstants.Etcd)
	if c == nil {
		return nil, false
	}
	existing = FlagValue(c.Command, "initial-cluster-state") == "existing"
	if !existing {
		return nil, false // kubeadm's first member: GetEtcdPodSpec writes itself alone
	}
	for _, kv := range strings.Split(FlagValue(c.Command, "initial-cluster"), ",") {
		if name, url, ok := strings.Cut(kv, "="); ok {
			members = append(members, Member{Name: name, PeerURL: url})
		}
	}
	return members, true
}

// ApplyEtcdManifest writes manifest over the member's running one (the old
// one kept in StateDir, as etcd.yaml.before-<time>), waits for kubelet to
// replace the etcd process (SIGKILL after EtcdRestartKillAfter if the old
// one does not stop, as RestartEtcd) and for the new one to serve with a
// leader. It returns where the old manifest went and where the time went.
func (h *Host) ApplyEtcdManifest(ctx context.Context, cfg *Config, manifest []byte, timeout time.Duration) (string, error) {
	start := time.Now()
	old := h.EtcdPIDs(cfg)
	prev, err := os.ReadFile(h.Path(h.EtcdManifest()))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", h.EtcdManifest(), err)
	}
	kept := h.StateDir() + "/etcd.yaml.before-" + h.stamp()
	if err := h.WriteFile(kept, prev, 0o600); err != nil {
		return "", fmt.Errorf("keeping the old manifest: %w", err)
	}
	if err := h.WriteEtcdManifest(manifest); err != nil {
		return "", err
	}
	list := func() []int { return h.EtcdPIDs(cfg) }
	var gone, started time.Duration // where the time goes, for the note
	killedNote := ""
	if len(old) > 0 {
		killed, err := waitGone(ctx, old, list, start, EtcdRestartKillAfter, timeout, func() string {
			return fmt.Sprintf("kubelet did not stop the old etcd (pids %v) within %s of the new manifest", old, timeout)
		})
		if err != nil {
			return "", err
		}
		gone = time.Since(start)
		if killed {
			killedNote = fmt.Sprintf(" (killed: still running %s after the write)", EtcdRestartKillAfter)
		}
	}
	var last string
	err = pollUntil(ctx, timeout-time.Since(start), func() (bool, error) {
		if !slices.ContainsFunc(list(), func(p int) bool { return !slices.Contains(old, p) }) {
			last = "no new etcd process yet"
			return false, nil
		}
		if started == 0 {
			started = time.Since(start)
		}
		st, err := h.LocalStatus(ctx, cfg)
		switch {
		case err != nil:
			last = err.Error()
		case st.Leader == 0:
			last = "serving, but without a leader"
		default:
			return true, nil
		}
		return false, nil
	}, func() string {
		return fmt.Sprintf("etcd on %s did not serve with a leader within %s of its new manifest (last: %s); the old manifest is %s; see the etcd container's log (crictl logs) on the host",
			cfg.NodeName(), timeout, last, kept)
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("old manifest kept at %s; after the write: old etcd gone %s%s, new one started %s, serving with a leader %s",
		kept, gone.Round(100*time.Millisecond), killedNote, started.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond)), nil
}
