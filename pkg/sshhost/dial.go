package sshhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// target is where to log in: user, host (name or IP, no port) and port;
// name says which it is in messages ("host h1", "jump host bastion").
type target struct {
	user, host string
	port       int
	name       string
}

func (a target) hostport() string { return net.JoinHostPort(a.host, strconv.Itoa(a.port)) }

func (a target) String() string { return a.user + "@" + a.hostport() }

// parseJump reads "[user@]host[:port]" as ssh -J does, IPv6 in brackets
// when it has a port ("[fd00::1]:2222").
func parseJump(s, user string, port int) (target, error) {
	to := target{user: user, host: s, port: port, name: "jump host " + s}
	if u, rest, ok := strings.Cut(s, "@"); ok {
		to.user, to.host = u, rest
	}
	if strings.HasPrefix(to.host, "[") || strings.Count(to.host, ":") == 1 {
		h, p, err := net.SplitHostPort(to.host)
		if err != nil {
			return target{}, fmt.Errorf("jump host %q: %w", s, err)
		}
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return target{}, fmt.Errorf("jump host %q: bad port %q", s, p)
		}
		to.host, to.port = h, n
	}
	to.name = "jump host " + to.host
	if to.user == "" || to.host == "" {
		return target{}, fmt.Errorf("jump host %q: want [user@]host[:port]", s)
	}
	return to, nil
}

// authMethods are the keys of o.KeyFiles (or the usual ~/.ssh ones) and
// those of the ssh-agent, offered in that order as ssh does. The closer is
// the agent's connection, nil without one.
func authMethods(o Options, home string) ([]ssh.AuthMethod, io.Closer, error) {
	files, explicit := o.KeyFiles, len(o.KeyFiles) > 0
	if !explicit {
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			if p := filepath.Join(home, ".ssh", name); fileExists(p) {
				files = append(files, p)
			}
		}
	}
	var signers []ssh.Signer
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, kindErrorf(hostapi.ErrSetup, "reading SSH key %s: %w", f, err)
		}
		s, err := ssh.ParsePrivateKey(raw)
		var pass *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &pass) && !explicit:
			// Likely in the agent too; asking for passphrases is not
			// this package's job.
			continue
		case errors.As(err, &pass):
			return nil, nil, kindErrorf(hostapi.ErrSetup, "SSH key %s is protected by a passphrase: load it into ssh-agent (ssh-add %s) instead", f, f)
		case err != nil:
			return nil, nil, kindErrorf(hostapi.ErrSetup, "reading SSH key %s: %w", f, err)
		}
		signers = append(signers, s)
	}
	var ag agent.ExtendedAgent
	var conn net.Conn
	if sock := os.Getenv("SSH_AUTH_SOCK"); o.Agent && sock != "" {
		// An agent that is gone (a stale socket of an old session) is
		// not an error: the key files may do.
		if c, err := net.Dial("unix", sock); err == nil {
			conn, ag = c, agent.NewClient(c)
		}
	}
	if len(signers) == 0 && ag == nil {
		return nil, nil, kindErrorf(hostapi.ErrSetup, "no SSH key to log in with: none given (--ssh-key), none of ~/.ssh/id_ed25519, id_ecdsa, id_rsa usable and no ssh-agent ($SSH_AUTH_SOCK)")
	}
	keys := func() ([]ssh.Signer, error) {
		all := signers
		if ag != nil {
			if more, err := ag.Signers(); err == nil {
				all = append(all[:len(all):len(all)], more...)
			}
		}
		return all, nil
	}
	var closer io.Closer
	if conn != nil {
		closer = conn
	}
	return []ssh.AuthMethod{ssh.PublicKeysCallback(keys)}, closer, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// dial logs in to to, through the jump host when there is one; the jump
// client (nil without one) must be closed with the host's.
func (t *Transport) dial(ctx context.Context, to target) (c, jump *ssh.Client, err error) {
	if t.jump == nil {
		c, err = t.login(ctx, to, nil)
		return c, nil, err
	}
	jump, err = t.login(ctx, *t.jump, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("reaching %s through %s: %w", to.name, t.jump.name, err)
	}
	conn, err := jump.DialContext(ctx, "tcp", to.hostport())
	if err != nil {
		jump.Close()
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("connecting to %s (%s) through %s: %w", to.name, to.hostport(), t.jump.name, ctx.Err())
		}
		return nil, nil, kindErrorf(hostapi.ErrUnreachable, "%s (%s) cannot connect to %s at %s: %w; check that the host is up, that its sshd listens on port %d and that the jump host may forward to it (sshd's AllowTcpForwarding)",
			t.jump.name, t.jump, to.name, to.hostport(), err, to.port)
	}
	c, err = t.login(ctx, to, conn)
	if err != nil {
		jump.Close()
		return nil, nil, err
	}
	return c, jump, nil
}

// login connects to to (over conn when given, else a new TCP connection)
// and logs in, checking its host key against KnownHostsFile.
func (t *Transport) login(ctx context.Context, to target, conn net.Conn) (*ssh.Client, error) {
	hctx, cancel := context.WithTimeout(ctx, t.o.ConnectTimeout)
	defer cancel()
	var proxy *proxyConn
	switch {
	case conn != nil:
	case t.o.ProxyCommand != "":
		p, err := dialProxy(t.o.ProxyCommand, to)
		if err != nil {
			return nil, err
		}
		proxy, conn = p, p
	default:
		var d net.Dialer
		c, err := d.DialContext(hctx, "tcp", to.hostport())
		if err != nil {
			return nil, t.dialError(ctx, to, err)
		}
		conn = c
	}
	// The handshake has the same deadline: a host that accepts the
	// connection but never answers (a wedged sshd) must not hang us.
	stop := context.AfterFunc(hctx, func() { conn.Close() })
	defer stop()

	known, err := t.knownHosts()
	if err != nil {
		conn.Close()
		return nil, err
	}
	var refused error
	cfg := &ssh.ClientConfig{
		User: to.user,
		Auth: t.auth,
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			refused = t.checkHostKey(known, to, remote, key)
			return refused
		},
		// Ask for the key types known_hosts has for this host: offered
		// another type first, the check would take it for a changed key.
		HostKeyAlgorithms: knownAlgorithms(known, to.hostport()),
	}
	cc, chans, reqs, err := ssh.NewClientConn(conn, to.hostport(), cfg)
	if err != nil {
		conn.Close()
		switch {
		case refused != nil:
			return nil, refused
		case proxy != nil && proxy.failed() != "":
			// What a refused TCP connection is without a proxy.
			return nil, kindErrorf(hostapi.ErrUnreachable, "cannot connect to %s at %s over SSH: %s; check that the host is up and that its sshd listens on port %d (--ssh-port)",
				to.name, to.hostport(), proxy.failed(), to.port)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, kindErrorf(hostapi.ErrForbidden, "%s (%s) did not accept our SSH keys for user %s: %w; put the public key in ~%s/.ssh/authorized_keys there, or give the right key (--ssh-key) or user (--ssh-user)",
				to.name, to.hostport(), to.user, err, to.user)
		case ctx.Err() != nil:
			return nil, fmt.Errorf("logging in to %s (%s): %w", to.name, to.hostport(), ctx.Err())
		case hctx.Err() != nil:
			return nil, kindErrorf(hostapi.ErrUnreachable, "%s (%s) accepted the connection but did not complete the SSH handshake within %s; check its sshd", to.name, to.hostport(), t.o.ConnectTimeout)
		}
		return nil, fmt.Errorf("logging in to %s (%s) over SSH as %s: %w", to.name, to.hostport(), to.user, err)
	}
	return ssh.NewClient(cc, chans, reqs), nil
}

// dialError classifies a failed TCP connection.
func (t *Transport) dialError(ctx context.Context, to target, err error) error {
	isJump := t.jump != nil && to == *t.jump
	var dns *net.DNSError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("connecting to %s (%s): %w", to.name, to.hostport(), ctx.Err())
	case errors.As(err, &dns) && dns.IsNotFound && isJump:
		return kindErrorf(hostapi.ErrSetup, "%s: its address does not resolve: %w; check --ssh-jump", to.name, err)
	case errors.As(err, &dns) && dns.IsNotFound:
		return kindErrorf(hostapi.ErrNoSuchHost, "%s: its address %s does not resolve: %w", to.name, to.host, err)
	case isJump:
		return kindErrorf(hostapi.ErrUnreachable, "cannot connect to %s at %s over SSH: %w; check that it is up and that its sshd listens on port %d (--ssh-jump [user@]host[:port])",
			to.name, to.hostport(), err, to.port)
	}
	return kindErrorf(hostapi.ErrUnreachable, "cannot connect to %s at %s over SSH: %w; check that the host is up, that its sshd listens on port %d (--ssh-port) and that no firewall is in the way, or go through a jump host (--ssh-jump)",
		to.name, to.hostport(), err, to.port)
}

// knownHosts reads KnownHostsFile afresh: a key another connection
// accepted meanwhile counts. A missing file knows no host.
func (t *Transport) knownHosts() (ssh.HostKeyCallback, error) {
	cb, err := knownhosts.New(t.o.KnownHostsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }, nil
	}
	if err != nil {
		return nil, kindErrorf(hostapi.ErrSetup, "reading known hosts %s: %w", t.o.KnownHostsFile, err)
	}
	return cb, nil
}

// checkHostKey accepts key when known_hosts has it for to; adds it when it
// has none for to and AcceptNewHostKeys; refuses it otherwise, a changed
// key always.
func (t *Transport) checkHostKey(known ssh.HostKeyCallback, to target, remote net.Addr, key ssh.PublicKey) error {
	err := known(to.hostport(), remote, key)
	var keyErr *knownhosts.KeyError
	var revoked *knownhosts.RevokedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &keyErr) && len(keyErr.Want) > 0:
		was := keyErr.Want[0]
		for _, k := range keyErr.Want {
			if k.Key.Type() == key.Type() {
				was = k // the key it replaces, rather than another type's
			}
		}
		return kindErrorf(hostapi.ErrSetup, "the host key for %s (%s) has CHANGED: %s line %d has %s %s, the host now presents %s %s. "+
			"Either the host was reinstalled or someone is in the middle; refusing to connect. "+
			"If it was reinstalled, check the new key on the host's console (ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub) and then remove the old one: ssh-keygen -R %s -f %s",
			to.name, to.hostport(), was.Filename, was.Line, was.Key.Type(), ssh.FingerprintSHA256(was.Key),
			key.Type(), ssh.FingerprintSHA256(key), keyFileType(key), quote(knownhosts.Normalize(to.hostport())), was.Filename)
	case errors.As(err, &keyErr) && t.o.AcceptNewHostKeys:
		return t.addHostKey(to, remote, key)
	case errors.As(err, &keyErr):
		return kindErrorf(hostapi.ErrSetup, "%s (%s) is not in %s; it presents the host key %s %s. "+
			"Verify that fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub), then rerun with --ssh-accept-new-host-keys, or add the key to %s yourself",
			to.name, to.hostport(), t.o.KnownHostsFile, key.Type(), ssh.FingerprintSHA256(key), keyFileType(key), t.o.KnownHostsFile)
	case errors.As(err, &revoked):
		return kindErrorf(hostapi.ErrSetup, "%s (%s) presents the host key %s, revoked in %s line %d; refusing to connect",
			to.name, to.hostport(), ssh.FingerprintSHA256(key), revoked.Revoked.Filename, revoked.Revoked.Line)
	}
	return kindErrorf(hostapi.ErrSetup, "checking the host key of %s (%s): %w", to.name, to.hostport(), err)
}

// keyFileType is the name sshd's host key file of key's type has.
func keyFileType(key ssh.PublicKey) string {
	switch key.Type() {
	case ssh.KeyAlgoED25519:
		return "ed25519"
	case ssh.KeyAlgoRSA:
		return "rsa"
	}
	if strings.HasPrefix(key.Type(), "ecdsa-") {
		return "ecdsa"
	}
	return "*"
}

// addHostKey appends key for to to KnownHostsFile, as
// StrictHostKeyChecking=accept-new does.
func (t *Transport) addHostKey(to target, remote net.Addr, key ssh.PublicKey) error {
	t.knownMu.Lock()
	defer t.knownMu.Unlock()
	// Another connection (the same jump host for two hosts) may have
	// added it meanwhile: once is enough, and a changed key still loses.
	if known, err := t.knownHosts(); err != nil {
		return err
	} else if err := known(to.hostport(), remote, key); err == nil {
		return nil
	} else if ke := (*knownhosts.KeyError)(nil); !errors.As(err, &ke) || len(ke.Want) > 0 {
		return t.checkHostKey(known, to, remote, key)
	}
	file := t.o.KnownHostsFile
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return kindErrorf(hostapi.ErrSetup, "adding the host key of %s to %s: %w", to.name, file, err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(to.hostport())}, key) + "\n"
	if raw, err := os.ReadFile(file); err == nil && len(raw) > 0 && raw[len(raw)-1] != '\n' {
		line = "\n" + line // a last line without its newline must stay whole
	}
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err == nil {
		_, err = f.WriteString(line)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return kindErrorf(hostapi.ErrSetup, "adding the host key of %s to %s: %w", to.name, file, err)
	}
	fmt.Fprintf(t.log, "      added the host key of %s (%s, %s %s) to %s\n", to.name, to.hostport(), key.Type(), ssh.FingerprintSHA256(key), file)
	return nil
}

// knownAlgorithms are the host key algorithms of the keys known_hosts has
// for hostport; for a host it does not know, OpenSSH's order, for the
// fingerprint shown (and the key added) to be the one ssh would show.
func knownAlgorithms(known ssh.HostKeyCallback, hostport string) []string {
	var keyErr *knownhosts.KeyError
	// A key of no real type matches nothing: the error lists them all.
	if err := known(hostport, probeAddr{}, probeKey{}); !errors.As(err, &keyErr) || len(keyErr.Want) == 0 {
		return []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	var algos []string
	for _, k := range keyErr.Want {
		switch k.Key.Type() {
		case ssh.KeyAlgoRSA:
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256)
		default:
			algos = append(algos, k.Key.Type())
		}
	}
	return algos
}

// probeKey and probeAddr only ask known_hosts which keys it has for a host.
type (
	probeKey  struct{}
	probeAddr struct{}
)

func (probeKey) Type() string    { return "kubectl-etcd-probe" }
func (probeKey) Marshal() []byte { return []byte("kubectl-etcd-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error {
	return errors.New("a probe key verifies nothing")
}
func (probeAddr) Network() string { return "tcp" }
func (probeAddr) String() string  { return "0.0.0.0:0" }
