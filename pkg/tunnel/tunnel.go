// Package tunnel reaches etcd members through the Kubernetes apiserver: it
// port-forwards to the etcd static pod of the member's host, so the
// workstation needs no route to the control-plane hosts, only the
// apiserver, as `kubectl port-forward` does. It is what the kubectl plugin
// plugs into etcdcluster.Config.DialContext.
//
// Each dial opens its own upgraded connection to the apiserver carrying one
// port-forward request (an error stream and a data stream). Streams sharing
// one connection are not independent: spdystream hands a stream's data to
// its reader synchronously from a few shared frame workers, so a caller
// that stops reading one connection could stall the others on it. Dials are rare (gRPC keeps its
// connections), so one upgrade each costs little and keeps them apart.
package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

const (
	// Namespace is where kubeadm's static pods, etcd among them, are mirrored.
	Namespace = metav1.NamespaceSystem
	// EtcdSelector selects kubeadm's etcd static pods.
	EtcdSelector = "component=etcd,tier=control-plane"
	// AdvertiseClientURLsAnnotation is set by kubeadm on its etcd pods to the
	// member's --advertise-client-urls.
	AdvertiseClientURLsAnnotation = "kubeadm.kubernetes.io/etcd.advertise-client-urls"
)

// Protocol is how the port-forward request is upgraded.
type Protocol int

const (
	// ProtocolAuto tries WebSocket first and falls back to SPDY when the
	// apiserver (or a proxy in front of it) refuses the WebSocket upgrade,
	// as kubectl port-forward does. The default.
	ProtocolAuto Protocol = iota
	// ProtocolWebSocket tunnels the SPDY streams through a WebSocket
	// (apiservers 1.31 and newer, feature PortForwardWebsockets).
	ProtocolWebSocket
	// ProtocolSPDY upgrades the request to SPDY/3.1 directly, which every
	// apiserver serves but which is deprecated (KEP-4006) and which proxies
	// that only know WebSocket upgrades do not pass.
	ProtocolSPDY
)

func (p Protocol) String() string {
	switch p {
	case ProtocolAuto:
		return "auto"
	case ProtocolWebSocket:
		return "websocket"
	case ProtocolSPDY:
		return "spdy"
	}
	return "Protocol(" + strconv.Itoa(int(p)) + ")"
}

// Option changes how a Dialer works.
type Option func(*Dialer)

// WithProtocol chooses how port-forward requests are upgraded; the default
// is ProtocolAuto.
func WithProtocol(p Protocol) Option { return func(d *Dialer) { d.protocol = p } }

// Dialer opens connections to etcd members' client ports through the
// apiserver's port-forward. It is safe for concurrent use.
type Dialer struct {
	config    *rest.Config
	clientset kubernetes.Interface
	base      *url.URL // the apiserver, with any path prefix of config.Host
	protocol  Protocol
}

// NewDialer returns a dialer that finds etcd pods with clientset and
// port-forwards to them with restConfig's address and credentials.
func NewDialer(restConfig *rest.Config, clientset kubernetes.Interface, opts ...Option) (*Dialer, error) {
	if restConfig == nil || clientset == nil {
		return nil, errors.New("tunnel: a REST config and a clientset are both required")
	}
	base, _, err := rest.DefaultServerUrlFor(restConfig)
	if err != nil {
		return nil, fmt.Errorf("tunnel: apiserver address %q: %w", restConfig.Host, err)
	}
	d := &Dialer{config: restConfig, clientset: clientset, base: base}
	for _, o := range opts {
		o(d)
	}
	switch d.protocol {
	case ProtocolAuto, ProtocolWebSocket, ProtocolSPDY:
	default:
		return nil, fmt.Errorf("tunnel: unknown protocol %s", d.protocol)
	}
	return d, nil
}

// Pods maps the hosts of the etcd pods' advertised client URLs (or, for a
// pod without kubeadm's annotation, its pod IP, which is its node's address
// as etcd uses the host network) to the pod names.
func (d *Dialer) Pods(ctx context.Context) (map[string]string, error) {
	pods, err := d.list(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range pods {
		hosts := advertisedHosts(&p)
		if len(hosts) == 0 && p.Status.PodIP != "" {
			hosts = []string{p.Status.PodIP}
		}
		for _, h := range hosts {
			out[h] = p.Name
		}
	}
	return out, nil
}

// DialContext opens a connection to addr, the host:port of an etcd member's
// client URL, through the etcd pod that advertises that host: the address
// only selects the pod and the port; the connection is made by the pod's
// node to the port in the pod's (host) network. ctx bounds finding the pod
// and opening the tunnel, not the connection's life.
//
// A successful dial means the tunnel is open, not that the member listens:
// if nothing accepts on the port, the first Read returns the kubelet's
// reason (connection refused), naming the pod and its node.
func (d *Dialer) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("etcd address %q: %w", addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("etcd address %q: invalid port %q", addr, portStr)
	}
	pods, err := d.list(ctx)
	if err != nil {
		return nil, fmt.Errorf("finding the etcd pod for %s: %w", addr, err)
	}
	pod, err := podFor(pods, host)
	if err != nil {
		return nil, fmt.Errorf("finding the etcd pod for %s: %w", addr, err)
	}
	if pod == nil {
		// The member's mirror pod may be missing for a while (its kubelet
		// recreates it only once the host's apiserver is back, e.g. right
		// after a replace): any host-network control-plane pod of that
		// host reaches the same port.
		if pod, err = d.hostNetworkPod(ctx, host); err != nil {
			return nil, fmt.Errorf("finding a pod on %s for %s: %w", host, addr, err)
		}
	}
	if pod == nil {
		return nil, fmt.Errorf("no etcd pod in %s advertises %s (%s), and no host-network control-plane pod runs there", Namespace, addr, describePods(pods))
	}
	return d.open(ctx, target{namespace: pod.Namespace, pod: pod.Name, node: pod.Spec.NodeName, addr: addr, port: uint16(port)})
}

// DialPod opens a connection to port in the (host) network of the etcd
// pod named pod on node, without looking the pod up: for a caller that has
// just listed the pods, and a port on the host's loopback (etcd's metrics
// listener), which no client URL names.
func (d *Dialer) DialPod(ctx context.Context, pod, node string, port uint16) (net.Conn, error) {
	if port == 0 {
		return nil, fmt.Errorf("dialing pod %s/%s: no port", Namespace, pod)
	}
	return d.open(ctx, target{namespace: Namespace, pod: pod, node: node, addr: net.JoinHostPort("localhost", strconv.Itoa(int(port))), port: port})
}

// open opens the tunnel to t.
func (d *Dialer) open(ctx context.Context, t target) (net.Conn, error) {
	// Neither the upgrade request nor the stream set-up can be interrupted
	// (client-go's dialers take no context), so they run aside: a caller
	// whose context ends gets its answer at once, and what they open after
	// that is closed.
	type result struct {
		conn *conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := d.forward(t)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("%s: %w", t, r.err)
		}
		return r.conn, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, fmt.Errorf("%s: %w", t, context.Cause(ctx))
	}
}

// target is the pod a dial goes to, and names it in errors.
type target struct {
	namespace, pod, node string
	addr                 string
	port                 uint16
}

func (t target) String() string {
	return fmt.Sprintf("port-forward to %s/%s (node %s) for %s", t.namespace, t.pod, t.node, t.addr)
}

func (d *Dialer) list(ctx context.Context) ([]corev1.Pod, error) {
	l, err := d.clientset.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: EtcdSelector})
	if err != nil {
		return nil, fmt.Errorf("listing pods %s in %s: %w", EtcdSelector, Namespace, err)
	}
	return l.Items, nil
}

// hostNetworkPod finds a running host-network control-plane pod (kubeadm's
// tier=control-plane static pods) on the host with address host.
func (d *Dialer) hostNetworkPod(ctx context.Context, host string) (*corev1.Pod, error) {
	l, err := d.clientset.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: "tier=control-plane"})
	if err != nil {
		return nil, fmt.Errorf("listing control-plane pods in %s: %w", Namespace, err)
	}
	for i := range l.Items {
		p := &l.Items[i]
		if p.Spec.HostNetwork && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning &&
			slices.ContainsFunc(podIPs(p), func(h string) bool { return sameHost(h, host) }) {
			return p, nil
		}
	}
	return nil, nil
}

// podFor picks the pod serving host: the one advertising it in kubeadm's
// annotation, else the one whose pod or host IP it is. It returns nil if
// none does, and an error if several do and running state cannot decide.
func podFor(pods []corev1.Pod, host string) (*corev1.Pod, error) {
	var byURL, byIP []*corev1.Pod
	for i := range pods {
		p := &pods[i]
		if slices.ContainsFunc(advertisedHosts(p), func(h string) bool { return sameHost(h, host) }) {
			byURL = append(byURL, p)
		}
		if slices.ContainsFunc(podIPs(p), func(h string) bool { return sameHost(h, host) }) {
			byIP = append(byIP, p)
		}
	}
	for _, set := range [][]*corev1.Pod{byURL, byIP} {
		if len(set) == 0 {
			continue
		}
		if len(set) == 1 {
			return set[0], nil
		}
		// Two pods for one address: a node renamed or readdressed leaves a
		// stale mirror pod behind. The running one is the member.
		running := slices.DeleteFunc(slices.Clone(set), func(p *corev1.Pod) bool {
			return p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning
		})
		if len(running) == 1 {
			return running[0], nil
		}
		var names []string
		for _, p := range set {
			names = append(names, p.Name+" on "+p.Spec.NodeName)
		}
		return nil, fmt.Errorf("etcd pods %s in %s all serve host %s", strings.Join(names, ", "), Namespace, host)
	}
	return nil, nil
}

// advertisedHosts are the hosts of the client URLs kubeadm recorded on the pod.
func advertisedHosts(p *corev1.Pod) []string {
	var out []string
	for _, s := range strings.Split(p.Annotations[AdvertiseClientURLsAnnotation], ",") {
		if u, err := url.Parse(strings.TrimSpace(s)); err == nil && u.Hostname() != "" {
			out = append(out, u.Hostname())
		}
	}
	return out
}

func podIPs(p *corev1.Pod) []string {
	out := []string{p.Status.PodIP, p.Status.HostIP}
	for _, ip := range p.Status.PodIPs {
		out = append(out, ip.IP)
	}
	for _, ip := range p.Status.HostIPs {
		out = append(out, ip.IP)
	}
	return slices.DeleteFunc(out, func(s string) bool { return s == "" })
}

// sameHost compares IP addresses by value (an IPv6 address has many
// spellings) and names as written.
func sameHost(a, b string) bool {
	ia, errA := netip.ParseAddr(a)
	ib, errB := netip.ParseAddr(b)
	if errA == nil && errB == nil {
		return ia.Unmap() == ib.Unmap()
	}
	return strings.EqualFold(a, b)
}

// describePods lists the etcd pods and what they advertise, for the error
// when none matches.
func describePods(pods []corev1.Pod) string {
	if len(pods) == 0 {
		return "there are no pods " + EtcdSelector
	}
	var parts []string
	for i := range pods {
		p := &pods[i]
		what := p.Annotations[AdvertiseClientURLsAnnotation]
		if what == "" {
			what = "pod IP " + p.Status.PodIP
		}
		parts = append(parts, fmt.Sprintf("%s on %s: %s", p.Name, p.Spec.NodeName, what))
	}
	return "etcd pods: " + strings.Join(parts, "; ")
}

// forward opens an upgraded connection to the pod's portforward subresource
// and one port-forward request on it.
func (d *Dialer) forward(t target) (*conn, error) {
	u := d.base.JoinPath("api", "v1", "namespaces", t.namespace, "pods", t.pod, "portforward")
	upgraded, proto, err := d.upgrade(u)
	if err != nil {
		return nil, err
	}
	headers := http.Header{}
	headers.Set(corev1.PortHeader, strconv.Itoa(int(t.port)))
	// The kubelet pairs a request's error and data streams by this ID; the
	// connection carries a single request.
	headers.Set(corev1.PortForwardRequestIDHeader, "0")
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	errStream, err := upgraded.CreateStream(headers)
	if err != nil {
		upgraded.Close()
		return nil, fmt.Errorf("creating the error stream: %w", err)
	}
	// Only the kubelet writes on the error stream; half-close our side.
	if err := errStream.Close(); err != nil {
		upgraded.Close()
		return nil, fmt.Errorf("closing the error stream for writing: %w", err)
	}
	// A stream keeps its header map: give the data stream its own.
	headers = headers.Clone()
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := upgraded.CreateStream(headers)
	if err != nil {
		upgraded.Close()
		return nil, fmt.Errorf("creating the data stream: %w", err)
	}
	local := addr{network: "portforward/" + proto.String(), address: fmt.Sprintf("%s/%s:%d", t.namespace, t.pod, t.port)}
	remote := addr{network: "tcp", address: t.addr}
	return newConn(upgraded, data, errStream, local, remote, t.String()), nil
}

// upgrade opens the upgraded connection with the configured protocol,
// falling back from WebSocket to SPDY only when the upgrade itself was
// refused (not, say, when the pod does not exist).
func (d *Dialer) upgrade(u *url.URL) (streamhttp.Connection, Protocol, error) {
	var wsErr error
	if d.protocol != ProtocolSPDY {
		c, err := d.upgradeWith(ProtocolWebSocket, u)
		if err == nil || d.protocol == ProtocolWebSocket ||
			!(streamhttp.IsUpgradeFailure(err) || streamhttp.IsHTTPSProxyError(err)) {
			return c, ProtocolWebSocket, err
		}
		wsErr = err
	}
	c, err := d.upgradeWith(ProtocolSPDY, u)
	if err != nil && wsErr != nil {
		err = fmt.Errorf("%w (tried after: %v)", err, wsErr)
	}
	return c, ProtocolSPDY, err
}

// upgradeWith makes the round trippers afresh each time: both client-go
// upgrade round trippers keep the connection of their last round trip and
// must not be reused or shared between dials.
func (d *Dialer) upgradeWith(p Protocol, u *url.URL) (streamhttp.Connection, error) {
	var dialer streamhttp.Dialer
	switch p {
	case ProtocolWebSocket:
		var err error
		if dialer, err = portforward.NewSPDYOverWebsocketDialerForStreaming(u, d.config); err != nil {
			return nil, fmt.Errorf("websocket upgrade: %w", err)
		}
	default:
		transport, upgrader, err := spdy.RoundTripperFor(d.config)
		if err != nil {
			return nil, fmt.Errorf("spdy upgrade: %w", err)
		}
		dialer = spdy.NewDialerForStreaming(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	}
	c, proto, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		return nil, fmt.Errorf("%s upgrade: %w", p, err)
	}
	if proto != portforward.PortForwardProtocolV1Name {
		c.Close()
		return nil, fmt.Errorf("%s upgrade: the server chose protocol %q, not %q", p, proto, portforward.PortForwardProtocolV1Name)
	}
	return c, nil
}
