package staticpod

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

// EtcdPIDs lists the etcd processes serving this host's data dir, read from
// the host's /proc (the binary runs on the host, or in a hostPID pod).
func (h *Host) EtcdPIDs(cfg *Config) []int {
	return h.pids("etcd", "--data-dir="+cfg.DataDir())
}

// APIServerPIDs lists the host's kube-apiserver processes.
func (h *Host) APIServerPIDs() []int { return h.pids("kube-apiserver", "") }

// pids finds processes by program name and, when given, an exact argument.
func (h *Host) pids(prog, arg string) []int {
	procDir := h.Path("/proc")
	ents, _ := os.ReadDir(procDir)
	want := []byte(arg)
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cl, err := os.ReadFile(filepath.Join(procDir, e.Name(), "cmdline"))
		if err != nil || len(cl) == 0 {
			continue
		}
		args := bytes.Split(bytes.TrimRight(cl, "\x00"), []byte{0})
		if filepath.Base(string(args[0])) != prog {
			continue
		}
		if arg == "" {
			pids = append(pids, pid)
			continue
		}
		for _, a := range args[1:] {
			if bytes.Equal(a, want) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// EtcdKillAfter is how long WaitEtcdGone leaves it to kubelet to stop an
// etcd whose manifest was moved out before it sends SIGTERM itself. kubelet
// sends it within a fraction of a second when it acts at all; a second
// SIGTERM during etcd's graceful stop changes nothing (etcd handles the
// first one only), so waiting longer only delays the cases where kubelet
// does not act.
const EtcdKillAfter = time.Second

// EtcdDrainKillAfter is how long WaitEtcdGoneWithoutQuorum lets etcd drain
// its client connections after SIGTERM before it kills it. etcd waits up to
// its request timeout (5 s + 2 election timeouts: 7 s with kubeadm's
// settings) for the kube-apiserver's watch streams, which never end by
// themselves, before it stops raft and closes its files.
const EtcdDrainKillAfter = 2 * time.Second

// WaitEtcdGone waits until no etcd process serves the data dir: after the
// manifest leaves, kubelet needs a few seconds to kill the container, and
// nothing may touch the data dir before it is really gone. A kubelet that has
// not reached its apiserver since it started refuses to kill removed static
// pods ("skipping delete because sources aren't ready yet"), so an etcd still
// running after EtcdKillAfter is sent SIGTERM here, as kubelet would have
// done; with its manifest gone, nothing starts it again. The note says so.
func (h *Host) WaitEtcdGone(ctx context.Context, cfg *Config, timeout time.Duration) (string, error) {
	return h.waitEtcdGone(ctx, cfg, timeout, 0)
}

// EtcdStaysGoneFor is how long no etcd may run on the data dir, after its
// manifest left, before the dir counts as free (WaitEtcdStaysGone).
const EtcdStaysGoneFor = 3 * time.Second

// WaitEtcdStaysGone is WaitEtcdGone, then EtcdStaysGoneFor without an etcd
// starting again (one that does is waited out, or stopped, in turn). Seen
// in CI: a kubelet that had just booted had read the manifest before it was
// moved out, and started its etcd a moment after the wait found none; on a
// data dir moved aside meanwhile, that etcd bootstrapped a new cluster of
// its own there. Wait for this before anything starts on the dir.
func (h *Host) WaitEtcdStaysGone(ctx context.Context, cfg *Config, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	var notes []string
	for {
		note, err := h.WaitEtcdGone(ctx, cfg, time.Until(deadline))
		if note != "" {
			notes = append(notes, note)
		}
		if err != nil {
			return strings.Join(notes, "; "), err
		}
		calm := time.Now()
		back := false
		err = pollEvery(ctx, EtcdStaysGoneFor+time.Second, 100*time.Millisecond, func() (bool, error) {
			if len(h.EtcdPIDs(cfg)) > 0 {
				back = true
				return true, nil
			}
			return time.Since(calm) >= EtcdStaysGoneFor, nil
		}, func() string { return "" })
		if err != nil {
			return strings.Join(notes, "; "), err
		}
		if !back {
			return strings.Join(notes, "; "), nil
		}
		notes = append(notes, "an etcd started again after its manifest left (kubelet had read it before): waited for it to stop")
		if time.Now().After(deadline) {
			return strings.Join(notes, "; "), fmt.Errorf("etcd keeps starting on %s after its manifest was moved out (%s): is another manifest running it?", cfg.NodeName(), timeout)
		}
	}
}

// WaitEtcdGoneWithoutQuorum is WaitEtcdGone for a member that has no quorum
// (the survivor a recovery starts from): one still draining its clients
// EtcdDrainKillAfter after SIGTERM is killed (SIGKILL). Without a quorum it
// commits nothing, so nothing is pending: every write it acknowledged is in
// its WAL, fsynced before the acknowledgement, and is replayed at its next
// start, as after a power cut (etcd's crash-safety guarantee). What the kill
// skips is only the wait for clients that cannot be served anyway.
func (h *Host) WaitEtcdGoneWithoutQuorum(ctx context.Context, cfg *Config, timeout time.Duration) (string, error) {
	return h.waitEtcdGone(ctx, cfg, timeout, EtcdDrainKillAfter)
}

func (h *Host) waitEtcdGone(ctx context.Context, cfg *Config, timeout, killAfterTerm time.Duration) (string, error) {
	start, note := time.Now(), ""
	var termed time.Time
	killed := false
	err := pollEvery(ctx, timeout, 250*time.Millisecond, func() (bool, error) {
		pids := h.EtcdPIDs(cfg)
		if len(pids) == 0 {
			return true, nil
		}
		term := termed.IsZero() && time.Since(start) > EtcdKillAfter
		kill := killAfterTerm > 0 && !killed && !termed.IsZero() && time.Since(termed) > killAfterTerm
		// Read the manifests only when about to signal: another manifest
		// that runs etcd on the dir leaves the stop to kubelet.
		if !(term || kill) || h.manifestUses("--data-dir="+cfg.DataDir()) {
			return false, nil
		}
		switch {
		case term:
			signalPIDs(pids, syscall.SIGTERM)
			termed = time.Now()
			note = fmt.Sprintf("etcd (pids %v) still ran %s after its manifest left: sent it SIGTERM (kubelet may have too; one that has not reached its apiserver since it started does not)", pids, EtcdKillAfter)
		case kill:
			signalPIDs(pids, syscall.SIGKILL)
			killed = true
			note += fmt.Sprintf("; still draining its client connections %s later (it waits up to 7 s for kube-apiserver's watches): killed it (SIGKILL). Without a quorum it had nothing pending; its WAL holds every write it acknowledged", killAfterTerm)
		}
		return false, nil
	}, func() string {
		return fmt.Sprintf("etcd (pids %v) still running on %s %s after its manifest was moved out: is kubelet running?",
			h.EtcdPIDs(cfg), cfg.NodeName(), timeout)
	})
	return note, err
}

// manifestUses says whether a static-pod manifest in the manifests dir
// holds arg (e.g. another manifest still runs an etcd on the data dir).
func (h *Host) manifestUses(arg string) bool {
	files, _ := filepath.Glob(filepath.Join(h.Path(h.ManifestDir()), "*"))
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), ".") {
			continue // kubelet ignores dotfiles
		}
		if raw, err := os.ReadFile(f); err == nil && bytes.Contains(raw, []byte(arg+"\n")) {
			return true
		}
	}
	return false
}

// localTLS is the TLS config to reach the member on this host: an
// in-memory certificate from the host's CA works before the member's own
// client certificates exist; the files on disk are the fallback.
func (h *Host) localTLS(cfg *Config) (*tls.Config, error) {
	tlsCfg, err := h.EphemeralClientTLS(cfg)
	if err != nil {
		return h.ClientTLS(cfg)
	}
	return tlsCfg, nil
}

// ClientTLS is the TLS config of the host's healthcheck-client certificate.
func (h *Host) ClientTLS(cfg *Config) (*tls.Config, error) {
	ca, cert, key := h.ClientTLSFiles(cfg)
	tlsCfg, err := transport.TLSInfo{TrustedCAFile: ca, CertFile: cert, KeyFile: key}.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading etcd client certificates from %s: %w", filepath.Dir(cert), err)
	}
	return tlsCfg, nil
}

// LocalStatus asks the local member for its status.
func (h *Host) LocalStatus(ctx context.Context, cfg *Config) (*etcdcluster.EndpointStatus, error) {
	tlsCfg, err := h.localTLS(cfg)
	if err != nil {
		return nil, err
	}
	st, err := etcdcluster.StatusOf(ctx, tlsCfg, LocalEtcdServer(cfg), 3*time.Second)
	if err != nil {
		return nil, fmt.Errorf("etcd on %s: %w", cfg.NodeName(), err)
	}
	return st, nil
}

// WaitEtcdServing waits until the local member answers a status request.
func (h *Host) WaitEtcdServing(ctx context.Context, cfg *Config, timeout time.Duration) (*etcdcluster.EndpointStatus, error) {
	var st *etcdcluster.EndpointStatus
	var last error
	err := pollUntil(ctx, timeout, func() (bool, error) {
		st, last = h.LocalStatus(ctx, cfg)
		return last == nil, nil
	}, func() string {
		return fmt.Sprintf("etcd on %s did not start serving within %s (last error: %v); see the etcd container's log (crictl logs) on the host", cfg.NodeName(), timeout, last)
	})
	return st, err
}

// PodLogsDir is where kubelet keeps pod logs (its podLogsDir default, which
// kubeadm keeps), one dir per pod: <namespace>_<name>_<uid>/<container>/<n>.log.
const PodLogsDir = "/var/log/pods"

// WaitEtcdContainerStarted waits until kubelet has started an etcd container
// of this host's static pod after since: one of its log files under
// PodLogsDir was written after since (the container runtime writes what
// etcd prints from its first line, even when it exits at once). It says
// when kubelet acted on a new manifest, before etcd serves or even when it
// cannot bind yet. Without a pod log dir on the host it falls back to
// seeing an etcd process.
func (h *Host) WaitEtcdContainerStarted(ctx context.Context, cfg *Config, since time.Time, timeout time.Duration) error {
	logs := filepath.Join(h.Path(PodLogsDir), "kube-system_etcd-"+cfg.NodeName()+"_*", "etcd", "*.log")
	_, statErr := os.Stat(h.Path(PodLogsDir))
	return pollEvery(ctx, timeout, 100*time.Millisecond, func() (bool, error) {
		if statErr != nil {
			return len(h.EtcdPIDs(cfg)) > 0, nil
		}
		files, _ := filepath.Glob(logs)
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil && fi.ModTime().After(since) {
				return true, nil
			}
		}
		return false, nil
	}, func() string {
		return fmt.Sprintf("kubelet on %s started no etcd container within %s (no log written under %s since %s)",
			cfg.NodeName(), timeout, logs, since.Format(time.RFC3339))
	})
}

// RestartAPIServerWith changes the local kube-apiserver's --etcd-servers and
// waits until kubelet has replaced the old apiserver process and the new one
// is ready. Nothing happens when it already has these servers. The note says
// where the time went: the old process's graceful shutdown (kubelet gives it
// the pod's termination grace period) and the new one's start.
func (h *Host) RestartAPIServerWith(ctx context.Context, cfg *Config, servers []string, timeout time.Duration) (note string, err error) {
	old := h.APIServerPIDs()
	changed, err := h.SetAPIServerEtcdServers(servers)
	if err != nil || !changed {
		return "", err
	}
	start := time.Now()
	if len(old) > 0 {
		killAfter := h.apiServerShutdownKillAfter()
		killed, err := waitGone(ctx, old, h.APIServerPIDs, start, killAfter, timeout, func() string {
			return fmt.Sprintf("kubelet on %s did not restart kube-apiserver within %s after its manifest changed", cfg.NodeName(), timeout)
		})
		if err != nil {
			return "", err
		}
		note = fmt.Sprintf("old kube-apiserver gone after %s, ", time.Since(start).Round(100*time.Millisecond))
		if killed {
			note = fmt.Sprintf("old kube-apiserver killed %s into its graceful shutdown (its open watch streams would hold it until kubelet's grace period ends; their clients resume on the new one), ", killAfter)
		}
	}
	if err := h.WaitAPIServerReady(ctx, cfg, timeout); err != nil {
		return "", err
	}
	return note + fmt.Sprintf("new one ready after %s", time.Since(start).Round(100*time.Millisecond)), nil
}

// APIServerShutdownGrace is how long RestartAPIServerWith lets the old
// kube-apiserver shut down gracefully, on top of its own
// --shutdown-delay-duration, before it kills it. On SIGTERM (kubelet sends it
// when the manifest changes) kube-apiserver stops accepting connections at
// once (after --shutdown-delay-duration, 0 in kubeadm's manifest), then waits
// for its open connections to end; its clients' watch streams never end by
// themselves, so it runs until kubelet kills it at the pod's 30 s grace
// period (measured at 30.1–30.2 s on every re-point), and the new apiserver
// starts only then. The apiserver keeps no state: a request cut off by the
// kill fails and is retried, and watches resume from the new one.
const APIServerShutdownGrace = 5 * time.Second

// apiServerShutdownKillAfter is APIServerShutdownGrace plus the manifest's
// --shutdown-delay-duration (the time an operator gives load balancers to
// stop sending it requests, while it still serves).
func (h *Host) apiServerShutdownKillAfter() time.Duration {
	pod, err := h.ReadManifest(h.APIServerManifest())
	if err != nil {
		return APIServerShutdownGrace
	}
	c := container(pod, kubeadmconstants.KubeAPIServer)
	if c == nil {
		return APIServerShutdownGrace
	}
	delay, err := time.ParseDuration(FlagValue(c.Command, "shutdown-delay-duration"))
	if err != nil || delay < 0 {
		delay = 0
	}
	return delay + APIServerShutdownGrace
}

// signalPIDs sends sig to each process, ignoring those already gone.
// (os.Process.Signal: this package also builds for darwin and windows.)
func signalPIDs(pids []int, sig os.Signal) {
	for _, p := range pids {
		if proc, err := os.FindProcess(p); err == nil {
			_ = proc.Signal(sig)
		}
	}
}

// WaitAPIServerReady waits until the local kube-apiserver answers /readyz
// (anonymous, as kubeadm allows) on the advertise address.
func (h *Host) WaitAPIServerReady(ctx context.Context, cfg *Config, timeout time.Duration) error {
	var last string
	return pollUntil(ctx, timeout, func() (bool, error) {
		var ok bool
		ok, last = apiServerReady(cfg)
		return ok, nil
	}, func() string {
		return fmt.Sprintf("kube-apiserver on %s not ready within %s (last: %s)", cfg.NodeName(), timeout, last)
	})
}

// APIServerReady asks the local kube-apiserver's /readyz once.
func (h *Host) APIServerReady(cfg *Config) bool {
	ok, _ := apiServerReady(cfg)
	return ok
}

func apiServerReady(cfg *Config) (bool, string) {
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		// Readiness only; the apiserver's identity is not in question on its own host.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/readyz", cfg.Init.LocalAPIEndpoint.BindPort))
	if err != nil {
		return false, err.Error()
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, resp.Status
}

func pollUntil(ctx context.Context, timeout time.Duration, cond func() (bool, error), msg func() string) error {
	return pollEvery(ctx, timeout, 500*time.Millisecond, cond, msg)
}

// pollEvery is pollUntil with its own interval.
func pollEvery(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error), msg func() string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("timed out: %s", msg())
			}
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
