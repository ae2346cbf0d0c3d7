package sshhost

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// proxyConn is a connection through a ProxyCommand, as ssh's: the command's
// stdin and stdout are the connection to the host it was told to reach.
// Operators use one to reach hosts behind a bastion that only runs a
// relay, a cloud CLI's tunnel, or a network namespace (the test bed).
type proxyConn struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    io.ReadCloser
	stderr *bytes.Buffer
	exited chan struct{}
	err    error // the command's end, once exited is closed
	// remote is the host the command was told to reach: known_hosts
	// wants a host:port there.
	remote proxyAddr

	closeOnce sync.Once
}

// expandProxyCommand replaces ssh's tokens: %h the host, %p the port, %r
// the user, %% a percent sign.
func expandProxyCommand(cmd string, to target) string {
	var b strings.Builder
	for i := 0; i < len(cmd); i++ {
		if cmd[i] != '%' || i+1 == len(cmd) {
			b.WriteByte(cmd[i])
			continue
		}
		i++
		switch cmd[i] {
		case 'h':
			b.WriteString(to.host)
		case 'p':
			b.WriteString(strconv.Itoa(to.port))
		case 'r':
			b.WriteString(to.user)
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(cmd[i])
		}
	}
	return b.String()
}

// dialProxy starts the ProxyCommand for to. The command lives as long as
// the connection: Close ends it.
func dialProxy(command string, to target) (*proxyConn, error) {
	cmd := exec.Command("sh", "-c", expandProxyCommand(command, to))
	// Its own process group, ended whole on Close: a relay's children
	// (one per direction) must not outlive the connection, holding its
	// pipes open.
	ownGroup(cmd)
	cmd.WaitDelay = 2 * time.Second
	c := &proxyConn{cmd: cmd, stderr: &bytes.Buffer{}, exited: make(chan struct{}), remote: proxyAddr(to.hostport())}
	var err error
	if c.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if c.out, err = cmd.StdoutPipe(); err != nil {
		return nil, err
	}
	cmd.Stderr = &lockedWriter{w: c.stderr}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the SSH proxy command %q: %w", command, err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// failed says why the proxy command ended, when it ended on its own within
// a moment: its exit and its stderr. "" while it runs.
func (c *proxyConn) failed() string {
	select {
	case <-c.exited:
	case <-time.After(time.Second):
		return ""
	}
	msg := strings.TrimSpace(c.stderr.String())
	if c.err != nil {
		msg = strings.TrimSpace(c.err.Error() + ": " + msg)
	}
	if msg == "" {
		msg = "it ended without connecting"
	}
	return fmt.Sprintf("the SSH proxy command %q failed: %s", strings.Join(c.cmd.Args[2:], " "), msg)
}

func (c *proxyConn) Read(p []byte) (int, error)  { return c.out.Read(p) }
func (c *proxyConn) Write(p []byte) (int, error) { return c.in.Write(p) }

func (c *proxyConn) Close() error {
	c.closeOnce.Do(func() {
		c.in.Close()
		select {
		case <-c.exited:
		case <-time.After(2 * time.Second):
			// A relay that does not end when its stdin closes.
			killGroup(c.cmd.Process)
			<-c.exited
		}
	})
	return nil
}

func (c *proxyConn) LocalAddr() net.Addr              { return proxyAddr("local:0") }
func (c *proxyConn) RemoteAddr() net.Addr             { return c.remote }
func (c *proxyConn) SetDeadline(time.Time) error      { return nil }
func (c *proxyConn) SetReadDeadline(time.Time) error  { return nil }
func (c *proxyConn) SetWriteDeadline(time.Time) error { return nil }
func (proxyAddr) Network() string                     { return "proxy-command" }
func (a proxyAddr) String() string                    { return string(a) }

// proxyAddr is a host:port reached through a proxy command.
type proxyAddr string

// lockedWriter lets the command's stderr be read while it is written.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
