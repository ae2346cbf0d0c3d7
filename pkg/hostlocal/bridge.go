package hostlocal

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// A host that booted while its etcd could not serve (a stale member cut off
// by a recovery, which stops itself) has an apiserver that never answered.
// Its kubelet then never marks its API pod source ready, and until it does
// it does not finish terminating a removed static pod — so a new etcd (or
// apiserver) static pod of the same name never starts. The bridge lets the
// local apiserver reach the cluster through 127.0.0.1:2379 for a moment: a
// plain TCP relay to a healthy member (whose serving certificate, as
// kubeadm makes it, is valid for 127.0.0.1 too), so the apiserver serves the
// cluster's current data, kubelet reaches it, and static pods can change.

// bridgeSettle is how long the bridge stays up after the apiserver is ready,
// for kubelet to list its pods and clean up the removed etcd pod.
const bridgeSettle = 15 * time.Second

// needsBridge: this host's apiserver reads only the local member, which is
// not serving, and it does not answer.
func (e *Env) needsBridge(ctx context.Context) bool {
	h, cfg := e.Host, e.Config
	servers, err := h.APIServerEtcdServers()
	if err != nil || len(servers) != 1 || servers[0] != staticpod.LocalEtcdServer(cfg) {
		return false
	}
	return h.WaitAPIServerReady(ctx, cfg, 2*time.Second) != nil
}

func (e *Env) addBridgeStep(p *plan.Plan, endpoints []string) {
	h, cfg := e.Host, e.Config
	if len(endpoints) == 0 {
		return
	}
	u, err := url.Parse(endpoints[0])
	if err != nil || u.Host == "" {
		return
	}
	target := u.Host
	listen := staticpod.LocalEtcdServer(cfg)[len("https://"):]
	p.Add("bridge apiserver", fmt.Sprintf("relay %s to %s until this host's kube-apiserver is ready (kubelet, which never reached it since boot, does not replace static pods before it has)", listen, target),
		func(ctx context.Context) (string, error) {
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return "", fmt.Errorf("listening on %s for the bridge (is an etcd still running here?): %w", listen, err)
			}
			stop := Relay(l, target)
			defer stop()
			start := time.Now()
			if err := h.WaitAPIServerReady(ctx, cfg, e.Timeouts.APIServer); err != nil {
				return "", fmt.Errorf("the local apiserver did not become ready through the bridge: %w", err)
			}
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(bridgeSettle):
			}
			return fmt.Sprintf("apiserver ready after %s; bridge closed", time.Since(start).Round(100*time.Millisecond)), nil
		})
}

// Relay forwards every connection accepted on l to target until stopped;
// stop closes the listener and every open connection.
func Relay(l net.Listener, target string) (stop func()) {
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				d, err := net.DialTimeout("tcp", target, 3*time.Second)
				if err != nil {
					c.Close()
					return
				}
				track(c, true)
				track(d, true)
				done := make(chan struct{}, 2)
				cp := func(a, b net.Conn) {
					io.Copy(a, b) // ends when either side closes
					a.Close()
					b.Close()
					done <- struct{}{}
				}
				go cp(c, d)
				go cp(d, c)
				<-done
				<-done
				track(c, false)
				track(d, false)
			}()
		}
	}()
	return func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			c.Close()
		}
	}
}
