package etcdtest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Timeouts for a cluster on loopback. Generous because several test packages
// start clusters at once, and a slow machine is not what the tests are about.
const (
	startTimeout = 60 * time.Second // process start to serving clients
	stopTimeout  = 20 * time.Second // SIGTERM to exit; etcd may first hand leadership over
	pollInterval = 100 * time.Millisecond
	portAttempts = 3 // StartCluster tries again with fresh ports when one was taken
)

// Cluster is a set of etcd member processes sharing one PKI. Members may be
// appended with StartMember; every member still running when the test ends is
// killed, and if the test failed the tail of every member's log is printed.
type Cluster struct {
	PKI     *PKI
	Members []*Member

	t         testing.TB
	bin       string
	token     string
	extraArgs []string
	client    *clientv3.Client
}

// Member is one etcd process. Its data dir survives Stop and Kill, so Start
// brings the same member back.
type Member struct {
	Name      string
	ID        uint64 // set once the member has answered a status request
	DataDir   string
	ClientURL string
	PeerURL   string
	LogPath   string // stdout and stderr of every run, appended

	c    *Cluster
	args []string
	run  *run // nil while not running
}

// run is one life of the process; exitErr is valid once exited is closed.
type run struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
}

// MemberConfig describes a member started with Cluster.StartMember.
type MemberConfig struct {
	Name string
	// ClientPort and PeerPort come from ReservePorts; 0 picks a free port.
	// A member added with etcdctl-style member add must use the peer URL it
	// was added with, so tests reserve that port before adding.
	ClientPort, PeerPort int
	// InitialCluster is etcd's --initial-cluster: name=peerURL,... covering
	// every current member and this one. InitialClusterFor builds it.
	InitialCluster string
	// InitialClusterState is "existing" (joining a running cluster, the
	// default) or "new".
	InitialClusterState string
	// ExtraArgs are more etcd flags for this member, after the cluster's.
	ExtraArgs []string
}

// StartCluster starts n members on free loopback ports, with TLS and client
// certificate auth on both client and peer URLs, and waits until every member
// is serving and the cluster has a leader. Members are killed when the test
// ends. extraArgs are etcd flags added to every member's command line (later
// flags win, so they can override the defaults, e.g. --snapshot-count=5).
func StartCluster(t testing.TB, n int, extraArgs ...string) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("etcdtest: StartCluster needs at least one member, got %d", n)
	}
	// The PKI's temp dir is created before the cleanup is registered, so the
	// processes are killed before the testing package removes their dirs.
	c := &Cluster{PKI: NewPKI(t), t: t, bin: Binary(t), token: "etcdtest-" + randomHex(6), extraArgs: extraArgs}
	t.Cleanup(c.cleanup)

	var err error
	for attempt := 1; attempt <= portAttempts; attempt++ {
		if err = c.startNew(n); err == nil {
			return c
		}
		c.killAll()
		if !errors.Is(err, errPortTaken) {
			break
		}
		t.Logf("etcdtest: attempt %d: %v; retrying with other ports", attempt, err)
		c.Members = nil
	}
	t.Fatalf("etcdtest: starting a %d-member cluster: %v", n, err)
	return nil
}

var errPortTaken = errors.New("a port was taken by someone else")

func (c *Cluster) startNew(n int) error {
	ports, err := reservePorts(2 * n)
	if err != nil {
		return err
	}
	var initial []string
	for i := range n {
		m := c.newMember(fmt.Sprintf("m%d", i+1), ports[2*i], ports[2*i+1])
		initial = append(initial, m.Name+"="+m.PeerURL)
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.args = m.flags(strings.Join(initial, ","), "new")
		if err := m.launch(); err != nil {
			return err
		}
	}
	for _, m := range c.Members {
		if err := m.waitReady(true); err != nil {
			return err
		}
	}
	// Every member knowing a leader does not yet prove the quorum works;
	// a linearizable read does.
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cli, err := c.newClient(c.Endpoints())
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.Get(ctx, "etcdtest-health"); err != nil {
		return fmt.Errorf("linearizable read from the new cluster: %w", err)
	}
	return nil
}

func (c *Cluster) newMember(name string, clientPort, peerPort int) *Member {
	return &Member{
		Name:      name,
		DataDir:   filepath.Join(c.t.TempDir(), name+".etcd"),
		ClientURL: URL(clientPort),
		PeerURL:   URL(peerPort),
		LogPath:   filepath.Join(c.PKI.Dir, name+".log"),
		c:         c,
	}
}

// StartMember starts one more member process, typically for a member that a
// test has just added to the cluster (as a learner), and waits until it serves
// clients, which etcd does only once it has joined.
func (c *Cluster) StartMember(cfg MemberConfig) *Member {
	c.t.Helper()
	state := cfg.InitialClusterState
	if state == "" {
		state = "existing"
	}
	if state != "new" && state != "existing" {
		c.t.Fatalf("etcdtest: StartMember %s: initial cluster state %q is neither new nor existing", cfg.Name, state)
	}
	if cfg.Name == "" || c.Member(cfg.Name) != nil {
		c.t.Fatalf("etcdtest: StartMember: member name %q is empty or already used", cfg.Name)
	}
	if cfg.ClientPort == 0 || cfg.PeerPort == 0 {
		p := ReservePorts(c.t, 2)
		if cfg.ClientPort == 0 {
			cfg.ClientPort = p[0]
		}
		if cfg.PeerPort == 0 {
			cfg.PeerPort = p[1]
		}
	}
	m := c.newMember(cfg.Name, cfg.ClientPort, cfg.PeerPort)
	initial := cfg.InitialCluster
	if initial == "" {
		if state == "existing" {
			c.t.Fatalf("etcdtest: StartMember %s: joining an existing cluster needs InitialCluster", cfg.Name)
		}
		initial = m.Name + "=" + m.PeerURL
	}
	m.args = append(m.flags(initial, state), cfg.ExtraArgs...)
	c.Members = append(c.Members, m)
	if err := m.launch(); err != nil {
		c.t.Fatalf("etcdtest: %v", err)
	}
	if err := m.waitReady(true); err != nil {
		c.t.Fatalf("etcdtest: %v", err)
	}
	return m
}

// InitialClusterFor returns the --initial-cluster value for a member called
// name that was added with peerURL: every current member's peer URLs (etcd
// checks them against the running cluster), under the member's name, or a
// placeholder for members that have not started yet.
func (c *Cluster) InitialClusterFor(name, peerURL string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Client().MemberList(ctx)
	if err != nil {
		c.t.Fatalf("etcdtest: listing members for %s's initial cluster: %v", name, err)
	}
	var parts []string
	found := false
	for _, m := range resp.Members {
		n := m.Name
		for _, u := range m.PeerURLs {
			if u == peerURL {
				n, found = name, true
			}
		}
		if n == "" {
			n = fmt.Sprintf("unstarted-%x", m.ID)
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	if !found {
		parts = append(parts, name+"="+peerURL)
	}
	return strings.Join(parts, ",")
}

// flags are the member's etcd command line, kubeadm's stacked-etcd flags
// minus what does not apply on loopback.
func (m *Member) flags(initialCluster, state string) []string {
	p := m.c.PKI
	return append([]string{
		"--name=" + m.Name,
		"--data-dir=" + m.DataDir,
		"--listen-client-urls=" + m.ClientURL,
		"--advertise-client-urls=" + m.ClientURL,
		"--listen-peer-urls=" + m.PeerURL,
		"--initial-advertise-peer-urls=" + m.PeerURL,
		"--initial-cluster=" + initialCluster,
		"--initial-cluster-state=" + state,
		"--initial-cluster-token=" + m.c.token,
		"--cert-file=" + p.ServerCert,
		"--key-file=" + p.ServerKey,
		"--trusted-ca-file=" + p.CACert,
		"--client-cert-auth=true",
		"--peer-cert-file=" + p.PeerCert,
		"--peer-key-file=" + p.PeerKey,
		"--peer-trusted-ca-file=" + p.CACert,
		"--peer-client-cert-auth=true",
		// Test data is disposable; skipping fsync keeps parallel test
		// packages from waiting on each other's disk flushes.
		"--unsafe-no-fsync=true",
		"--log-level=info",
	}, m.c.extraArgs...)
}

// Member returns the member with the given name, or nil.
func (c *Cluster) Member(name string) *Member {
	for _, m := range c.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Endpoints returns every member's client URL, in member order.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// ClientTLS returns a TLS configuration presenting the client certificate and
// trusting the cluster's CA.
func (c *Cluster) ClientTLS() *tls.Config {
	c.t.Helper()
	cfg, err := c.PKI.ClientTLS()
	if err != nil {
		c.t.Fatalf("etcdtest: %v", err)
	}
	return cfg
}

// Client returns a client for all members' endpoints, for setting up test
// data; it is closed when the test ends.
func (c *Cluster) Client() *clientv3.Client {
	c.t.Helper()
	if c.client == nil {
		cli, err := c.newClient(c.Endpoints())
		if err != nil {
			c.t.Fatalf("etcdtest: %v", err)
		}
		c.client = cli
	}
	return c.client
}

func (c *Cluster) newClient(endpoints []string) (*clientv3.Client, error) {
	tlsCfg, err := c.PKI.ClientTLS()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		TLS:         tlsCfg,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(), // retries are expected here and would only add noise
	})
	if err != nil {
		return nil, fmt.Errorf("creating a client for %s: %w", strings.Join(endpoints, ","), err)
	}
	return cli, nil
}

// Running reports whether the member's process is alive.
func (m *Member) Running() bool {
	if m.run == nil {
		return false
	}
	select {
	case <-m.run.exited:
		return false
	default:
		return true
	}
}

// Start starts the stopped member again on its data dir and waits until it
// serves clients. etcd serves clients only after it has re-published itself
// through raft, so this needs a working quorum; use Launch when there is none.
func (m *Member) Start() {
	m.c.t.Helper()
	m.Launch()
	if err := m.waitReady(false); err != nil {
		m.c.t.Fatalf("etcdtest: %v", err)
	}
}

// Launch starts the stopped member's process and waits only until it listens
// on its client port.
func (m *Member) Launch() {
	m.c.t.Helper()
	if m.Running() {
		m.c.t.Fatalf("etcdtest: starting %s: it is already running", m.Name)
	}
	if err := m.launch(); err != nil {
		m.c.t.Fatalf("etcdtest: %v", err)
	}
}

// Stop terminates the member gracefully (SIGTERM) and waits for it to exit.
func (m *Member) Stop() {
	m.c.t.Helper()
	if err := m.stop(syscall.SIGTERM, stopTimeout); err != nil {
		m.c.t.Fatalf("etcdtest: %v", err)
	}
}

// Kill ends the member abruptly (SIGKILL), as a crash or power loss would.
func (m *Member) Kill() {
	m.c.t.Helper()
	if err := m.stop(syscall.SIGKILL, stopTimeout); err != nil {
		m.c.t.Fatalf("etcdtest: %v", err)
	}
}

func (m *Member) launch() error {
	f, err := os.OpenFile(m.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "=== etcdtest: %s %s\n", m.c.bin, strings.Join(m.args, " "))
	cmd := exec.Command(m.c.bin, m.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = etcdEnv()
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting etcd member %s: %w", m.Name, err)
	}
	r := &run{cmd: cmd, exited: make(chan struct{})}
	go func() {
		r.exitErr = cmd.Wait()
		f.Close()
		close(r.exited)
	}()
	m.run = r
	return m.waitListening()
}

// etcdEnv is the test's environment without ETCD_* variables, which etcd would
// read as flags and which must not leak from a developer's shell into tests.
func etcdEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	return env
}

func (m *Member) waitListening() error {
	addr := hostPort(m.ClientURL)
	deadline := time.Now().Add(startTimeout)
	for {
		if err := m.exitedErr(); err != nil {
			return err
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd member %s does not listen on %s after %s\n%s", m.Name, addr, startTimeout, m.LogTail(30))
		}
		time.Sleep(pollInterval)
	}
}

// waitReady waits until the member answers a status request (and, with
// needLeader, knows a leader), and records its ID.
func (m *Member) waitReady(needLeader bool) error {
	cli, err := m.c.newClient([]string{m.ClientURL})
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(startTimeout)
	var last error
	for {
		if err := m.exitedErr(); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := cli.Status(ctx, m.ClientURL)
		cancel()
		switch {
		case err != nil:
			last = err
		case needLeader && resp.Leader == 0:
			last = errors.New("no leader yet")
		default:
			m.ID = resp.Header.MemberId
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd member %s not ready after %s: %v\n%s", m.Name, startTimeout, last, m.LogTail(30))
		}
		time.Sleep(pollInterval)
	}
}

// exitedErr returns an error with the log tail if the process has ended.
func (m *Member) exitedErr() error {
	if m.run == nil {
		return fmt.Errorf("etcd member %s is not running", m.Name)
	}
	select {
	case <-m.run.exited:
	default:
		return nil
	}
	tail := m.LogTail(30)
	err := fmt.Errorf("etcd member %s exited (%v)\n%s", m.Name, m.run.exitErr, tail)
	if strings.Contains(tail, "address already in use") {
		err = fmt.Errorf("%w: %w", errPortTaken, err)
	}
	return err
}

func (m *Member) stop(sig syscall.Signal, grace time.Duration) error {
	r := m.run
	if r == nil {
		return nil
	}
	m.run = nil
	select {
	case <-r.exited:
		return nil
	default:
	}
	_ = r.cmd.Process.Signal(sig)
	select {
	case <-r.exited:
		return nil
	case <-time.After(grace):
		_ = r.cmd.Process.Kill()
		<-r.exited
		return fmt.Errorf("etcd member %s did not exit within %s of %v and was killed\n%s", m.Name, grace, sig, m.LogTail(30))
	}
}

// LogTail returns the last n lines the member's process wrote.
func (m *Member) LogTail(n int) string {
	data, err := os.ReadFile(m.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (c *Cluster) killAll() {
	var wg sync.WaitGroup
	for _, m := range c.Members {
		wg.Go(func() { _ = m.stop(syscall.SIGKILL, stopTimeout) })
	}
	wg.Wait()
}

func (c *Cluster) cleanup() {
	if c.client != nil {
		c.client.Close()
	}
	// Killed, not stopped: the data dirs are about to be removed, and a
	// graceful stop would spend seconds handing leadership around.
	c.killAll()
	if c.t.Failed() {
		for _, m := range c.Members {
			c.t.Logf("etcdtest: last lines of %s's log (%s):\n%s", m.Name, m.LogPath, m.LogTail(40))
		}
	}
}

func hostPort(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Host
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// LaunchWith starts the stopped member like Launch, with extra flags for this
// run only (e.g. --force-new-cluster), and waits until it listens.
func (m *Member) LaunchWith(extra ...string) {
	m.c.t.Helper()
	if err := m.TryLaunch(extra...); err != nil {
		m.c.t.Fatalf("etcdtest: %v", err)
	}
}

// TryLaunch is LaunchWith returning the error instead of failing the test:
// for members expected to stop themselves right away (a removed member).
func (m *Member) TryLaunch(extra ...string) error {
	if m.Running() {
		return fmt.Errorf("starting %s: it is already running", m.Name)
	}
	saved := m.args
	m.args = append(append([]string{}, saved...), extra...)
	err := m.launch()
	m.args = saved
	return err
}
