package workstation

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/podexec"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/tunnel"
)

// ControlPlaneLabel is kubeadm's mark on control-plane nodes.
const ControlPlaneLabel = "node-role.kubernetes.io/control-plane"

const controlPlaneLabel = ControlPlaneLabel

// Session is one run of the plugin against a cluster: its clients, the host
// API and the etcd tunnel. Nothing of it is written to disk.
type Session struct {
	Clientset  kubernetes.Interface
	RESTConfig *rest.Config
	// Hosts runs the host-side operations (over host pods).
	Hosts *hostapi.Client
	Out   io.Writer
	// StatusVia is how Status reads etcd; the zero value is StatusAuto.
	StatusVia StatusVia
	// SkipCertExpiry spares Status the TLS handshake per member (through the
	// apiserver's port-forward) that reads the serving certificates' expiry
	// on the exec path, for output that does not show it.
	SkipCertExpiry bool
	// Warn takes the one line Status prints when it falls back from exec
	// to a host pod (stderr, so -o json stays clean); Out when nil.
	Warn io.Writer
	// RenewClientCertBefore overrides the package's RenewClientCertBefore
	// (tests); zero keeps it.
	RenewClientCertBefore time.Duration

	dialer *tunnel.Dialer
	exec   *podexec.Runner
	tls    *tls.Config
	cert   *clientCert
}

// NewSession builds the session's clients; hosts carries the host API.
func NewSession(cs kubernetes.Interface, rc *rest.Config, hosts hostapi.Transport, out io.Writer) (*Session, error) {
	d, err := tunnel.NewDialer(rc, cs)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = io.Discard
	}
	return &Session{Clientset: cs, RESTConfig: rc, Out: out, dialer: d,
		exec:  &podexec.Runner{Client: cs, Config: rc},
		Hosts: &hostapi.Client{Transport: hosts, Out: out}}, nil
}

// reaches says whether the host transport can run a command on node n: host
// pods need its kubelet, so a NotReady Node is out of reach for them; over
// SSH it is tried (Ready lags behind a host that just came back).
func (s *Session) reaches(n Node) bool {
	return n.Ready || !s.Hosts.NeedsKubelet()
}

// etcdDownHint is what to do when the apiserver answered a read with an
// error that means it cannot read etcd (its /version still answers then):
// etcd may have lost its quorum, which only the host-local binary can see
// and fix. "" for other errors.
func etcdDownHint(err error) string {
	msg := err.Error()
	if !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err) && !apierrors.IsInternalError(err) && !apierrors.IsServiceUnavailable(err) &&
		!strings.Contains(msg, "etcdserver:") && !strings.Contains(msg, "context deadline exceeded") {
		return ""
	}
	return ". The apiserver answers but cannot read etcd: if etcd lost its quorum, run `kubectl-etcd status --local` as root on a control-plane host, " +
		"then `kubectl-etcd recover` there (docs/runbooks.md)"
}

// ControlPlaneNodes lists kubeadm's control-plane nodes, sorted by name.
func (s *Session) ControlPlaneNodes(ctx context.Context) ([]Node, error) {
	return ControlPlaneNodes(ctx, s.Clientset)
}

// ControlPlaneNodes lists kubeadm's control-plane nodes of cs, sorted by
// name, before (or without) a Session: the SSH transport needs their
// addresses to make one.
func ControlPlaneNodes(ctx context.Context, cs kubernetes.Interface) ([]Node, error) {
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: controlPlaneLabel})
	if err != nil {
		return nil, fmt.Errorf("listing control-plane nodes: %w%s", err, etcdDownHint(err))
	}
	var out []Node
	for _, n := range list.Items {
		node := Node{Name: n.Name}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP && node.Address == "" {
				node.Address = a.Address
			}
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				node.Ready = c.Status == corev1.ConditionTrue
			}
		}
		out = append(out, node)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// EtcdPodNodes lists the nodes running an etcd static pod (a manifest on the
// host), sorted.
func (s *Session) EtcdPodNodes(ctx context.Context) ([]string, error) {
	pods, err := s.Clientset.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "component=etcd,tier=control-plane"})
	if err != nil {
		return nil, fmt.Errorf("listing etcd pods: %w", err)
	}
	var out []string
	for _, p := range pods.Items {
		out = append(out, p.Spec.NodeName)
	}
	sort.Strings(out)
	return out, nil
}

// APIServerEtcdServers maps each control-plane node to its kube-apiserver's
// --etcd-servers, as the mirror pods show them.
func (s *Session) APIServerEtcdServers(ctx context.Context) (map[string]string, error) {
	pods, err := s.Clientset.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "component=kube-apiserver,tier=control-plane"})
	if err != nil {
		return nil, fmt.Errorf("listing kube-apiserver pods: %w", err)
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		for _, c := range p.Spec.Containers {
			for _, a := range c.Command {
				if v, ok := strings.CutPrefix(a, "--etcd-servers="); ok {
					out[p.Spec.NodeName] = v
				}
			}
		}
	}
	return out, nil
}

// RenewClientCertBefore: the etcd client certificate (valid an hour) is
// signed again when a TLS handshake finds less than this left. etcd checks
// it at each handshake only, but the etcd client dials anew (a member
// asked on its own, a reconnect), and a scale or a restore can run longer
// than the hour.
const RenewClientCertBefore = 10 * time.Minute

// Credentials returns TLS for etcd with a key made in this process's memory
// and a one-hour certificate signed by the etcd CA on one of the member
// hosts (through a host pod), signed again for the same key by a handshake
// that finds it near its end (see RenewClientCertBefore). The key never
// leaves this process; the CA key never leaves its host.
func (s *Session) Credentials(ctx context.Context, hosts []string) (*tls.Config, error) {
	if s.tls != nil {
		return s.tls, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "kubectl-etcd"}}, key)
	if err != nil {
		return nil, err
	}
	cc := &clientCert{sign: s.Hosts.SignClientCert, hosts: hosts, csr: csr, key: key, renewBefore: s.renewBefore()}
	pool, err := cc.signed(ctx)
	if err != nil {
		return nil, err
	}
	s.cert = cc
	s.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, GetClientCertificate: cc.get}
	return s.tls, nil
}

func (s *Session) renewBefore() time.Duration {
	if s.RenewClientCertBefore > 0 {
		return s.RenewClientCertBefore
	}
	return RenewClientCertBefore
}

// clientCert is the session's etcd client certificate, signed again near
// its end. Handshakes run concurrently: mu guards it.
type clientCert struct {
	sign        func(ctx context.Context, node string, csrDER []byte) (*hostapi.SignedClientCert, error)
	hosts       []string
	csr         []byte
	key         crypto.Signer
	renewBefore time.Duration

	mu       sync.Mutex
	cert     *tls.Certificate // with Leaf set
	renewing bool             // a renewal runs
	tried    time.Time        // when the last renewal started
}

// signed has the first host that can sign the CSR do it, keeps the
// certificate and returns the CA pool the hosts answered with.
func (c *clientCert) signed(ctx context.Context) (*x509.CertPool, error) {
	var errs []error
	for _, h := range c.hosts {
		signed, err := c.sign(ctx, h, c.csr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		blk, _ := pem.Decode([]byte(signed.CertificatePEM))
		if blk == nil {
			errs = append(errs, fmt.Errorf("on %s: no certificate in the answer", h))
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			errs = append(errs, fmt.Errorf("on %s: the certificate in the answer: %w", h, err))
			continue
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(signed.CAPEM)) {
			errs = append(errs, fmt.Errorf("on %s: no CA in the answer", h))
			continue
		}
		c.mu.Lock()
		c.cert = &tls.Certificate{Certificate: [][]byte{blk.Bytes}, PrivateKey: c.key, Leaf: cert}
		c.mu.Unlock()
		return pool, nil
	}
	return nil, fmt.Errorf("getting an etcd client certificate signed on a member host: %w", errors.Join(errs...))
}

// get is the TLS config's GetClientCertificate: the current certificate,
// with a renewal started in the background when it is near its end. Not in
// the handshake itself: signing runs a host pod, seconds that would stall
// the dial (and every concurrent one). A renewal that fails leaves the
// current certificate in use, still valid until its end; one is tried at
// most once a minute.
func (c *clientCert) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Until(c.cert.Leaf.NotAfter) < c.renewBefore && !c.renewing && time.Since(c.tried) > time.Minute {
		c.renewing, c.tried = true, time.Now()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_, _ = c.signed(ctx)
			c.mu.Lock()
			c.renewing = false
			c.mu.Unlock()
		}()
	}
	return c.cert, nil
}

// Etcd connects to the members at endpoints through the apiserver, and
// proves one answers. Its calls are bounded more generously than on a host:
// each goes through the apiserver's port-forward.
func (s *Session) Etcd(ctx context.Context, tlsCfg *tls.Config, endpoints []string) (*etcdcluster.Client, error) {
	c, err := etcdcluster.New(etcdcluster.Config{Endpoints: endpoints, TLS: tlsCfg, DialContext: s.dialer.DialContext, DialTimeout: 10 * time.Second,
		CallTimeout: 20 * time.Second, ChangeTimeout: time.Minute})
	if err != nil {
		return nil, err
	}
	if _, err := c.Members(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("reaching etcd through the apiserver (%s): %w", strings.Join(endpoints, ", "), err)
	}
	return c, nil
}

// EndpointsOf gives the client URLs of the nodes' members (kubeadm's layout).
func EndpointsOf(nodes []Node, onNodes []string) []string {
	want := map[string]bool{}
	for _, n := range onNodes {
		want[n] = true
	}
	var out []string
	for _, n := range nodes {
		if want[n.Name] && n.Address != "" {
			out = append(out, "https://"+net.JoinHostPort(n.Address, "2379"))
		}
	}
	return out
}
