package staticpod

import (
	"crypto/x509"
	"fmt"
	"path/filepath"
	"time"

	certsphase "k8s.io/kubernetes/cmd/kubeadm/app/phases/certs"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pkiutil"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// CheckCerts reads the etcd CA and each certificate kubeadm issues for
// this host's member (and, where a kube-apiserver runs, its etcd client
// certificate): what each says, and whether it is what kubeadm would issue
// for this host now. Nothing is written; keys are read only to check that
// they match, and never reported.
func (h *Host) CheckCerts(cfg *Config, now time.Time) ([]hostapi.CertReport, error) {
	ic := h.hostInit(cfg)
	pkiDir := ic.CertificatesDir
	caSpec := certsphase.KubeadmCertEtcdCA()
	caRep, ca := h.inspectCert(cfg, pkiDir, caSpec.Name, caSpec.BaseName, true, nil, nil, now)
	out := []hostapi.CertReport{caRep}
	for _, spec := range h.certSpecs() {
		want, err := spec.GetConfig(ic)
		if err != nil {
			return nil, fmt.Errorf("%s config: %w", spec.Name, err)
		}
		rep, _ := h.inspectCert(cfg, pkiDir, spec.Name, spec.BaseName, false, ca, want, now)
		out = append(out, rep)
	}
	return out, nil
}

// inspectCert reports one certificate: the CA (isCA, checked against
// itself) or one it signed (ca; nil when the CA could not be read). It
// returns the certificate too, nil when unreadable.
func (h *Host) inspectCert(cfg *Config, pkiDir, name, base string, isCA bool, ca *x509.Certificate, want *pkiutil.CertConfig, now time.Time) (hostapi.CertReport, *x509.Certificate) {
	r := hostapi.CertReport{Name: name, Path: filepath.Join(cfg.CertDir(), base+".crt")}
	if !h.exists(r.Path) {
		r.Status, r.Reason = hostapi.CertMissing, "no such file"
		return r, nil
	}
	cert, key, err := pkiutil.TryLoadCertAndKeyFromDisk(pkiDir, base)
	if err != nil {
		r.Status, r.Reason = hostapi.CertMismatch, fmt.Sprintf("unreadable: %v", err)
		return r, nil
	}
	r.Subject, r.Issuer = cert.Subject.String(), cert.Issuer.String()
	r.DNSNames = cert.DNSNames
	for _, ip := range cert.IPAddresses {
		r.IPs = append(r.IPs, ip.String())
	}
	r.NotAfter = cert.NotAfter.UTC()
	r.DaysLeft = int(cert.NotAfter.Sub(now).Hours() / 24)
	var why string
	switch {
	case isCA && !cert.IsCA:
		why = "not a CA certificate"
	case isCA:
		why = mismatch(cert, key, cert, nil)
	case ca == nil:
		why = "cannot be checked: the etcd CA is missing or unreadable"
	default:
		why = mismatch(cert, key, ca, want)
	}
	r.Status, r.Reason = ExpiryStatus(cert.NotAfter, now), why
	if why != "" && r.Status != hostapi.CertExpired {
		r.Status = hostapi.CertMismatch
	}
	return r, cert
}

// ExpiryStatus classifies a certificate's expiry: expired, renew when less
// than CertRenewMargin (30 days, kubeadm's own warning) is left, else ok.
func ExpiryStatus(notAfter, now time.Time) string {
	switch left := notAfter.Sub(now); {
	case left <= 0:
		return hostapi.CertExpired
	case left < CertRenewMargin:
		return hostapi.CertRenew
	}
	return hostapi.CertOK
}
