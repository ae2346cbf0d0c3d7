//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/tunnel"
)

// etcdClientTLS builds a client TLS configuration from h's etcd CA and
// healthcheck client certificate, in memory only: the key never touches the
// test machine's disk.
func etcdClientTLS(t *testing.T, h *testbed.Host) *tls.Config {
	t.Helper()
	read := func(p string) []byte {
		b, err := h.ReadFile(p)
		if err != nil {
			t.Fatalf("reading %s on %s: %v", p, h.Name, err)
		}
		return b
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(read("/etc/kubernetes/pki/etcd/ca.crt")) {
		t.Fatal("no certificate in the etcd CA file")
	}
	cert, err := tls.X509KeyPair(read("/etc/kubernetes/pki/etcd/healthcheck-client.crt"),
		read("/etc/kubernetes/pki/etcd/healthcheck-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	// No ServerName: gRPC sets it to each endpoint's host, and etcd's serving
	// certificates carry their host's address, so that is what is verified
	// even though the bytes travel through the apiserver.
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// rawClient is an etcd client of its own over the tunnel, to one endpoint.
func rawClient(t *testing.T, endpoint string, tlsCfg *tls.Config, d *tunnel.Dialer) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		TLS:         tlsCfg,
		DialTimeout: 10 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(d.DialContext)},
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// storyTunnel: the test process lives outside the bed's network (no route to
// its hosts); it reaches the etcd members of h1 and h2 only through the
// apiserver's port-forward to their static pods, with each upgrade protocol.
// It runs after PluginScaleUp, which gave h2 its member (select both to run
// it alone: -run 'TestScaleChain/(PluginScaleUp|Tunnel)').
func storyTunnel(t *testing.T, b *testbed.Bed) {
	h1, h2 := b.Host("h1"), b.Host("h2")
	pod1, pod2 := "etcd-"+h1.NodeName(), "etcd-"+h2.NodeName()
	names, _ := voters(t, b, "h1")
	want := len(names)
	addr1, addr2 := net.JoinHostPort(h1.Address, "2379"), net.JoinHostPort(h2.Address, "2379")
	endpoints := []string{"https://" + addr1, "https://" + addr2}

	waitPodRunning(t, b, "kube-system", pod1)
	waitPodRunning(t, b, "kube-system", pod2)
	cfg, err := clientcmd.BuildConfigFromFlags("", b.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := etcdClientTLS(t, h1)

	// The members live in the bed's namespaces: this process has no
	// interface on their subnet, so what it reaches of them comes through the
	// apiserver. (No direct dial is tried: traffic from here to a private
	// address would leave for the machine's own network, never the bed.)
	_, bedNet, _ := net.ParseCIDR(b.Network())
	ifaces, _ := net.InterfaceAddrs()
	for _, a := range ifaces {
		if ip, _, err := net.ParseCIDR(a.String()); err == nil && bedNet.Contains(ip) {
			t.Fatalf("this process has an address (%s) on the bed's subnet: the test would prove nothing", a)
		}
	}

	for _, proto := range []tunnel.Protocol{tunnel.ProtocolAuto, tunnel.ProtocolWebSocket, tunnel.ProtocolSPDY} {
		t.Run(proto.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			d, err := tunnel.NewDialer(cfg, cs, tunnel.WithProtocol(proto))
			if err != nil {
				t.Fatal(err)
			}
			pods, err := d.Pods(ctx)
			if err != nil || pods[h1.Address] != pod1 || pods[h2.Address] != pod2 {
				t.Fatalf("Pods: %v, %v", pods, err)
			}

			// One connection by hand: the protocol used, and h2's etcd
			// answering a TLS handshake as h2.
			start := time.Now()
			conn, err := d.DialContext(ctx, addr2)
			if err != nil {
				t.Fatal(err)
			}
			wantNet := "portforward/websocket"
			if proto == tunnel.ProtocolSPDY {
				wantNet = "portforward/spdy"
			}
			if conn.LocalAddr().Network() != wantNet || conn.LocalAddr().String() != "kube-system/"+pod2+":2379" {
				t.Errorf("local address %s %s, want %s kube-system/%s:2379", conn.LocalAddr().Network(), conn.LocalAddr(), wantNet, pod2)
			}
			hsCfg := tlsCfg.Clone()
			hsCfg.ServerName = h2.Address
			tc := tls.Client(conn, hsCfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				t.Fatalf("TLS handshake with %s through the tunnel: %v", addr2, err)
			}
			t.Logf("%s: dial and TLS handshake with %s in %s via %s %s", proto, addr2,
				time.Since(start).Round(time.Millisecond), conn.LocalAddr().Network(), conn.LocalAddr())
			tc.Close()
			if err := conn.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := conn.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Write after Close: %v", err)
			}

			// The cluster through etcdcluster, as the plugin will use it.
			c, err := etcdcluster.New(etcdcluster.Config{Endpoints: endpoints, TLS: tlsCfg, DialContext: d.DialContext})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			members, err := c.Members(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(members) != want {
				t.Fatalf("members: %v, want %d", members, want)
			}
			statuses, err := c.Statuses(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(statuses) != want {
				t.Fatalf("%d statuses, want %d", len(statuses), want)
			}
			for _, s := range statuses {
				if !s.Healthy || s.Err != nil {
					t.Errorf("member %s at %s: %s", s.Member, s.Endpoint, s.Reason())
				} else {
					t.Logf("member %s at %s: healthy, leader %v, revision %d", s.Member, s.Endpoint, s.IsLeader, s.Revision)
				}
			}

			// A write through h1's tunnel is read through h2's.
			key, val := "/kubectl-etcd-e2e/tunnel/"+proto.String(), time.Now().Format(time.RFC3339Nano)
			if _, err := rawClient(t, endpoints[0], tlsCfg, d).Put(ctx, key, val); err != nil {
				t.Fatalf("put via %s: %v", endpoints[0], err)
			}
			resp, err := rawClient(t, endpoints[1], tlsCfg, d).Get(ctx, key)
			if err != nil {
				t.Fatalf("get via %s: %v", endpoints[1], err)
			}
			if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != val {
				t.Fatalf("get via %s: %v, want %q", endpoints[1], resp.Kvs, val)
			}
		})
	}

	d, err := tunnel.NewDialer(cfg, cs)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("unknown address", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		unknown := net.JoinHostPort(b.HostAddress(3), "2379") // h4's: a bare host, no etcd
		start := time.Now()
		_, err := d.DialContext(ctx, unknown)
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "no etcd pod in kube-system advertises "+unknown) {
			t.Fatalf("DialContext(%s): %v", unknown, err)
		}
		if took > 5*time.Second {
			t.Errorf("the error took %s", took)
		}
		t.Logf("in %s: %v", took.Round(time.Millisecond), err)
	})

	t.Run("port nothing listens on", func(t *testing.T) {
		// The tunnel opens (the kubelet connects only when asked); the
		// kubelet's refusal arrives on the first read, naming pod and node.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		closed := net.JoinHostPort(h2.Address, "2390")
		conn, err := d.DialContext(ctx, closed)
		if err != nil {
			t.Fatalf("DialContext(%s): %v", closed, err)
		}
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		if err == nil || err == io.EOF || !strings.Contains(err.Error(), "kube-system/"+pod2+" (node "+h2.NodeName()+")") {
			t.Fatalf("Read from %s: %v, want the kubelet's reason naming the pod and node", closed, err)
		}
		t.Logf("Read from %s: %v", closed, err)
	})
}
