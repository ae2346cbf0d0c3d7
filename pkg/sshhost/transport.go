// Package sshhost runs kubectl-etcd on hosts over SSH: a hostapi.Transport
// for clusters whose hosts the operator reaches with ssh rather than
// through the apiserver (host pods), or for when the apiserver is down.
//
// Before the first command on a host it makes sure the host has this very
// build at RemoteBinary, copying it when not, since a host-local command
// line only means something to the binary that parses it. It copies nothing
// else: the etcd PKI stays on the hosts, and the commands use the host's
// own files, as run by hand.
package sshhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// Options say how to reach the hosts and what to run there.
type Options struct {
	// User logs in; "" is $USER, else root. Any other user than root
	// must be allowed sudo without a password.
	User string
	// Port is sshd's; 0 is 22.
	Port int
	// KeyFiles are private keys to log in with; none given, those of
	// ~/.ssh/id_ed25519, id_ecdsa, id_rsa that exist.
	KeyFiles []string
	// Agent also offers the keys of the ssh-agent at $SSH_AUTH_SOCK.
	Agent bool
	// Jump is a host "[user@]host[:port]" to reach the hosts through,
	// as ssh -J; the same keys and known hosts serve it.
	Jump string
	// KnownHostsFile has the host keys to trust; "" is ~/.ssh/known_hosts.
	KnownHostsFile string
	// AcceptNewHostKeys adds the key of a host KnownHostsFile does not
	// know to it, as StrictHostKeyChecking=accept-new; a key that changed
	// is refused all the same.
	AcceptNewHostKeys bool
	// RemoteBinary is where kubectl-etcd is on the hosts; "" is
	// hostapi.HostBinaryPath.
	RemoteBinary string
	// LocalBinary is the binary copied there; "" is this one.
	LocalBinary string
	// ProxyCommand, as ssh's, connects to the host (or the jump host)
	// through a command's stdin and stdout; %h, %p and %r are the host,
	// port and user.
	ProxyCommand string
	// ConnectTimeout bounds connecting and logging in; 0 is 10s.
	ConnectTimeout time.Duration
}

// Transport runs host-local command lines over SSH, one connection per
// host, shared by concurrent calls.
type Transport struct {
	o       Options
	resolve func(node string) (string, error)
	log     io.Writer
	auth    []ssh.AuthMethod
	agent   io.Closer // the ssh-agent's connection, nil without one
	jump    *target
	// localSum is LocalBinary's sha256, read once, when first needed.
	localSum func() (string, error)

	knownMu sync.Mutex // serialises additions to KnownHostsFile

	mu     sync.Mutex
	hosts  map[string]*host
	closed bool
}

// host is one node's connection and what was done there.
type host struct {
	to target
	// mu is held while connecting and preparing: concurrent first calls
	// wait for one to do it rather than all doing it.
	mu     sync.Mutex
	client *ssh.Client
	jump   *ssh.Client
	// ready: sudo works and the binary is in place.
	ready bool
}

var _ hostapi.KubeletFree = (*Transport)(nil)

// ReachesWithoutKubelet marks SSH as a transport that needs no kubelet on
// the host: see hostapi.KubeletFree.
func (t *Transport) ReachesWithoutKubelet() {}

// New makes a Transport. resolve maps a node name, as the caller names
// hosts, to the address to dial (a name or an IP, no port); log gets a line
// for what the transport does on a host beyond the command (a copied
// binary, an added host key).
func New(o Options, resolve func(node string) (string, error), log io.Writer) (*Transport, error) {
	if o.User == "" {
		o.User = os.Getenv("USER")
	}
	if o.User == "" {
		o.User = "root"
	}
	if o.Port == 0 {
		o.Port = 22
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.RemoteBinary == "" {
		o.RemoteBinary = hostapi.HostBinaryPath
	}
	if !filepath.IsAbs(o.RemoteBinary) {
		return nil, fmt.Errorf("the binary's path on the hosts must be absolute, not %q", o.RemoteBinary)
	}
	if o.LocalBinary == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding this binary, to copy it to the hosts: %w", err)
		}
		o.LocalBinary = self
	}
	home, err := homeDir()
	if err != nil && (o.KnownHostsFile == "" || len(o.KeyFiles) == 0) {
		return nil, kindErrorf(hostapi.ErrSetup, "finding ~/.ssh: %w", err)
	}
	if o.KnownHostsFile == "" {
		o.KnownHostsFile = filepath.Join(home, ".ssh", "known_hosts")
	}
	if log == nil {
		log = io.Discard
	}
	t := &Transport{o: o, resolve: resolve, log: log, hosts: map[string]*host{}}
	if o.Jump != "" {
		j, err := parseJump(o.Jump, o.User, 22)
		if err != nil {
			return nil, err
		}
		t.jump = &j
	}
	if t.auth, t.agent, err = authMethods(o, home); err != nil {
		return nil, err
	}
	t.localSum = sync.OnceValues(func() (string, error) { return fileSHA256(o.LocalBinary) })
	return t, nil
}

func homeDir() (string, error) {
	if h, err := os.UserHomeDir(); err == nil {
		return h, nil
	}
	u, err := user.Current()
	if err != nil {
		return "", err
	}
	return u.HomeDir, nil
}

// Exec runs call.Args() with RemoteBinary on node, as root (through sudo
// -n for another user), stdin streamed to it and its stdout and stderr
// back: the hostapi.Transport over SSH.
func (t *Transport) Exec(ctx context.Context, node string, call hostapi.Call, stdin io.Reader, stdout, stderr io.Writer) error {
	h, err := t.host(node)
	if err != nil {
		return err
	}
	sess, c, err := t.session(ctx, node, h)
	if hostapi.Unreachable(err) {
		return fmt.Errorf("%w; on the host itself, as root: %s", err, hostCommand(t.o.RemoteBinary, call))
	} else if err != nil {
		return err
	}
	var tail tailBuffer
	if stderr == nil {
		stderr = io.Discard
	}
	errOut := &pidWriter{w: io.MultiWriter(stderr, &tail)}
	// The wrapper says its pid first (on stderr, which errOut strips) and
	// becomes the binary: see kill.
	argv := append([]string{"sh", "-c", `echo "$$" >&2 && exec "$@"`, "sh", t.o.RemoteBinary}, call.Args()...)
	err = run(ctx, sess, t.asRoot(h, argv...), stdin, stdout, errOut, func() { t.kill(node, h, c, errOut.pid()) })
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit):
		e := &hostapi.ExitError{Node: node, Where: "ssh " + h.to.String(), ExitCode: int32(exit.ExitStatus()), Reason: "Error", Tail: tail.lines(20)}
		if exit.Signal() != "" {
			e.Reason = "SIG" + exit.Signal()
		}
		return e
	case ctx.Err() != nil:
		return fmt.Errorf("kubectl-etcd on host %s (ssh %s) was sent SIGTERM: %w", node, h.to, ctx.Err())
	}
	// The connection broke: whether the command ran is open.
	return fmt.Errorf("running kubectl-etcd on host %s over SSH (%s): %w", node, h.to, err)
}

// hostCommand is call as an operator types it on the host, with the
// binary where this transport puts it.
func hostCommand(binary string, call hostapi.Call) string {
	return strings.Replace(call.HostCommand(), hostapi.HostBinaryPath, binary, 1)
}

// host is node's entry, resolving its address the first time.
func (t *Transport) host(node string) (*host, error) {
	t.mu.Lock()
	h, closed := t.hosts[node], t.closed
	t.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("running kubectl-etcd on host %s: the SSH transport is closed", node)
	}
	if h != nil {
		return h, nil
	}
	addr, err := t.resolve(node)
	if err != nil {
		return nil, kindErrorf(hostapi.ErrNoSuchHost, "finding the address of host %s to reach it over SSH: %w", node, err)
	}
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("running kubectl-etcd on host %s: the SSH transport is closed", node)
	}
	if h := t.hosts[node]; h != nil {
		return h, nil
	}
	h = &host{to: target{user: t.o.User, host: addr, port: t.o.Port, name: "host " + node}}
	t.hosts[node] = h
	return h, nil
}

// session opens a session on node's connection, connecting and preparing
// the host first if need be. A connection that died since (the host
// rebooted, a NAT forgot it) is redialled once.
func (t *Transport) session(ctx context.Context, node string, h *host) (*ssh.Session, *ssh.Client, error) {
	for retry := false; ; retry = true {
		c, err := t.client(ctx, node, h)
		if err != nil {
			return nil, nil, err
		}
		s, err := t.newSession(ctx, c)
		if err == nil {
			return s, c, nil
		}
		h.forget(c)
		if retry || ctx.Err() != nil {
			return nil, nil, fmt.Errorf("opening an SSH session on host %s (%s): %w", node, h.to, err)
		}
	}
}

// newSession opens a session on c, giving up after ConnectTimeout: on a
// connection that died silently (no reset, no keepalive) the request would
// wait forever.
func (t *Transport) newSession(ctx context.Context, c *ssh.Client) (*ssh.Session, error) {
	type result struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := c.NewSession()
		ch <- result{s, err}
	}()
	timer := time.NewTimer(t.o.ConnectTimeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-timer.C:
	case <-ctx.Done():
	}
	// Closing the connection ends the wait; a session that came
	// meanwhile goes with it.
	c.Close()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("the connection did not answer within %s", t.o.ConnectTimeout)
}

// client is node's connection, made and the host prepared if need be.
func (t *Transport) client(ctx context.Context, node string, h *host) (*ssh.Client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.client == nil {
		c, jump, err := t.dial(ctx, h.to)
		if err != nil {
			return nil, err
		}
		h.client, h.jump = c, jump
	}
	if !h.ready {
		if err := t.prepare(ctx, node, h); err != nil {
			return nil, err
		}
		h.ready = true
	}
	return h.client, nil
}

// forget closes c if it is still h's connection, for the next call to dial
// again.
func (h *host) forget(c *ssh.Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.client == c {
		h.close()
	}
}

func (h *host) close() {
	if h.client != nil {
		h.client.Close()
	}
	if h.jump != nil {
		h.jump.Close()
	}
	h.client, h.jump = nil, nil
}

// prepare checks sudo and puts the binary in place: once per host.
func (t *Transport) prepare(ctx context.Context, node string, h *host) error {
	if h.to.user != "root" {
		var exit *ssh.ExitError
		if _, err := t.outputIn(ctx, h.client, nil, commandLine("sudo", "-n", "true")); errors.As(err, &exit) {
			return kindErrorf(hostapi.ErrForbidden, "user %s on host %s cannot run sudo without a password, which kubectl-etcd needs; nothing was changed. "+
				"Allow it (a NOPASSWD rule in /etc/sudoers.d) or log in as root (--ssh-user root): %w", h.to.user, node, err)
		} else if err != nil {
			return fmt.Errorf("checking sudo for user %s on host %s (%s): %w", h.to.user, node, h.to, err)
		}
	}
	return t.ensureBinary(ctx, node, h)
}

// asRoot is argv as a command line run as root on h.
func (t *Transport) asRoot(h *host, argv ...string) string {
	if h.to.user != "root" {
		argv = append([]string{"sudo", "-n", "--"}, argv...)
	}
	return commandLine(argv...)
}

// outputIn runs cmd on c with stdin and returns its stdout; a failure
// carries its stderr.
func (t *Transport) outputIn(ctx context.Context, c *ssh.Client, stdin io.Reader, cmd string) (string, error) {
	s, err := t.newSession(ctx, c)
	if err != nil {
		return "", fmt.Errorf("opening an SSH session: %w", err)
	}
	var out, errOut bytes.Buffer
	if err := run(ctx, s, cmd, stdin, &out, &errOut, nil); err != nil {
		if msg := strings.TrimSpace(errOut.String()); msg != "" {
			return "", fmt.Errorf("%w: %s", err, msg)
		}
		return "", err
	}
	return out.String(), nil
}

// run runs cmd in s and waits for it. On ctx's end the command is sent
// SIGTERM (kubectl-etcd on the host stops cleanly on it, releasing its
// locks), kill is called when not nil, and the session closed.
func run(ctx context.Context, s *ssh.Session, cmd string, stdin io.Reader, stdout, stderr io.Writer, kill func()) error {
	defer s.Close()
	s.Stdout, s.Stderr = stdout, stderr
	// Not s.Stdin: Wait would wait for its copy too, which a stdin that
	// does not end (a terminal) would hold up long after the command.
	in, err := s.StdinPipe()
	if err != nil {
		return err
	}
	if err := s.Start(cmd); err != nil {
		return err
	}
	go func() {
		if stdin != nil {
			_, _ = io.Copy(in, stdin)
		}
		in.Close()
	}()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	_ = s.Signal(ssh.SIGTERM)
	if kill != nil {
		kill()
	}
	s.Close()
	// The session's output copies end with the channel: wait for them so
	// that nothing writes to stdout or stderr after we return.
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	return ctx.Err()
}

// kill sends SIGTERM to the process pid on h from a session of its own.
// OpenSSH signals a session's command only for a user other than root (it
// needs privilege separation, which a root login does without), and
// closing the session alone leaves a command without a terminal running.
func (t *Transport) kill(node string, h *host, c *ssh.Client, pid string) {
	if pid == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.o.ConnectTimeout)
	defer cancel()
	if _, err := t.outputIn(ctx, c, nil, t.asRoot(h, "kill", "-TERM", pid)); err != nil && !strings.Contains(err.Error(), "No such process") {
		fmt.Fprintf(t.log, "      %s: could not stop kubectl-etcd (pid %s) there: %v\n", node, pid, err)
	}
}

// pidWriter passes on what is written to it but the first line, the pid
// the remote wrapper says.
type pidWriter struct {
	w    io.Writer
	mu   sync.Mutex
	line []byte // the first line, while incomplete
	done bool
	p    string
}

func (w *pidWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	if !w.done {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			w.line = append(w.line, b...)
			w.mu.Unlock()
			return len(b), nil
		}
		w.line = append(w.line, b[:i]...)
		w.done = true
		if p := string(w.line); p != "" && strings.Trim(p, "0123456789") == "" {
			w.p = p
		} else if _, err := w.w.Write(append(w.line, '\n')); err != nil {
			// Not a pid: the wrapper did not run (a shell's complaint).
			w.mu.Unlock()
			return 0, err
		}
		n, err := w.w.Write(b[i+1:])
		w.mu.Unlock()
		return i + 1 + n, err
	}
	w.mu.Unlock()
	return w.w.Write(b)
}

func (w *pidWriter) pid() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.p
}

// Close closes the connections to every host.
func (t *Transport) Close() error {
	t.mu.Lock()
	hosts := t.hosts
	t.hosts, t.closed = nil, true
	t.mu.Unlock()
	for _, h := range hosts {
		h.mu.Lock()
		h.close()
		h.mu.Unlock()
	}
	if t.agent != nil {
		return t.agent.Close()
	}
	return nil
}

// tailBuffer keeps the end of what is written to it: the stderr lines an
// ExitError shows.
type tailBuffer struct{ b []byte }

const tailBytes = 16 << 10

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	if len(w.b) > 2*tailBytes {
		w.b = append(w.b[:0], w.b[len(w.b)-tailBytes:]...)
	}
	return len(p), nil
}

func (w *tailBuffer) lines(n int) string {
	lines := strings.Split(strings.TrimRight(string(w.b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
