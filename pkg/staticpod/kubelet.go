package staticpod

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Restarting kubelet. kubelet keeps two things in memory only that make a
// recovery wait on it for minutes:
//   - the crash-loop back-off of every container (up to 5 min): the local
//     kube-apiserver crash-loops while etcd has no quorum, and a stale member
//     cut off by a recovery stops itself and crash-loops too;
//   - when kubelet has not reached its apiserver since it started (the host
//     booted while etcd could not serve), its pod housekeeping never runs, so
//     it neither kills a removed static pod nor starts a replacement of the
//     same name.
// A kubelet restart, which kubeadm's own kubelet-start and upgrade phases do,
// clears both: the new kubelet starts the static pods of the manifests dir
// at once, with no back-off. Running containers keep running (they belong to
// the container runtime, not to kubelet); what pauses for the few seconds of
// the restart is kubelet itself: probes, status updates, the node lease.

// KubeletService is the systemd unit kubeadm's packages install.
const KubeletService = "kubelet.service"

// CanRestartKubelet says whether this process can restart the host's
// kubelet through its service manager, and if not, why: it must run on the
// host itself (a host pod's own attach stream goes through that kubelet) and
// find systemctl. A kubelet that is not running may be (re)started too: a
// host just booted may not have started it yet, and the verbs that restart
// it need it to run the static pods they write anyway; a fresh kubelet
// started after the manifest is written is what the restart is for.
func (h *Host) CanRestartKubelet() error {
	if filepath.Clean(h.Root) != "/" {
		return fmt.Errorf("running in a pod (host root %s), whose own connection goes through kubelet", h.Root)
	}
	if _, err := exec.LookPath("systemctl"); err != nil {
		return fmt.Errorf("no systemctl on this host to restart %s with: %w", KubeletService, err)
	}
	return nil
}

// KubeletPIDs lists the host's kubelet processes.
func (h *Host) KubeletPIDs() []int { return h.pids("kubelet", "") }

// RestartKubelet restarts the host's kubelet with `systemctl restart
// kubelet` (which starts it when it is not running) and waits until a new
// kubelet process answers its health check.
func (h *Host) RestartKubelet(ctx context.Context, timeout time.Duration) error {
	if err := h.CanRestartKubelet(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	old := h.KubeletPIDs()
	cmd := exec.CommandContext(ctx, "systemctl", "restart", KubeletService)
	// systemctl ignores requests when it believes it runs in a chroot, as a
	// restore detached from a host pod does; the unit is the host's either way.
	cmd.Env = append(os.Environ(), "SYSTEMD_IGNORE_CHROOT=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("systemctl restart %s: %w: %s", KubeletService, err, strings.TrimSpace(string(out)))
	}
	healthz := h.kubeletHealthzURL()
	client := &http.Client{Timeout: time.Second}
	var last string
	return pollEvery(ctx, timeout, 200*time.Millisecond, func() (bool, error) {
		pids := h.KubeletPIDs()
		if len(pids) == 0 || slices.ContainsFunc(pids, func(p int) bool { return slices.Contains(old, p) }) {
			last = "the old kubelet still runs, or no new one yet"
			return false, nil
		}
		if healthz == "" {
			return true, nil
		}
		resp, err := client.Get(healthz)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK, nil
	}, func() string {
		return fmt.Sprintf("kubelet on this host was not back within %s of `systemctl restart %s` (last: %s); see `journalctl -u kubelet`", timeout, KubeletService, last)
	})
}

// kubeletHealthzURL is kubelet's health endpoint as its configuration file
// (kubeadm's /var/lib/kubelet/config.yaml) sets it; "" when it is disabled.
func (h *Host) kubeletHealthzURL() string {
	addr, port := "127.0.0.1", 10248 // kubelet's defaults, which kubeadm keeps
	if raw, err := os.ReadFile(h.Path("/var/lib/kubelet/config.yaml")); err == nil {
		var c struct {
			HealthzBindAddress string `json:"healthzBindAddress"`
			HealthzPort        *int   `json:"healthzPort"`
		}
		if yaml.Unmarshal(raw, &c) == nil {
			if c.HealthzBindAddress != "" && c.HealthzBindAddress != "0.0.0.0" && c.HealthzBindAddress != "::" {
				addr = c.HealthzBindAddress
			}
			if c.HealthzPort != nil {
				port = *c.HealthzPort
			}
		}
	}
	if port == 0 {
		return ""
	}
	return "http://" + net.JoinHostPort(addr, strconv.Itoa(port)) + "/healthz"
}

// KubeletStartedAfter says whether every running kubelet started after the
// file at path (a host path, e.g. a static-pod manifest) was last written.
// Such a kubelet read the file when it started, with no back-off and no
// stale view of the pod: what a restart would give, so a rerun need not
// disturb it again. False when no kubelet runs or anything cannot be read.
func (h *Host) KubeletStartedAfter(path string) bool {
	fi, err := os.Stat(h.Path(path))
	if err != nil {
		return false
	}
	pids := h.KubeletPIDs()
	if len(pids) == 0 {
		return false
	}
	for _, pid := range pids {
		start, err := h.processStart(pid)
		if err != nil || !start.After(fi.ModTime()) {
			return false
		}
	}
	return true
}

// userHZ is the unit of /proc's clock-tick fields: fixed at 100 by the
// kernel's user ABI on every architecture Kubernetes runs on.
const userHZ = 100

// processStart is the wall-clock time process pid started: its start in
// clock ticks since boot (/proc/<pid>/stat, field 22), placed on the wall
// clock with /proc/uptime (10 ms steps; /proc/stat's btime has whole seconds
// only, too coarse for a restart right after a write).
func (h *Host) processStart(pid int) (time.Time, error) {
	stat, err := os.ReadFile(h.Path(fmt.Sprintf("/proc/%d/stat", pid)))
	if err != nil {
		return time.Time{}, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return time.Time{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 {
		return time.Time{}, fmt.Errorf("/proc/%d/stat: %d fields after the command name", pid, len(fields))
	}
	ticks, err := strconv.ParseUint(fields[19], 10, 64) // field 22: starttime
	if err != nil {
		return time.Time{}, fmt.Errorf("/proc/%d/stat starttime: %w", pid, err)
	}
	now := time.Now()
	up, err := os.ReadFile(h.Path("/proc/uptime"))
	if err != nil {
		return time.Time{}, err
	}
	upFields := strings.Fields(string(up))
	if len(upFields) == 0 {
		return time.Time{}, errors.New("/proc/uptime is empty")
	}
	upSecs, err := strconv.ParseFloat(upFields[0], 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("/proc/uptime: %w", err)
	}
	boot := now.Add(-time.Duration(upSecs * float64(time.Second)))
	return boot.Add(time.Duration(ticks) * time.Second / userHZ), nil
}
