package testbed

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// Proxy is the bed's stand-in for the load balancer in front of a real HA
// control plane: it accepts connections on its listeners and forwards each to
// the first apiserver whose /readyz answers 200, falling back to any backend
// that accepts TCP. It listens on 127.0.0.1 in the root namespace (for
// kubectl and tests on "the workstation") and on the bridge address inside the
// bed (the controlPlaneEndpoint that hosts join through).
type Proxy struct {
	NetnsPath string   // namespace the backends are reached from
	Backends  []string // host:port of every apiserver that may exist
	Logf      func(format string, args ...any)

	mu      sync.Mutex
	healthy map[string]bool
}

// Serve forwards connections from every listener until ctx ends.
func (p *Proxy) Serve(ctx context.Context, listeners ...net.Listener) error {
	if p.Logf == nil {
		p.Logf = log.Printf
	}
	p.healthy = map[string]bool{}
	go p.checkLoop(ctx)
	var wg sync.WaitGroup
	for _, l := range listeners {
		wg.Add(1)
		go func(l net.Listener) {
			defer wg.Done()
			go func() { <-ctx.Done(); l.Close() }()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go p.forward(ctx, c)
			}
		}(l)
	}
	wg.Wait()
	return ctx.Err()
}

func (p *Proxy) checkLoop(ctx context.Context) {
	client := &http.Client{
		Timeout: time.Second,
		Transport: &http.Transport{
			// A health probe, like a load balancer's: it checks readiness, not identity.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return DialInNetns(ctx, p.NetnsPath, addr)
			},
			DisableKeepAlives: true,
		},
	}
	for {
		for _, b := range p.Backends {
			resp, err := client.Get("https://" + b + "/readyz")
			ok := err == nil && resp.StatusCode == http.StatusOK
			if resp != nil {
				resp.Body.Close()
			}
			p.mu.Lock()
			p.healthy[b] = ok
			p.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (p *Proxy) order() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var good, rest []string
	for _, b := range p.Backends {
		if p.healthy[b] {
			good = append(good, b)
		} else {
			rest = append(rest, b)
		}
	}
	return append(good, rest...)
}

func (p *Proxy) forward(ctx context.Context, c net.Conn) {
	defer c.Close()
	var up net.Conn
	var errs []error
	for _, b := range p.order() {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := DialInNetns(dctx, p.NetnsPath, b)
		cancel()
		if err == nil {
			up = conn
			break
		}
		errs = append(errs, fmt.Errorf("%s: %w", b, err))
	}
	if up == nil {
		p.Logf("proxy: no apiserver reachable for %s: %v", c.RemoteAddr(), errs)
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); closeWrite(up); done <- struct{}{} }()
	go func() { io.Copy(c, up); closeWrite(c); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}
