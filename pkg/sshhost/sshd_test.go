package sshhost

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// sshd is a real OpenSSH sshd of the test's own, on a free port of
// 127.0.0.1 (and ::1 when the machine has it), letting root in with the
// test's client key.
type sshd struct {
	port int
	ipv6 bool
	// hostKey (ed25519) and ecdsaKey are its host keys.
	hostKey, ecdsaKey ssh.PublicKey
	// clientKey is a private key file authorized for root.
	clientKey string
}

var installOnce = sync.OnceValue(installSSHD)

// installSSHD installs openssh-server when missing, without it starting a
// service on this machine's port 22: Debian's postinst would, unless
// /usr/sbin/policy-rc.d says no (the Docker images ship one; we write
// one for the install when there is none, and remove only ours).
func installSSHD() error {
	if _, err := os.Stat("/usr/sbin/sshd"); err == nil {
		return nil
	}
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Stat(policy); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
			return err
		}
		defer os.Remove(policy)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var log bytes.Buffer
	if err := testbed.EnsureTools(ctx, &log, map[string]string{"/usr/sbin/sshd": "openssh-server", "ssh-keygen": "openssh-client"}); err != nil {
		return fmt.Errorf("%w\n%s", err, log.String())
	}
	if out, _ := exec.Command("pgrep", "-ax", "sshd").Output(); len(out) > 0 {
		return fmt.Errorf("installing openssh-server started an sshd on this machine, stop it:\n%s", out)
	}
	return nil
}

// startSSHD starts an sshd for the test, stopped at its end. extra lines
// come first in its sshd_config, where the first of a keyword counts.
// sudoers, when not empty, is a rule that sudo sees in sessions of this
// sshd only: it runs in a mount namespace of its own where /etc/sudoers.d
// is a copy with the rule added.
func startSSHD(t *testing.T, sudoers string, extra ...string) *sshd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("these tests start a real sshd and log in to it as root: run them as root")
	}
	if err := installOnce(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // its privilege separation dir
		t.Fatal(err)
	}
	dir := t.TempDir()
	hostPub := writeKey(t, filepath.Join(dir, "host_ed25519"))
	s := &sshd{hostKey: hostPub, clientKey: filepath.Join(dir, "client_ed25519")}
	// A second host key, of the type the ssh library prefers by default:
	// known_hosts has the one ssh recorded, which the client must ask for.
	s.ecdsaKey = writeECDSAKey(t, filepath.Join(dir, "host_ecdsa"))
	clientPub := writeKey(t, s.clientKey)
	// sshd reads authorized_keys as the user logging in, who need not be
	// root.
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.port = freePort(t)
	listen := "ListenAddress 127.0.0.1\n"
	if l, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(s.port))); err == nil {
		l.Close()
		s.ipv6 = true
		listen += "ListenAddress ::1\n"
	}
	config := fmt.Sprintf(`%sPort %d
%sHostKey %s
HostKey %s
PermitRootLogin prohibit-password
AuthorizedKeysFile %s
StrictModes no
PidFile %s
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding yes
UsePAM no
`, strings.Join(append(extra, ""), "\n"), s.port, listen, filepath.Join(dir, "host_ed25519"), filepath.Join(dir, "host_ecdsa"), filepath.Join(dir, "authorized_keys"), filepath.Join(dir, "sshd.pid"))
	cfg := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", cfg)
	if sudoers != "" {
		d := sudoersDir(t, sudoers)
		// unshare and sh exec: the pid stays sshd's, for Kill.
		cmd = exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
			`mount --bind "$1" /etc/sudoers.d && exec /usr/sbin/sshd -D -e -f "$2"`, "sh", d, cfg)
	}
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("sshd's log:\n%s", log.String())
		}
	})
	// Ready when it greets.
	for deadline := time.Now().Add(10 * time.Second); ; {
		select {
		case <-exited:
			t.Fatalf("sshd exited: %s", log.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), time.Second); err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 4)
			_, err := c.Read(buf)
			c.Close()
			if err == nil && string(buf) == "SSH-" {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not answer on port %d:\n%s", s.port, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sudoersDir is a copy of /etc/sudoers.d with the rule added, owned by
// root and not writable by others, as sudo insists.
func sudoersDir(t *testing.T, rule string) string {
	t.Helper()
	d := t.TempDir()
	entries, err := os.ReadDir("/etc/sudoers.d")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join("/etc/sudoers.d", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, e.Name()), raw, 0o440); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(d, "zz-sshhost-test"), []byte(rule+"\n"), 0o440); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// loginUser is a user other than root with a login shell on this machine,
// or "" if none; the sudo tests log in as it to their own sshd.
func loginUser() string {
	raw, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 7 && f[2] != "0" && (strings.HasSuffix(f[6], "/bash") || strings.HasSuffix(f[6], "/sh")) {
			return f[0]
		}
	}
	return ""
}

// knownHostsLine is the known_hosts line of s for host (an IP).
func (s *sshd) knownHostsLine(host string) string {
	return knownhosts.Line([]string{knownhosts.Normalize(net.JoinHostPort(host, strconv.Itoa(s.port)))}, s.hostKey) + "\n"
}

// writeKey writes a new ed25519 private key to path and returns its
// public key.
func writeKey(t *testing.T, path string) ssh.PublicKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return writePrivateKey(t, path, priv)
}

// writeECDSAKey writes a new ECDSA P-256 private key to path and returns
// its public key.
func writeECDSAKey(t *testing.T, path string) ssh.PublicKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return writePrivateKey(t, path, priv)
}

// writePrivateKey writes priv to path in OpenSSH's format, mode 0600, and
// returns its public key.
func writePrivateKey(t *testing.T, path string, priv crypto.Signer) ssh.PublicKey {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// freePort is a TCP port nothing listens on, now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// fakeBinary is a stand-in for kubectl-etcd: it runs its arguments. The
// version string changes its sha256.
func fakeBinary(t *testing.T, dir, version string) string {
	t.Helper()
	p := filepath.Join(dir, "kubectl-etcd-"+strings.ReplaceAll(version, " ", "-"))
	if err := os.WriteFile(p, []byte("#!/bin/sh\n# fake kubectl-etcd "+version+"\nexec \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
