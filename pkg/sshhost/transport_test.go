package sshhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// bed is one test's workstation side against an sshd: known_hosts, the
// binary to copy, where it goes on the "host" (a temp dir, never
// /var/lib/kubectl-etcd) and the transport's log.
type bed struct {
	srv        *sshd
	opts       Options
	knownHosts string
	remote     string
	log        syncBuffer
}

func newBed(t *testing.T) *bed {
	t.Helper()
	return bedOn(t, startSSHD(t, ""))
}

// sudoBed is a bed whose login user is not root: with a passwordless
// sudo rule for it when sudoers, else without.
func sudoBed(t *testing.T, sudoers bool) *bed {
	t.Helper()
	user := loginUser()
	if user == "" {
		t.Skip("no user other than root with a login shell on this machine")
	}
	if _, err := exec.LookPath("sudo"); err != nil {
		t.Skip("no sudo on this machine")
	}
	rule := ""
	if sudoers {
		rule = user + " ALL=(root) NOPASSWD: ALL"
	}
	// With PAM: sshd alone refuses the accounts whose password is locked,
	// as system users' often are; PAM lets key logins in.
	b := bedOn(t, startSSHD(t, rule, "UsePAM yes"))
	b.opts.User = user
	return b
}

func bedOn(t *testing.T, srv *sshd) *bed {
	t.Helper()
	dir := t.TempDir()
	b := &bed{srv: srv, knownHosts: filepath.Join(dir, "known_hosts"), remote: filepath.Join(dir, "host", "bin", "kubectl-etcd")}
	b.writeKnownHosts(t, srv.knownHostsLine("127.0.0.1"))
	b.opts = Options{
		User: "root", Port: srv.port, KeyFiles: []string{srv.clientKey},
		KnownHostsFile: b.knownHosts, RemoteBinary: b.remote, LocalBinary: fakeBinary(t, dir, "v1"),
		ConnectTimeout: 5 * time.Second,
	}
	return b
}

func (b *bed) writeKnownHosts(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(b.knownHosts, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// transport is a Transport of b's options, h1 being 127.0.0.1.
func (b *bed) transport(t *testing.T) *Transport {
	t.Helper()
	return b.transportTo(t, "127.0.0.1")
}

func (b *bed) transportTo(t *testing.T, addr string) *Transport {
	t.Helper()
	tr, err := New(b.opts, func(node string) (string, error) {
		if node != "h1" {
			return "", fmt.Errorf("no node %s", node)
		}
		return addr, nil
	}, &b.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func (b *bed) exec(t *testing.T, tr *Transport, stdin string, argv ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = tr.Exec(context.Background(), "h1", hostapi.Call{Argv: argv}, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// assertUntouched checks that a refused connection changed nothing: no
// binary on the host, known_hosts as it was.
func (b *bed) assertUntouched(t *testing.T, knownHostsBefore string) {
	t.Helper()
	if _, err := os.Stat(b.remote); err == nil {
		t.Errorf("the binary was copied to %s all the same", b.remote)
	}
	raw, _ := os.ReadFile(b.knownHosts)
	if string(raw) != knownHostsBefore {
		t.Errorf("known_hosts changed:\n%s\nwas:\n%s", raw, knownHostsBefore)
	}
}

func TestExecQuotesArgumentsAndStreams(t *testing.T) {
	b := newBed(t)
	tr := b.transport(t)
	args := []string{"a b", "it's", "$HOME", `"q"`, "", "*", `back\slash`, "new\nline", "`id`", "; rm -rf /nope"}
	script := `printf '<%s>' "$@"; echo; echo progress >&2; cat`
	stdout, stderr, err := b.exec(t, tr, "from stdin\n", append([]string{"sh", "-c", script, "sh"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, a := range args {
		want.WriteString("<" + a + ">")
	}
	want.WriteString("\nfrom stdin\n")
	if stdout != want.String() {
		t.Errorf("stdout %q, want %q", stdout, want.String())
	}
	if stderr != "progress\n" {
		t.Errorf("stderr %q, want the remote's progress line", stderr)
	}
	local, _ := os.ReadFile(b.opts.LocalBinary)
	remote, err := os.ReadFile(b.remote)
	if err != nil || !bytes.Equal(local, remote) {
		t.Fatalf("the binary on the host is not the local one: %v", err)
	}
	if fi, _ := os.Stat(b.remote); fi.Mode().Perm() != 0o755 {
		t.Errorf("the binary on the host has mode %v, want 0755", fi.Mode())
	}
	sum, _ := fileSHA256(b.opts.LocalBinary)
	wantLog := fmt.Sprintf("      h1: copied kubectl-etcd (sha256 %s…) to %s\n", sum[:8], b.remote)
	if b.log.String() != wantLog {
		t.Errorf("log %q, want %q", b.log.String(), wantLog)
	}
	// A second call uses the connection as it is: no second copy.
	if out, _, err := b.exec(t, tr, "", "echo", "again"); err != nil || out != "again\n" {
		t.Fatalf("second call: %q, %v", out, err)
	}
	if b.log.String() != wantLog {
		t.Errorf("log after a second call %q, want only %q", b.log.String(), wantLog)
	}
}

func TestDeadConnectionIsRedialled(t *testing.T) {
	b := newBed(t)
	tr := b.transport(t)
	if _, _, err := b.exec(t, tr, "", "true"); err != nil {
		t.Fatal(err)
	}
	// As if the host rebooted: the connection is gone.
	tr.hosts["h1"].client.Close()
	if out, _, err := b.exec(t, tr, "", "echo", "back"); err != nil || out != "back\n" {
		t.Fatalf("after the connection died: %q, %v", out, err)
	}
	if n := strings.Count(b.log.String(), "copied"); n != 1 {
		t.Errorf("%d copies, want 1: the host was prepared already", n)
	}
}

func TestExitError(t *testing.T) {
	b := newBed(t)
	tr := b.transport(t)
	_, stderr, err := b.exec(t, tr, "", "sh", "-c", `for i in $(seq 1 30); do echo line$i >&2; done; exit 7`)
	var exit *hostapi.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("want an *hostapi.ExitError, got %T %v", err, err)
	}
	where := "ssh root@127.0.0.1:" + strconv.Itoa(b.srv.port)
	if exit.Node != "h1" || exit.Where != where || exit.ExitCode != 7 || exit.Reason != "Error" {
		t.Errorf("got %+v, want node h1, where %q, exit code 7, reason Error", exit, where)
	}
	if !strings.HasSuffix(exit.Tail, "line29\nline30") || strings.Contains(exit.Tail, "line10\n") {
		t.Errorf("tail %q, want the last 20 lines", exit.Tail)
	}
	if !strings.Contains(stderr, "line1\n") {
		t.Errorf("stderr was not streamed whole: %q", stderr)
	}
	if !hostapi.Answered(err) || hostapi.Unreachable(err) {
		t.Errorf("an exit error must be answered, not unreachable: %v", err)
	}
}

func TestUnknownHostKeyIsRefused(t *testing.T) {
	b := newBed(t)
	other := writeKey(t, filepath.Join(t.TempDir(), "other"))
	before := "[10.9.9.9]:22 " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(other))) + "\n"
	b.writeKnownHosts(t, before)
	_, _, err := b.exec(t, b.transport(t), "", "true")
	if !errors.Is(err, hostapi.ErrSetup) {
		t.Fatalf("want ErrSetup, got %v", err)
	}
	for _, want := range []string{ssh.FingerprintSHA256(b.srv.hostKey), "--ssh-accept-new-host-keys", "h1", "127.0.0.1:" + strconv.Itoa(b.srv.port), b.knownHosts} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	b.assertUntouched(t, before)

	// No known_hosts at all: the same, and none created.
	os.Remove(b.knownHosts)
	if _, _, err := b.exec(t, b.transport(t), "", "true"); !errors.Is(err, hostapi.ErrSetup) {
		t.Fatalf("without known_hosts: want ErrSetup, got %v", err)
	}
	if _, err := os.Stat(b.knownHosts); err == nil {
		t.Error("known_hosts was created")
	}
}

func TestAcceptNewHostKey(t *testing.T) {
	b := newBed(t)
	other := writeKey(t, filepath.Join(t.TempDir(), "other"))
	before := "[10.9.9.9]:22 " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(other))) // no final newline
	b.writeKnownHosts(t, before)
	b.opts.AcceptNewHostKeys = true
	if _, _, err := b.exec(t, b.transport(t), "", "true"); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(b.knownHosts)
	if want := before + "\n" + b.srv.knownHostsLine("127.0.0.1"); string(raw) != want {
		t.Fatalf("known_hosts:\n%s\nwant:\n%s", raw, want)
	}
	if !strings.Contains(b.log.String(), "added the host key") || !strings.Contains(b.log.String(), ssh.FingerprintSHA256(b.srv.hostKey)) {
		t.Errorf("log does not say the key was added: %q", b.log.String())
	}
	// The next run trusts it without being told to.
	b.opts.AcceptNewHostKeys = false
	if _, _, err := b.exec(t, b.transport(t), "", "true"); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(b.knownHosts); !bytes.Equal(again, raw) {
		t.Errorf("known_hosts changed on the second run:\n%s", again)
	}
}

func TestChangedHostKeyIsRefused(t *testing.T) {
	b := newBed(t)
	old := writeKey(t, filepath.Join(t.TempDir(), "old"))
	before := fmt.Sprintf("[127.0.0.1]:%d %s\n", b.srv.port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(old))))
	b.writeKnownHosts(t, before)
	b.opts.AcceptNewHostKeys = true
	_, _, err := b.exec(t, b.transport(t), "", "true")
	if !errors.Is(err, hostapi.ErrSetup) {
		t.Fatalf("want ErrSetup, got %v", err)
	}
	for _, want := range []string{"the host key for host h1 (127.0.0.1:" + strconv.Itoa(b.srv.port) + ") has CHANGED", "refusing", ssh.FingerprintSHA256(b.srv.hostKey), ssh.FingerprintSHA256(old)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	b.assertUntouched(t, before)
}

func TestKnownHostsKeyTypeIsTheOneAskedFor(t *testing.T) {
	b := newBed(t)
	// Only the ECDSA key known, hashed as Debian's ssh writes them:
	// offered the ed25519 one, the check would call it changed.
	host := knownhosts.HashHostname(knownhosts.Normalize("127.0.0.1:" + strconv.Itoa(b.srv.port)))
	b.writeKnownHosts(t, knownhosts.Line([]string{host}, b.srv.ecdsaKey)+"\n")
	if _, _, err := b.exec(t, b.transport(t), "", "true"); err != nil {
		t.Fatal(err)
	}
}

func TestClosedPortIsUnreachable(t *testing.T) {
	b := newBed(t)
	b.opts.Port = freePort(t)
	_, _, err := b.exec(t, b.transport(t), "", "true")
	if !hostapi.Unreachable(err) || !errors.Is(err, hostapi.ErrUnreachable) {
		t.Fatalf("want ErrUnreachable, got %v", err)
	}
	if !strings.Contains(err.Error(), "h1") || !strings.Contains(err.Error(), "127.0.0.1:"+strconv.Itoa(b.opts.Port)) {
		t.Errorf("error does not name the host and its address: %v", err)
	}
	if !strings.HasSuffix(err.Error(), "on the host itself, as root: "+b.remote+" true") {
		t.Errorf("error does not give the host-local command: %v", err)
	}
}

func TestUnresolvedNodeIsNoSuchHost(t *testing.T) {
	b := newBed(t)
	err := b.transport(t).Exec(context.Background(), "h2", hostapi.Call{Argv: []string{"true"}}, nil, nil, nil)
	if !errors.Is(err, hostapi.ErrNoSuchHost) || !strings.Contains(err.Error(), "h2") {
		t.Fatalf("want ErrNoSuchHost naming h2, got %v", err)
	}
}

func TestWrongKeyIsForbidden(t *testing.T) {
	b := newBed(t)
	b.opts.KeyFiles = []string{filepath.Join(t.TempDir(), "stranger")}
	writeKey(t, b.opts.KeyFiles[0])
	before, _ := os.ReadFile(b.knownHosts)
	_, _, err := b.exec(t, b.transport(t), "", "true")
	if !errors.Is(err, hostapi.ErrForbidden) {
		t.Fatalf("want ErrForbidden, got %v", err)
	}
	if !strings.Contains(err.Error(), "did not accept our SSH keys for user root") {
		t.Errorf("error does not say the key was refused: %v", err)
	}
	b.assertUntouched(t, string(before))
}

func TestBinaryCopiedOnlyWhenItDiffers(t *testing.T) {
	b := newBed(t)
	copies := func() int { return strings.Count(b.log.String(), "copied kubectl-etcd") }

	// Missing: copied.
	if _, _, err := b.exec(t, b.transport(t), "", "true"); err != nil {
		t.Fatal(err)
	}
	if copies() != 1 {
		t.Fatalf("missing binary: %d copies, want 1; log %q", copies(), b.log.String())
	}
	ino := func() uint64 {
		fi, err := os.Stat(b.remote)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	first := ino()

	// Identical: left alone (same file, not rewritten), by a new transport.
	if _, _, err := b.exec(t, b.transport(t), "", "true"); err != nil {
		t.Fatal(err)
	}
	if copies() != 1 || ino() != first {
		t.Fatalf("identical binary: copied again (%d copies, inode %d was %d)", copies(), ino(), first)
	}

	// Different (another build): replaced.
	b.opts.LocalBinary = fakeBinary(t, t.TempDir(), "v2")
	if _, _, err := b.exec(t, b.transport(t), "", "true"); err != nil {
		t.Fatal(err)
	}
	local, _ := os.ReadFile(b.opts.LocalBinary)
	remote, _ := os.ReadFile(b.remote)
	if copies() != 2 || !bytes.Equal(local, remote) {
		t.Fatalf("different binary: %d copies, want 2; host has %q", copies(), remote)
	}
	// No temp file left beside it.
	if entries, _ := os.ReadDir(filepath.Dir(b.remote)); len(entries) != 1 {
		t.Errorf("the binary's dir has %d entries, want only the binary", len(entries))
	}
}

func TestConcurrentCallsShareOneSetup(t *testing.T) {
	b := newBed(t)
	tr := b.transport(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			out, _, err := b.exec(t, tr, "", "echo", strconv.Itoa(i))
			if err == nil && out != strconv.Itoa(i)+"\n" {
				err = fmt.Errorf("call %d got %q", i, out)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := strings.Count(b.log.String(), "copied"); n != 1 {
		t.Errorf("%d copies for concurrent first calls, want 1", n)
	}
}

func TestCancelStopsTheRemoteCommand(t *testing.T) {
	b := newBed(t)
	tr := b.transport(t)
	// A duration no other process has: it names ours.
	sleep := strconv.Itoa(100000 + int(time.Now().UnixNano()%800000))
	running := func() bool { return exec.Command("pgrep", "-fx", "sleep "+sleep).Run() == nil }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Exec(ctx, "h1", hostapi.Call{Argv: []string{"sleep", sleep}}, nil, nil, nil) }()
	for deadline := time.Now().Add(10 * time.Second); !running(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the remote sleep did not start")
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "h1") {
			t.Fatalf("want context.Canceled naming h1, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Exec did not return after cancel")
	}
	for deadline := time.Now().Add(5 * time.Second); running(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			exec.Command("pkill", "-fx", "sleep "+sleep).Run()
			t.Fatal("the remote sleep still runs after cancel")
		}
	}
	// The connection still serves.
	if out, _, err := b.exec(t, tr, "", "echo", "ok"); err != nil || out != "ok\n" {
		t.Fatalf("after cancel: %q, %v", out, err)
	}
}

func TestIPv6(t *testing.T) {
	b := newBed(t)
	if !b.srv.ipv6 {
		t.Skip("no ::1 on this machine")
	}
	b.writeKnownHosts(t, "")
	b.opts.AcceptNewHostKeys = true
	tr := b.transportTo(t, "::1")
	_, _, err := b.exec(t, tr, "", "sh", "-c", "exit 3")
	var exit *hostapi.ExitError
	if !errors.As(err, &exit) || exit.Where != "ssh root@[::1]:"+strconv.Itoa(b.srv.port) {
		t.Fatalf("want an ExitError at [::1], got %v", err)
	}
	raw, _ := os.ReadFile(b.knownHosts)
	if string(raw) != b.srv.knownHostsLine("::1") || !strings.HasPrefix(string(raw), "[::1]:") {
		t.Fatalf("known_hosts %q, want %q", raw, b.srv.knownHostsLine("::1"))
	}
	b.opts.AcceptNewHostKeys = false
	if _, _, err := b.exec(t, b.transportTo(t, "::1"), "", "true"); err != nil {
		t.Fatalf("with the key recorded: %v", err)
	}
}

func TestJumpHost(t *testing.T) {
	b := newBed(t)
	// The same sshd is the jump host: it forwards to itself.
	b.opts.Jump = "root@127.0.0.1:" + strconv.Itoa(b.srv.port)
	out, _, err := b.exec(t, b.transport(t), "in", "sh", "-c", "cat; echo \" $SSH_CONNECTION\"")
	if err != nil {
		t.Fatal(err)
	}
	// sshd sees the connection come from itself.
	if !strings.HasPrefix(out, "in 127.0.0.1 ") {
		t.Errorf("stdout %q", out)
	}
	// A jump host that is down: unreachable, and it says so.
	b.opts.Jump = "127.0.0.1:" + strconv.Itoa(freePort(t))
	_, _, err = b.exec(t, b.transport(t), "", "true")
	if !errors.Is(err, hostapi.ErrUnreachable) || !strings.Contains(err.Error(), "jump host") {
		t.Fatalf("want ErrUnreachable through the jump host, got %v", err)
	}
}

func TestParseJump(t *testing.T) {
	for in, want := range map[string]target{
		"bastion":           {"me", "bastion", 22, "jump host bastion"},
		"ops@bastion:2222":  {"ops", "bastion", 2222, "jump host bastion"},
		"[fd00::1]:2200":    {"me", "fd00::1", 2200, "jump host fd00::1"},
		"ops@fd00::1":       {"ops", "fd00::1", 22, "jump host fd00::1"},
		"ops@10.0.0.1:2022": {"ops", "10.0.0.1", 2022, "jump host 10.0.0.1"},
	} {
		got, err := parseJump(in, "me", 22)
		if err != nil || got != want {
			t.Errorf("parseJump(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"bastion:x", "@bastion", "bastion:0"} {
		if _, err := parseJump(bad, "me", 22); err == nil {
			t.Errorf("parseJump(%q) accepted", bad)
		}
	}
}

func TestAgentKeys(t *testing.T) {
	b := newBed(t)
	raw, err := os.ReadFile(b.srv.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ssh.ParseRawPrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); agent.ServeAgent(keyring, c) }()
		}
	}()
	// No key files: an empty home, the key only in the agent.
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSH_AUTH_SOCK", sock)
	b.opts.KeyFiles, b.opts.Agent = nil, true
	if out, _, err := b.exec(t, b.transport(t), "", "echo", "agent"); err != nil || out != "agent\n" {
		t.Fatalf("with the agent's key: %q, %v", out, err)
	}
	// Without the agent there is nothing to log in with.
	b.opts.Agent = false
	if _, err := New(b.opts, nil, nil); !errors.Is(err, hostapi.ErrSetup) || !strings.Contains(err.Error(), "no SSH key") {
		t.Fatalf("without keys: want ErrSetup saying so, got %v", err)
	}
}

func TestUserWithoutSudoIsForbidden(t *testing.T) {
	b := sudoBed(t, false)
	before, _ := os.ReadFile(b.knownHosts)
	_, _, err := b.exec(t, b.transport(t), "", "true")
	if !errors.Is(err, hostapi.ErrForbidden) {
		t.Fatalf("want ErrForbidden, got %v", err)
	}
	want := fmt.Sprintf("user %s on host h1 cannot run sudo without a password, which kubectl-etcd needs; nothing was changed", b.opts.User)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error does not say %q: %v", want, err)
	}
	b.assertUntouched(t, string(before))
}

func TestUserWithSudo(t *testing.T) {
	b := sudoBed(t, true)
	tr := b.transport(t)
	out, _, err := b.exec(t, tr, "in", "sh", "-c", `id -u; cat`)
	if err != nil {
		t.Fatal(err)
	}
	if out != "0\nin" {
		t.Errorf("stdout %q, want root's uid and stdin", out)
	}
	fi, err := os.Stat(b.remote)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("the binary is owned by uid %d with mode %v, want root's, 0755", st.Uid, fi.Mode())
	}
	var exit *hostapi.ExitError
	if _, _, err := b.exec(t, tr, "", "sh", "-c", "exit 4"); !errors.As(err, &exit) || exit.ExitCode != 4 || exit.Where != "ssh "+b.opts.User+"@127.0.0.1:"+strconv.Itoa(b.srv.port) {
		t.Errorf("want an ExitError with code 4 from the user's session, got %v", err)
	}
	// Cancelled: the signal goes through sudo.
	sleep := strconv.Itoa(100000 + int(time.Now().UnixNano()%800000))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := tr.Exec(ctx, "h1", hostapi.Call{Argv: []string{"sleep", sleep}}, nil, nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the deadline, got %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); exec.Command("pgrep", "-fx", "sleep "+sleep).Run() == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			exec.Command("pkill", "-fx", "sleep "+sleep).Run()
			t.Fatal("the remote sleep still runs after the deadline")
		}
	}
}

func TestProxyCommand(t *testing.T) {
	b := newBed(t)
	// A relay in bash alone (/dev/tcp), standing in for a bastion's relay
	// or the test bed's network namespace: %h and %p are the host's.
	b.opts.ProxyCommand = `bash -c 'exec 3<>/dev/tcp/%h/%p; cat <&3 & exec cat >&3'`
	out, _, err := b.exec(t, b.transport(t), "through", "sh", "-c", "cat; echo \" $SSH_CONNECTION\"")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "through 127.0.0.1 ") {
		t.Errorf("stdout %q", out)
	}
	// A proxy that cannot connect: unreachable, with what it said.
	b.opts.ProxyCommand = `echo "no route to %h:%p%%" >&2; exit 3`
	_, _, err = b.exec(t, b.transport(t), "", "true")
	want := fmt.Sprintf("no route to 127.0.0.1:%d%%", b.srv.port)
	if !hostapi.Unreachable(err) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("want ErrUnreachable saying %q, got %v", want, err)
	}
}

func TestExpandProxyCommand(t *testing.T) {
	got := expandProxyCommand("relay %r@%h %p %% %x%", target{user: "ops", host: "fd00::1", port: 2222})
	if want := "relay ops@fd00::1 2222 % %x%"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
