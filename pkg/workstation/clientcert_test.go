package workstation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// signer is a host API transport that answers sign-client-cert the way a
// host does, with the host's own signing code and a real etcd CA made by
// kubeadm's phases on a temporary host; fail makes it fail.
type signer struct {
	h   *staticpod.Host
	cfg *staticpod.Config

	mu    sync.Mutex
	calls int
	fail  bool
}

func (s *signer) Exec(_ context.Context, _ string, call hostapi.Call, _ io.Reader, stdout, _ io.Writer) error {
	s.mu.Lock()
	s.calls++
	fail := s.fail
	s.mu.Unlock()
	if fail {
		return errors.New("the kubelet on node cp-1 cannot start pods")
	}
	i := slices.Index(call.Argv, "--csr-base64")
	if call.Argv[0] != "sign-client-cert" || i < 0 {
		return errors.New("not a sign-client-cert call")
	}
	der, err := base64.StdEncoding.DecodeString(call.Argv[i+1])
	if err != nil {
		return err
	}
	signed, err := s.h.SignClientCSR(s.cfg, der, time.Hour)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(signed)
}

func (s *signer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// TestClientCertRenewed: a handshake that finds the etcd client certificate
// near its end (here: RenewClientCertBefore longer than its hour) starts a
// renewal in the background, for the same key; the next handshake presents
// the new certificate to a server that checks it against the etcd CA. A
// renewal that fails leaves the current certificate in use, and is not
// retried at every handshake.
func TestClientCertRenewed(t *testing.T) {
	h := staticpod.NewHost(t.TempDir())
	cfgFile := filepath.Join(t.TempDir(), "kubeadm.yaml")
	os.WriteFile(cfgFile, []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.2\n"), 0o600)
	cfg, err := h.LoadConfig(context.Background(), staticpod.ConfigOptions{ConfigFile: cfgFile, NodeName: "cp-1", AdvertiseAddress: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.EnsureCerts(cfg, true); err != nil {
		t.Fatal(err)
	}
	tr := &signer{h: h, cfg: cfg}
	s := &Session{Hosts: &hostapi.Client{Transport: tr}, RenewClientCertBefore: 2 * time.Hour}
	clientTLS, err := s.Credentials(context.Background(), []string{"cp-1"})
	if err != nil {
		t.Fatal(err)
	}

	// A server that requires a client certificate of the etcd CA, as etcd does.
	pki := filepath.Join(h.Path(cfg.CertDir()), "etcd")
	serverCert, err := tls.LoadX509KeyPair(filepath.Join(pki, "server.crt"), filepath.Join(pki, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(filepath.Join(pki, "ca.crt"))
	cas := x509.NewCertPool()
	cas.AppendCertsFromPEM(caPEM)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: cas})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serials := make(chan string, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if err := tc.Handshake(); err == nil {
				serials <- tc.ConnectionState().PeerCertificates[0].SerialNumber.String()
			} else {
				serials <- "handshake failed: " + err.Error()
			}
			tc.Close()
		}
	}()
	handshake := func() string {
		t.Helper()
		cfg := clientTLS.Clone()
		cfg.ServerName = "localhost"
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cfg)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		c.Close()
		return <-serials
	}

	first := handshake()
	deadline := time.Now().Add(10 * time.Second)
	for tr.count() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no renewal started: %d sign calls", tr.count())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var second string
	for second = handshake(); second == first && time.Now().Before(deadline); second = handshake() {
		time.Sleep(20 * time.Millisecond)
	}
	if second == first {
		t.Fatalf("the renewed certificate was never presented: serial %s both times", first)
	}

	// The host cannot sign now: the renewal fails, the current certificate
	// stays in use, and handshakes do not start a renewal each.
	tr.mu.Lock()
	tr.fail, tr.calls = true, 0
	tr.mu.Unlock()
	s.cert.mu.Lock()
	s.cert.tried = time.Time{} // the last renewal a minute ago or more
	s.cert.mu.Unlock()
	if got := handshake(); got != second {
		t.Errorf("the handshake that starts a renewal presented %s, want the current %s", got, second)
	}
	for tr.count() < 1 || renewing(s.cert) {
		if time.Now().After(deadline) {
			t.Fatal("the failing renewal never ran")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 3 {
		if got := handshake(); got != second {
			t.Errorf("after a failed renewal the handshake presented %s, want the current %s", got, second)
		}
	}
	if n := tr.count(); n != 1 {
		t.Errorf("%d renewals tried in four handshakes within a minute, want one", n)
	}
}

func renewing(c *clientCert) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.renewing
}
