package staticpod

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"time"

	certutil "k8s.io/client-go/util/cert"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pkiutil"
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
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}},
		MinVersion:   tls.VersionTLS12,
	}, nil
}
