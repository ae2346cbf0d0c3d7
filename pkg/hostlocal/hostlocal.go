// Package hostlocal holds the verbs run as root on a control-plane host —
// init, join, leave, status — as plans over the host-level library
// (pkg/staticpod) and etcd's membership API (pkg/etcdcluster). The same
// functions serve the host-local binary (root "/") and, later, the
// privileged host pod (root "/host"); only the Host's root differs.
package hostlocal

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/drift"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcddata"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlock"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// Timeouts bound every wait; a wait that runs out names what it waited for.
type Timeouts struct {
	EtcdStart   time.Duration // manifest written -> member serving
	EtcdStop    time.Duration // manifest moved out -> process gone
	Promote     time.Duration // learner caught up and promoted
	APIServer   time.Duration // apiserver ready after re-pointing
	ClusterCall time.Duration // one call to the cluster (statuses 2x, membership changes 6x)
	Kubelet     time.Duration // systemctl restart kubelet -> kubelet healthy
}

// DefaultTimeouts are generous for a loaded host but finite. EtcdStart
// covers kubelet's crash-loop back-off (capped at 5 min): a stale member that
// crash-looped before a join comes back under the same static pod (the same
// manifest as kubeadm wrote), so kubelet may hold its restart that long
// (seen in hack/bench-mttr.sh: 2 min 8 s on one host, over 3 min on another).
func DefaultTimeouts() Timeouts {
	return Timeouts{EtcdStart: 6 * time.Minute, EtcdStop: 2 * time.Minute, Promote: 3 * time.Minute,
		APIServer: 3 * time.Minute, ClusterCall: 10 * time.Second, Kubelet: time.Minute}
}

// Env is what every verb works with.
type Env struct {
	Host     *staticpod.Host
	Config   *staticpod.Config
	Out      io.Writer // progress lines (nil: none)
	DryRun   bool
	Timeouts Timeouts
	// NoKubeletRestart keeps the verbs from restarting kubelet; they then
	// wait for kubelet's back-offs (and bridge its apiserver) instead.
	NoKubeletRestart bool
}

// Result is what a verb reports: its plan with each step's outcome and the
// state it left, for people (printed) and scripts (-o json).
type Result struct {
	Verb   string                 `json:"verb"`
	Node   string                 `json:"node"`
	DryRun bool                   `json:"dryRun"`
	Steps  []plan.StepResult      `json:"steps"`
	State  *State                 `json:"state,omitempty"`
	Error  string                 `json:"error,omitempty"`
	Notes  []string               `json:"notes,omitempty"`
	Certs  []staticpod.CertAction `json:"certificates,omitempty"`
}

// run is every verb's frame: observe and plan (planFn), then print or carry
// out the plan, then report the state it left. planFn may return the cluster
// client it used, which stays open for the steps and is closed here.
func (e *Env) run(ctx context.Context, verb string, endpoints []string,
	planFn func(res *Result) (*plan.Plan, *etcdcluster.Client, error)) (*Result, error) {
	res := &Result{Verb: verb, Node: e.Config.NodeName(), DryRun: e.DryRun}
	p, c, err := planFn(res)
	if c != nil {
		defer c.Close()
	}
	if err != nil {
		res.Error = err.Error()
		return res, err
	}
	if !e.DryRun {
		release, err := e.Lock(verb)
		if err != nil {
			res.Error = err.Error()
			return res, err
		}
		defer release()
	}
	res.Steps, err = p.Execute(ctx, e.Out, e.DryRun)
	if err != nil {
		res.Error = err.Error()
	}
	res.State = e.ReadState(ctx, endpoints)
	return res, err
}

// RunLock is the host's run lock file: kubectl-etcd's own state, not
// kubeadm's (under /etc/kubernetes every run would touch a file next to
// kubeadm's configuration, and a verb with nothing to do must change
// nothing there).
const RunLock = "/var/lib/kubectl-etcd/run.lock"

// Lock takes this host's run lock for verb (see package hostlock): one
// run at a time changes the host, whichever face started it.
func (e *Env) Lock(verb string) (release func(), err error) {
	return hostlock.Take(e.Host.Path(RunLock), verb)
}

// clusterClient connects to the cluster at endpoints with an in-memory client
// certificate (nothing written), and proves one endpoint answers; otherwise
// the error names every endpoint and why it failed.
func (e *Env) clusterClient(ctx context.Context, endpoints []string) (*etcdcluster.Client, error) {
	tlsCfg, err := e.Host.EphemeralClientTLS(e.Config)
	if err != nil {
		return nil, err
	}
	return e.connect(ctx, endpoints, tlsCfg)
}

// connect is clusterClient with a TLS configuration at hand. The client
// bounds each of its calls by e.Timeouts: etcd's client waits for an
// unreachable cluster forever, and a verb must say so instead.
func (e *Env) connect(ctx context.Context, endpoints []string, tlsCfg *tls.Config) (*etcdcluster.Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("no etcd endpoints to reach the cluster")
	}
	c, err := etcdcluster.New(etcdcluster.Config{Endpoints: endpoints, TLS: tlsCfg, DialTimeout: 3 * time.Second,
		CallTimeout: e.Timeouts.ClusterCall, ChangeTimeout: 6 * e.Timeouts.ClusterCall, PromoteTimeout: e.Timeouts.Promote})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	if _, err := c.Members(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("no etcd endpoint answered (%s): %w", strings.Join(endpoints, ", "), err)
	}
	return c, nil
}

// KeepOwnSettings is for a member rebuilt in place (recover, restore): of
// the settings every member must share, it keeps what the member's current
// manifest runs where kubeadm-config's rendering would write something else
// (a timing tuned by hand, say). The members added to it later carry its
// settings, so the cluster keeps what it ran. It returns the note for the
// plan ("" when nothing is kept).
func (e *Env) KeepOwnSettings() (string, error) {
	h, cfg := e.Host, e.Config
	pod, err := h.CurrentEtcdManifest()
	if err != nil || pod == nil {
		return "", err
	}
	rendered := drift.Render(&cfg.Init.ClusterConfiguration, cfg.NodeName(), cfg.AdvertiseAddress())
	c := drift.CarryFor(map[string]*corev1.Pod{cfg.NodeName(): pod}, rendered)
	if len(c.Args) == 0 {
		return "", nil
	}
	cfg.SetEtcdArgs(c.Args, "kept from this member's manifest")
	return fmt.Sprintf("the member keeps its %s, which kubeadm-config does not give it (settings every member must share; put them into etcd.local.extraArgs so that kubeadm keeps them too)", c), nil
}

// readCluster reads the membership, then every member's status: what a
// verb decides a membership change on.
func readCluster(ctx context.Context, c *etcdcluster.Client) ([]etcdcluster.Member, []etcdcluster.Status, error) {
	members, err := c.Members(ctx)
	if err != nil {
		return nil, nil, err
	}
	statuses, err := c.Statuses(ctx)
	if err != nil {
		return nil, nil, err
	}
	return members, statuses, nil
}

// self finds this host's member by peer URL, kubeadm's notion of identity.
func self(members []etcdcluster.Member, peerURL string) *etcdcluster.Member {
	for i := range members {
		for _, u := range members[i].PeerURLs {
			if u == peerURL {
				return &members[i]
			}
		}
	}
	return nil
}

// clientURLs of the voting members other than id.
func clientURLsExcept(members []etcdcluster.Member, id uint64) []string {
	var out []string
	for _, m := range members {
		if m.ID != id && !m.IsLearner && len(m.ClientURLs) > 0 {
			out = append(out, m.ClientURLs...)
		}
	}
	return out
}

// memberPorts is where the member will listen: the client and peer ports on
// the advertise address, the client and metrics ports on loopback (::1 when
// the member advertises an IPv6 address, as kubeadm lays it out).
func memberPorts(cfg *staticpod.Config) []string {
	lo := "127.0.0.1"
	if strings.Contains(cfg.AdvertiseAddress(), ":") {
		lo = "::1"
	}
	return []string{
		net.JoinHostPort(cfg.AdvertiseAddress(), "2379"), net.JoinHostPort(cfg.AdvertiseAddress(), "2380"),
		net.JoinHostPort(lo, "2379"), net.JoinHostPort(lo, "2381"),
	}
}

// portsFree checks that nothing listens where the member will.
func portsFree(cfg *staticpod.Config) error {
	for _, hp := range memberPorts(cfg) {
		l, err := net.Listen("tcp", hp)
		if err != nil {
			return fmt.Errorf("port %s is already in use on %s (another etcd or program listens there); the member cannot start: %w", hp, cfg.NodeName(), err)
		}
		l.Close()
	}
	return nil
}

// dataDirState reads the local data dir offline; only valid while no etcd runs on it.
func (e *Env) dataDirState() (*etcddata.State, error) {
	return etcddata.Read(e.Host.Path(e.Config.DataDir()))
}

func (e *Env) moveDataDirAside(reason string) (string, error) {
	moved, err := etcddata.MoveAside(e.Host.Path(e.Config.DataDir()), reason, e.Host.Now())
	if err != nil || moved == "" {
		return "", err
	}
	// Report the host's own path, not this process's view of it.
	return e.Host.HostPathOf(moved), nil
}
