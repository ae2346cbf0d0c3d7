package tunnel

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// errorStreamWait bounds how long the end of the data stream waits for the
// kubelet's error message, which travels on another stream and may arrive
// just after.
const errorStreamWait = 2 * time.Second

// maxErrorMessage bounds what is read from the error stream.
const maxErrorMessage = 64 << 10

// conn is a net.Conn over one port-forward request. The caller's side is
// one end of a net.Pipe, copied to and from the data stream by two
// goroutines: a stream has no deadlines and cannot interrupt a blocked Read,
// a pipe has both, and its synchronous hand-over keeps the stream's flow
// control (nothing is buffered that the caller has not read).
type conn struct {
	local, pipe net.Conn // the caller's end and the end the copiers use
	upgraded    streamhttp.Connection
	data        streamhttp.Stream
	errStream   streamhttp.Stream
	laddr       net.Addr
	raddr       net.Addr
	what        string // "port-forward to ns/pod (node n) for addr", for errors

	closed    chan struct{} // closed by Close
	closeOnce sync.Once

	errDone chan struct{} // closed when the error stream has ended
	errMsg  string        // what the kubelet wrote on it; set before errDone closes
	errErr  error         // why reading it failed; set before errDone closes

	mu        sync.Mutex
	remoteErr error // why the connection ended on the far side, if it failed
}

func newConn(upgraded streamhttp.Connection, data, errStream streamhttp.Stream, laddr, raddr net.Addr, what string) *conn {
	local, pipe := net.Pipe()
	c := &conn{
		local: local, pipe: pipe,
		upgraded: upgraded, data: data, errStream: errStream,
		laddr: laddr, raddr: raddr, what: what,
		closed:  make(chan struct{}),
		errDone: make(chan struct{}),
	}
	go c.readErrorStream()
	go c.down()
	go c.up()
	return c
}

// readErrorStream collects the kubelet's error message: the kubelet writes
// one when it cannot connect to the port or the copy fails, then ends both
// streams.
func (c *conn) readErrorStream() {
	msg, err := io.ReadAll(io.LimitReader(c.errStream, maxErrorMessage))
	c.errMsg, c.errErr = string(msg), err
	close(c.errDone)
}

// down copies from the pod to the caller. When the data stream ends it
// records why, if it was a failure, then ends the caller's side.
func (c *conn) down() {
	_, err := io.Copy(c.pipe, c.data)
	defer c.pipe.Close()
	if c.isClosed() {
		return
	}
	// The data stream reads io.EOF however it ended, and io.Copy's write
	// errors are the pipe's (closed by Close, or by up on a failed send,
	// already recorded). The error stream and the connection tell why.
	timer := time.NewTimer(errorStreamWait)
	defer timer.Stop()
	select {
	case <-c.errDone:
	case <-timer.C:
	case <-c.closed:
		return
	}
	select {
	case <-c.errDone:
		if c.errMsg != "" {
			c.fail(fmt.Errorf("%s: %s", c.what, c.errMsg))
		} else if c.errErr != nil {
			c.fail(fmt.Errorf("%s: reading the kubelet's error stream: %w", c.what, c.errErr))
		}
	default:
	}
	select {
	case <-c.upgraded.CloseChan():
		c.fail(fmt.Errorf("%s: lost the connection to the apiserver", c.what))
	default:
	}
	if err != nil {
		c.fail(fmt.Errorf("%s: %w", c.what, err))
	}
}

// up copies from the caller to the pod.
func (c *conn) up() {
	buf := make([]byte, 32<<10)
	for {
		n, rerr := c.pipe.Read(buf)
		if n > 0 {
			if _, werr := c.data.Write(buf[:n]); werr != nil {
				if !c.isClosed() {
					c.fail(fmt.Errorf("%s: sending: %w", c.what, werr))
				}
				c.pipe.Close()
				return
			}
		}
		if rerr != nil {
			// The caller closed (Close resets the stream) or the far side
			// ended (down closed the pipe): nothing more to send either way.
			return
		}
	}
}

// fail records the first reason the far side failed.
func (c *conn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.remoteErr == nil {
		c.remoteErr = err
	}
}

func (c *conn) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remoteErr
}

func (c *conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// Read reads from the pod's port. After the far side ends it returns io.EOF,
// or the reason it failed (the kubelet's message, a lost tunnel); after
// Close, net.ErrClosed; past a deadline, os.ErrDeadlineExceeded.
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.local.Read(p)
	if err != nil {
		err = c.explain(err)
	}
	return n, err
}

// Write writes to the pod's port; its errors are those of Read, except that
// a far side that ended cleanly gives io.ErrClosedPipe.
func (c *conn) Write(p []byte) (int, error) {
	n, err := c.local.Write(p)
	if err != nil {
		err = c.explain(err)
	}
	return n, err
}

// explain turns the pipe's errors into the connection's: net.ErrClosed
// after Close, the far side's failure when there was one.
func (c *conn) explain(err error) error {
	if errors.Is(err, io.ErrClosedPipe) && c.isClosed() {
		return net.ErrClosed
	}
	if err == io.EOF || errors.Is(err, io.ErrClosedPipe) {
		if f := c.failure(); f != nil {
			return f
		}
	}
	return err
}

// Close ends the connection: at once for the caller (a blocked Read or
// Write returns), and in the background towards the apiserver, closing the
// upgraded connection with both streams, which ends the request there and
// at the kubelet. Closing again does nothing and returns nil.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.local.Close()
		// Closing the upgraded connection resets its streams and writes a
		// GOAWAY: it may block on a tunnel that no longer moves, which must
		// not hold up the caller.
		go c.upgraded.Close()
	})
	return nil
}

func (c *conn) LocalAddr() net.Addr                { return c.laddr }
func (c *conn) RemoteAddr() net.Addr               { return c.raddr }
func (c *conn) SetDeadline(t time.Time) error      { return c.local.SetDeadline(t) }
func (c *conn) SetReadDeadline(t time.Time) error  { return c.local.SetReadDeadline(t) }
func (c *conn) SetWriteDeadline(t time.Time) error { return c.local.SetWriteDeadline(t) }

// addr names the ends of a tunnelled connection: the local end is the pod
// and port forwarded to (network "portforward/websocket" or
// "portforward/spdy"), the remote end the etcd address dialled.
type addr struct{ network, address string }

func (a addr) Network() string { return a.network }
func (a addr) String() string  { return a.address }
