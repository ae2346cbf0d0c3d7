package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a throw-away certificate authority and the certificates a stacked
// etcd member uses, with kubeadm's file names (as in /etc/kubernetes/pki/etcd),
// so code that locates certificates the kubeadm way can be pointed at it.
type PKI struct {
	Dir                   string
	CACert, CAKey         string // ca.crt, ca.key
	ServerCert, ServerKey string // server.crt, server.key: client-facing serving cert
	PeerCert, PeerKey     string // peer.crt, peer.key: member-to-member, both directions
	ClientCert, ClientKey string // healthcheck-client.crt/.key: what tools present
}

// NewPKI writes a fresh CA and certificates into a new temporary directory.
// Server and peer certificates are valid for 127.0.0.1 and localhost only.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	p, err := newPKI(t.TempDir())
	if err != nil {
		t.Fatalf("etcdtest: generating PKI: %v", err)
	}
	return p
}

func newPKI(dir string) (*PKI, error) {
	p := &PKI{
		Dir:        dir,
		CACert:     filepath.Join(dir, "ca.crt"),
		CAKey:      filepath.Join(dir, "ca.key"),
		ServerCert: filepath.Join(dir, "server.crt"),
		ServerKey:  filepath.Join(dir, "server.key"),
		PeerCert:   filepath.Join(dir, "peer.crt"),
		PeerKey:    filepath.Join(dir, "peer.key"),
		ClientCert: filepath.Join(dir, "healthcheck-client.crt"),
		ClientKey:  filepath.Join(dir, "healthcheck-client.key"),
	}
	// ECDSA rather than kubeadm's RSA: generation is instant, and etcd and
	// Go's TLS treat both alike.
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "etcd-ca"},
		NotBefore:             now.Add(-time.Hour), // tolerate small clock skew
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	if err := writePair(p.CACert, p.CAKey, caDER, caKey); err != nil {
		return nil, err
	}

	sans := struct {
		dns []string
		ips []net.IP
	}{[]string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}}
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	leaves := []struct {
		cert, key string
		cn        string
		usage     []x509.ExtKeyUsage
		sans      bool
	}{
		// kubeadm's server cert also allows client auth; the peer cert must,
		// since every member is a TLS client of every other.
		{p.ServerCert, p.ServerKey, "etcd-server", both, true},
		{p.PeerCert, p.PeerKey, "etcd-peer", both, true},
		{p.ClientCert, p.ClientKey, "kube-etcd-healthcheck-client", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, false},
	}
	for i, l := range leaves {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)),
			Subject:      pkix.Name{CommonName: l.cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  l.usage,
		}
		if l.sans {
			tmpl.DNSNames, tmpl.IPAddresses = sans.dns, sans.ips
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, fmt.Errorf("creating certificate %s: %w", l.cert, err)
		}
		if err := writePair(l.cert, l.key, der, key); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
}

// ClientTLS returns a TLS configuration that trusts the CA and presents the
// healthcheck-client certificate, as kubectl-etcd does on a control-plane host.
func (p *PKI) ClientTLS() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("loading client certificate %s: %w", p.ClientCert, err)
	}
	caPEM, err := os.ReadFile(p.CACert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate found in %s", p.CACert)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// CAPEM reads the CA's certificate and key, as a test installs them on a
// host (Host.InstallEtcdCA) to be one of this cluster's hosts.
func (p *PKI) CAPEM(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, err := os.ReadFile(p.CACert)
	if err != nil {
		t.Fatal(err)
	}
	if keyPEM, err = os.ReadFile(p.CAKey); err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}
