package staticpod

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/util/keyutil"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pkiutil"
)

// ReadEtcdCA returns the host's etcd CA certificate and key, PEM-encoded. It
// is used only to hand the CA, sealed, to another control-plane host that
// lacks it (see pkg/sealedca); nothing else reads the key out.
func (h *Host) ReadEtcdCA(cfg *Config) (certPEM, keyPEM []byte, err error) {
	dir := h.Path(cfg.CertDir())
	if certPEM, err = os.ReadFile(filepath.Join(dir, kubeadmconstants.EtcdCACertName)); err != nil {
		return nil, nil, fmt.Errorf("reading the etcd CA certificate: %w", err)
	}
	if keyPEM, err = os.ReadFile(filepath.Join(dir, kubeadmconstants.EtcdCAKeyName)); err != nil {
		return nil, nil, fmt.Errorf("reading the etcd CA key: %w", err)
	}
	return certPEM, keyPEM, nil
}

// ErrOtherEtcdCA means the host holds a different etcd CA than the one offered.
var ErrOtherEtcdCA = errors.New("this host holds a different etcd CA")

// InstallEtcdCA writes the etcd CA where kubeadm keeps it (certificate 0644,
// key 0600, by kubeadm's own writer) unless the host has it already. A
// different CA on the host is never overwritten: its certificates would all
// stop verifying.
func (h *Host) InstallEtcdCA(cfg *Config, certPEM, keyPEM []byte) (installed bool, err error) {
	cert, key, err := parseCA(certPEM, keyPEM)
	if err != nil {
		return false, err
	}
	dir := h.Path(cfg.CertDir())
	if h.HasEtcdCA(cfg) {
		have, err := os.ReadFile(filepath.Join(dir, kubeadmconstants.EtcdCACertName))
		if err != nil {
			return false, err
		}
		if blk, _ := pem.Decode(have); blk == nil || !bytes.Equal(blk.Bytes, cert.Raw) {
			return false, fmt.Errorf("%w (%s): refusing to replace it", ErrOtherEtcdCA, filepath.Join(cfg.CertDir(), kubeadmconstants.EtcdCACertName))
		}
		return false, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	if err := pkiutil.WriteCertAndKey(dir, kubeadmconstants.EtcdCACertAndKeyBaseName, cert, key); err != nil {
		return false, fmt.Errorf("writing the etcd CA: %w", err)
	}
	return true, nil
}

func parseCA(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		return nil, nil, errors.New("the etcd CA certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing the etcd CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, nil, errors.New("the offered etcd CA certificate is not a CA")
	}
	k, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing the etcd CA key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("the etcd CA key cannot sign")
	}
	if !publicKeysEqual(signer.Public(), cert.PublicKey) {
		return nil, nil, errors.New("the etcd CA key does not belong to its certificate")
	}
	return cert, signer, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}
