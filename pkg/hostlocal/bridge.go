package hostlocal

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

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

// needsBridge: this host's apiserver reads only the local member, which is
// not serving, and it does not answer.
func (e *Env) needsBridge(ctx context.Context) bool {
	h, cfg := e.Host, e.Config
	servers, err := h.APIServerEtcdServers()
	if err != nil || len(servers) != 1 || servers[0] != staticpod.LocalEtcdServer(cfg) {
		return false
	}
	return !h.APIServerReady(cfg)
}

// bridge is an open relay, held across the steps that follow its own: a
// settle time after the apiserver answered was not always enough for
// kubelet to sync (hack/bench-mttr.sh saw a join's new etcd pod never start
// after the bridge closed, TestPluginMembers a leave's apiserver never
// restarted). So it closes only once the change kubelet had to be synced
// for has happened: for leave, the apiserver replaced; for join, kubelet
// started the new etcd container (which needs the port: it fails to bind
// once and kubelet restarts it some 10 s later).
type bridge struct {
	mu     sync.Mutex
	stop   func() // nil: not open (yet, or any more)
	opened time.Time
}

// Close closes the relay; safe to call more than once, or when it never opened.
func (b *bridge) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stop != nil {
		b.stop()
		b.stop = nil
	}
}

// Open says whether the relay is open, and since when.
func (b *bridge) Open() (bool, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stop != nil, b.opened
}

// kubeletSyncWait bounds the wait for a node-lease renewal through the
// bridge: kubelet backs off up to 30 s between attempts to reach its apiserver.
const kubeletSyncWait = 90 * time.Second

// bridgeSettle is how long the bridge step waits after that renewal, for
// kubelet's pod informer to list (a renewal shows the connection, not yet
// the informer).
const bridgeSettle = 15 * time.Second

// addBridgeStep adds the bridge step. The relay stays open after the step
// until a later step closes it, or the plan ends. With waitSync, the step
// also waits for a sign that kubelet has synced: needed when the next step
// replaces the apiserver itself (leave), which takes the bridged API away
// from kubelet; join's next steps leave the apiserver up until kubelet has
// started the new etcd, which is the proof it waits for instead.
func (e *Env) addBridgeStep(p *plan.Plan, endpoints []string, waitSync bool) *bridge {
	h, cfg := e.Host, e.Config
	b := &bridge{}
	if len(endpoints) == 0 {
		return b
	}
	u, err := url.Parse(endpoints[0])
	if err != nil || u.Host == "" {
		return b
	}
	target := u.Host
	listen := staticpod.LocalEtcdServer(cfg)[len("https://"):]
	p.Finally(b.Close)
	p.Add("bridge apiserver", fmt.Sprintf("relay %s to %s until kubelet has acted on the next change (kubelet, which never reached this host's kube-apiserver since boot, does not replace static pods before it has)", listen, target),
		func(ctx context.Context) (string, error) {
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return "", fmt.Errorf("listening on %s for the bridge (is an etcd still running here?): %w", listen, err)
			}
			start := time.Now()
			b.mu.Lock()
			b.stop, b.opened = Relay(l, target), start
			b.mu.Unlock()
			if err := h.WaitAPIServerReady(ctx, cfg, e.Timeouts.APIServer); err != nil {
				b.Close()
				return "", fmt.Errorf("the local apiserver did not become ready through the bridge: %w", err)
			}
			note := fmt.Sprintf("apiserver ready after %s", time.Since(start).Round(100*time.Millisecond))
			if waitSync {
				if err := WaitLeaseRenewed(ctx, h, cfg, start, kubeletSyncWait); err != nil {
					note += "; " + err.Error()
				} else {
					note += fmt.Sprintf(", kubelet renewed its node lease after %s", time.Since(start).Round(100*time.Millisecond))
				}
				select {
				case <-ctx.Done():
					return "", ctx.Err()
				case <-time.After(bridgeSettle):
				}
			}
			return note + "; the bridge stays open", nil
		})
	return b
}

// LocalAPIClient is a client of this host's own kube-apiserver (not the load
// balancer: that one may serve other hosts' views) with the host's admin.conf.
func LocalAPIClient(h *staticpod.Host, cfg *staticpod.Config) (kubernetes.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", h.Path(filepath.Join(h.KubernetesDir, "admin.conf")))
	if err != nil {
		return nil, fmt.Errorf("reading this host's admin.conf: %w", err)
	}
	rc.Host = fmt.Sprintf("https://127.0.0.1:%d", cfg.Init.LocalAPIEndpoint.BindPort)
	rc.TLSClientConfig.ServerName = "kubernetes" // in every kubeadm apiserver certificate
	rc.Timeout = 3 * time.Second
	return kubernetes.NewForConfig(rc)
}

// WaitLeaseRenewed waits until this host's kubelet has renewed its node
// lease (kube-node-lease/<node>) through the local apiserver after since.
func WaitLeaseRenewed(ctx context.Context, h *staticpod.Host, cfg *staticpod.Config, since time.Time, timeout time.Duration) error {
	cs, err := LocalAPIClient(h, cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		lease, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, cfg.NodeName(), metav1.GetOptions{})
		if err == nil && lease.Spec.RenewTime != nil && lease.Spec.RenewTime.After(since) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubelet had not renewed its node lease kube-node-lease/%s within %s (last error: %v)", cfg.NodeName(), timeout, err)
		case <-time.After(time.Second):
		}
	}
}

// WaitPod polls this host's apiserver for the pod kube-system/name (a
// kubelet mirror pod) until done says the answer (the pod, or the error
// getting it) is the one waited for; it fails after timeout.
func WaitPod(ctx context.Context, h *staticpod.Host, cfg *staticpod.Config, name string, timeout time.Duration, done func(*corev1.Pod, error) bool) error {
	cs, err := LocalAPIClient(h, cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		pod, err := cs.CoreV1().Pods("kube-system").Get(ctx, name, metav1.GetOptions{})
		if done(pod, err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for pod kube-system/%s on this host's apiserver: %w (last: %v)", name, ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
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
