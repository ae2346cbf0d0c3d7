package sshhost

import (
	"bytes"
	"context"
	"crypto/ed25519"
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
	port    int
	ipv6    bool
	hostKey ssh.PublicKey
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

// startSSHD starts an sshd for the test, stopped at its end.
func startSSHD(t *testing.T) *sshd {
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
	clientPub := writeKey(t, s.clientKey)
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		t.Fatal(err)
	}
	s.port = freePort(t)
	listen := "ListenAddress 127.0.0.1\n"
	if l, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(s.port))); err == nil {
		l.Close()
		s.ipv6 = true
		listen += "ListenAddress ::1\n"
	}
	config := fmt.Sprintf(`Port %d
%sHostKey %s
PermitRootLogin prohibit-password
AuthorizedKeysFile %s
StrictModes no
PidFile %s
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding yes
`, s.port, listen, filepath.Join(dir, "host_ed25519"), filepath.Join(dir, "authorized_keys"), filepath.Join(dir, "sshd.pid"))
	cfg := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", cfg)
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

// knownHostsLine is the known_hosts line of s for host (an IP).
func (s *sshd) knownHostsLine(host string) string {
	return knownhosts.Line([]string{knownhosts.Normalize(net.JoinHostPort(host, strconv.Itoa(s.port)))}, s.hostKey) + "\n"
}

// writeKey writes a new ed25519 private key to path and returns its
// public key.
func writeKey(t *testing.T, path string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
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
