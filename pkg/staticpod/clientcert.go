package staticpod

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	certutil "k8s.io/client-go/util/cert"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pkiutil"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// EphemeralClientTLS signs, with the etcd CA on this host, a short-lived
// client certificate whose key exists only in this process's memory. Verbs
// use it to talk to the cluster before (or without) writing any file, so a
// dry run can look at the cluster and still change nothing.
func (h *Host) EphemeralClientTLS(cfg *Config) (*tls.Config, error) {
	pkiDir := h.Path(cfg.CertDir())
	caCert, caKey, err := pkiutil.TryLoadCertAndKeyFromDisk(pkiDir, kubeadmconstants.EtcdCACertAndKeyBaseName)
	if err != nil {
		return nil, fmt.Errorf("%w: loading %s: %v", ErrNoEtcdCA, filepath.Join(cfg.CertDir(), kubeadmconstants.EtcdCACertName), err)
	}
	now := time.Now()
	cert, key, err := pkiutil.NewCertAndKey(caCert, caKey, &pkiutil.CertConfig{
		Config: certutil.Config{
			CommonName: "kubectl-etcd",
			Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			NotBefore:  now.Add(-5 * time.Minute),
		},
		NotAfter:            now.Add(time.Hour),
		EncryptionAlgorithm: kubeadmapi.EncryptionAlgorithmECDSAP256,
	})
	if err != nil {
		return nil, fmt.Errorf("signing an ephemeral etcd client certificate: %w", err)
	}
	return clientTLS(caCert, cert, key), nil
}

// clientTLS trusts ca and presents cert with key.
func clientTLS(ca, cert *x509.Certificate, key crypto.Signer) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}},
		MinVersion:   tls.VersionTLS12,
	}
}

// publicKeyOnly lets kubeadm's certificate code sign for a key whose private
// half never came here (it stays in the workstation's memory).
type publicKeyOnly struct{ pub crypto.PublicKey }

func (p publicKeyOnly) Public() crypto.PublicKey { return p.pub }
func (p publicKeyOnly) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("no private key here")
}

// SignClientCSR signs, with the etcd CA on this host, a client certificate
// for the public key of a certificate request made elsewhere: the plugin's
// way to talk to etcd with a key that exists only in its memory. The subject
// is fixed (the request's is ignored) and the validity short.
func (h *Host) SignClientCSR(cfg *Config, csrDER []byte, validity time.Duration) (*hostapi.SignedClientCert, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("parsing the certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("the certificate request is not signed by its own key: %w", err)
	}
	if validity <= 0 || validity > 24*time.Hour {
		return nil, fmt.Errorf("client certificate validity %s out of range (0, 24h]", validity)
	}
	caCert, caKey, err := pkiutil.TryLoadCertAndKeyFromDisk(h.Path(cfg.CertDir()), kubeadmconstants.EtcdCACertAndKeyBaseName)
	if err != nil {
		return nil, fmt.Errorf("%w: loading %s: %v", ErrNoEtcdCA, filepath.Join(cfg.CertDir(), kubeadmconstants.EtcdCACertName), err)
	}
	now := time.Now()
	cert, err := pkiutil.NewSignedCert(&pkiutil.CertConfig{
		Config: certutil.Config{
			CommonName: "kubectl-etcd",
			Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			NotBefore:  now.Add(-5 * time.Minute),
		},
		NotAfter: now.Add(validity),
	}, publicKeyOnly{csr.PublicKey}, caCert, caKey, false)
	if err != nil {
		return nil, fmt.Errorf("signing the client certificate: %w", err)
	}
	return &hostapi.SignedClientCert{
		CertificatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		CAPEM:          string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw})),
		NotAfter:       cert.NotAfter,
	}, nil
}

// HealthcheckClientTLS is kubeadm's own etcd client certificate of this
// host (etcd/healthcheck-client.crt and .key, issued with the others by
// kubeadm and renewed with them) with the etcd CA certificate: for a
// process that is given those files and not the CA key (the backup
// CronJob's pods).
func (h *Host) HealthcheckClientTLS(cfg *Config) (*tls.Config, error) {
	pkiDir := h.Path(cfg.CertDir())
	cert, key, err := pkiutil.TryLoadCertAndKeyFromDisk(pkiDir, kubeadmconstants.EtcdHealthcheckClientCertAndKeyBaseName)
	if err != nil {
		return nil, fmt.Errorf("loading kubeadm's etcd client certificate %s: %w", filepath.Join(cfg.CertDir(), kubeadmconstants.EtcdHealthcheckClientCertName), err)
	}
	if now := time.Now(); now.After(cert.NotAfter) {
		return nil, fmt.Errorf("kubeadm's etcd client certificate %s expired at %s (`kubectl etcd certs renew` renews it)",
			filepath.Join(cfg.CertDir(), kubeadmconstants.EtcdHealthcheckClientCertName), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	ca, err := pkiutil.TryLoadCertFromDisk(pkiDir, kubeadmconstants.EtcdCACertAndKeyBaseName)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", filepath.Join(cfg.CertDir(), kubeadmconstants.EtcdCACertName), err)
	}
	return clientTLS(ca, cert, key), nil
}

// LocalClientTLS is EphemeralClientTLS where this host's etcd CA key can
// be read, else HealthcheckClientTLS.
func (h *Host) LocalClientTLS(cfg *Config) (*tls.Config, error) {
	tlsCfg, err := h.EphemeralClientTLS(cfg)
	if err == nil || !errors.Is(err, ErrNoEtcdCA) {
		return tlsCfg, err
	}
	tlsCfg, herr := h.HealthcheckClientTLS(cfg)
	if herr != nil {
		return nil, fmt.Errorf("%w; and %v", err, herr)
	}
	return tlsCfg, nil
}
