package staticpod

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	certsphase "k8s.io/kubernetes/cmd/kubeadm/app/phases/certs"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pkiutil"
)

// CertRenewMargin is how long before expiry an existing certificate is
// reissued rather than reused: a member should not start with a certificate
// that dies before the next maintenance window.
const CertRenewMargin = 30 * 24 * time.Hour

// CertAction is one certificate's fate in a plan.
type CertAction struct {
	Name   string `json:"name"`   // kubeadm's name, e.g. etcd-server
	Path   string `json:"path"`   // host path of the .crt
	Action string `json:"action"` // keep | create | reissue
	Reason string `json:"reason,omitempty"`
	// MovedTo is where a reissued certificate's old files went.
	MovedTo string `json:"movedTo,omitempty"`
}

// ErrNoEtcdCA means the host has no etcd CA and the verb may not create one.
var ErrNoEtcdCA = errors.New("no etcd CA on this host")

// certSpecs are the etcd certificates a stacked member host needs, in
// kubeadm's own definitions; apiserver-etcd-client only where kubeadm would
// have one (a host running a kube-apiserver).
func (h *Host) certSpecs() []*certsphase.KubeadmCert {
	specs := []*certsphase.KubeadmCert{
		certsphase.KubeadmCertEtcdServer(),
		certsphase.KubeadmCertEtcdPeer(),
		certsphase.KubeadmCertEtcdHealthcheck(),
	}
	if h.exists(h.apiServerManifestToRead()) {
		specs = append(specs, certsphase.KubeadmCertEtcdAPIClient())
	}
	return specs
}

// hostInit is cfg.Init with CertificatesDir mapped to where this process
// reaches it; SANs and names stay the host's.
func (h *Host) hostInit(cfg *Config) *kubeadmapi.InitConfiguration {
	ic := cfg.Init.DeepCopy()
	ic.CertificatesDir = h.Path(cfg.CertDir())
	return ic
}

// PlanCerts says what EnsureCerts would do, changing nothing.
func (h *Host) PlanCerts(cfg *Config, mayCreateCA bool) ([]CertAction, error) {
	return h.certs(cfg, mayCreateCA, false, CertRenewMargin)
}

// EnsureCerts creates or reissues what the plan says. The etcd CA is
// created only when mayCreateCA (init) and none exists, and never
// overwritten. Existing certificates are reused only when signed by the CA on
// disk, valid beyond CertRenewMargin, and carrying the needed names; others
// are moved aside (never deleted) and reissued. Keys are written 0600.
func (h *Host) EnsureCerts(cfg *Config, mayCreateCA bool) ([]CertAction, error) {
	return h.certs(cfg, mayCreateCA, true, CertRenewMargin)
}

// PlanRenewCerts says what RenewCerts would do, changing nothing.
func (h *Host) PlanRenewCerts(cfg *Config, before time.Duration) ([]CertAction, error) {
	return h.certs(cfg, false, false, before)
}

// RenewCerts is EnsureCerts for `certs renew`: a certificate is reissued
// when less than before is left on it (or it is missing, or not what
// kubeadm would issue for this host now), with kubeadm's own specs, so for
// kubeadm's one year from now. It never creates the etcd CA, and refuses
// when the CA has expired: renewing the CA is out of its scope. Old files
// are moved aside into the state dir, never deleted.
func (h *Host) RenewCerts(cfg *Config, before time.Duration) ([]CertAction, error) {
	return h.certs(cfg, false, true, before)
}

func (h *Host) certs(cfg *Config, mayCreateCA, apply bool, margin time.Duration) ([]CertAction, error) {
	ic := h.hostInit(cfg)
	pkiDir := ic.CertificatesDir
	caSpec := certsphase.KubeadmCertEtcdCA()
	caCrt := filepath.Join(cfg.CertDir(), kubeadmconstants.EtcdCACertName)
	var actions []CertAction
	var caCert *x509.Certificate
	var caKey crypto.Signer
	crtExists, keyExists := h.exists(caCrt), h.exists(filepath.Join(cfg.CertDir(), kubeadmconstants.EtcdCAKeyName))
	switch {
	case crtExists && !keyExists:
		return nil, fmt.Errorf("%s exists without its key: an external etcd CA is not supported (kubectl-etcd signs member certificates on the host)", caCrt)
	case crtExists:
		var err error
		caCert, caKey, err = pkiutil.TryLoadCertAndKeyFromDisk(pkiDir, caSpec.BaseName)
		if err != nil {
			return nil, fmt.Errorf("loading the etcd CA %s: %w", caCrt, err)
		}
		if !caCert.IsCA {
			return nil, fmt.Errorf("%s is not a CA certificate", caCrt)
		}
		if time.Now().After(caCert.NotAfter) {
			return nil, fmt.Errorf("the etcd CA %s expired on %s: kubectl-etcd does not renew the etcd CA (every member's certificates and every client's trust change with it; see kubeadm's manual CA rotation)",
				caCrt, caCert.NotAfter.Format(time.RFC3339))
		}
		actions = append(actions, CertAction{Name: caSpec.Name, Path: caCrt, Action: "keep"})
	case !mayCreateCA:
		return nil, fmt.Errorf("%w: %s is missing. A member host needs the cluster's etcd CA (ca.crt and ca.key): "+
			"`kubeadm join --control-plane --certificate-key ...` brings it, or run `kubectl etcd scale` from a workstation, "+
			"which streams it from a member host, or copy both files from a member host into %s (ca.key mode 0600)",
			ErrNoEtcdCA, caCrt, filepath.Dir(caCrt))
	default:
		actions = append(actions, CertAction{Name: caSpec.Name, Path: caCrt, Action: "create", Reason: "no etcd CA on this host"})
		if apply {
			caCfg, err := caSpec.GetConfig(ic)
			if err != nil {
				return nil, fmt.Errorf("etcd CA config: %w", err)
			}
			caCert, caKey, err = pkiutil.NewCertificateAuthority(caCfg)
			if err != nil {
				return nil, fmt.Errorf("creating the etcd CA: %w", err)
			}
			if err := pkiutil.WriteCertAndKey(pkiDir, caSpec.BaseName, caCert, caKey); err != nil {
				return nil, fmt.Errorf("writing the etcd CA: %w", err)
			}
		}
	}
	for _, spec := range h.certSpecs() {
		want, err := spec.GetConfig(ic)
		if err != nil {
			return nil, fmt.Errorf("%s config: %w", spec.Name, err)
		}
		crt := filepath.Join(cfg.CertDir(), spec.BaseName+".crt")
		a := CertAction{Name: spec.Name, Path: crt}
		if !h.exists(crt) && !h.exists(filepath.Join(cfg.CertDir(), spec.BaseName+".key")) {
			a.Action, a.Reason = "create", "missing"
		} else if caCert == nil {
			a.Action, a.Reason = "reissue", "signed by an etcd CA that is about to be created"
		} else if reason := checkCert(pkiDir, spec.BaseName, caCert, want, margin); reason != "" {
			a.Action, a.Reason = "reissue", reason
		} else {
			a.Action = "keep"
		}
		if apply && a.Action != "keep" {
			if a.Action == "reissue" {
				dir := filepath.Join(h.StateDir(), "replaced-certs")
				moved, err := h.moveAside(crt, "replaced", dir)
				if err != nil {
					return nil, err
				}
				if _, err := h.moveAside(filepath.Join(cfg.CertDir(), spec.BaseName+".key"), "replaced", dir); err != nil {
					return nil, err
				}
				a.MovedTo = moved
			}
			cert, key, err := pkiutil.NewCertAndKey(caCert, caKey, want)
			if err != nil {
				return nil, fmt.Errorf("issuing %s: %w", spec.Name, err)
			}
			if err := pkiutil.WriteCertAndKey(pkiDir, spec.BaseName, cert, key); err != nil {
				return nil, fmt.Errorf("writing %s: %w", spec.Name, err)
			}
		}
		actions = append(actions, a)
	}
	return actions, nil
}

// checkCert returns why an existing certificate cannot be reused (margin:
// how much validity it must have left), or "".
func checkCert(pkiDir, baseName string, ca *x509.Certificate, want *pkiutil.CertConfig, margin time.Duration) string {
	cert, key, err := pkiutil.TryLoadCertAndKeyFromDisk(pkiDir, baseName)
	if err != nil {
		return fmt.Sprintf("unreadable: %v", err)
	}
	if why := mismatch(cert, key, ca, want); why != "" {
		return why
	}
	switch left := time.Until(cert.NotAfter); {
	case left <= 0:
		return fmt.Sprintf("expired %s", cert.NotAfter.Format(time.RFC3339))
	case left < margin:
		return fmt.Sprintf("expires %s (less than %s left)", cert.NotAfter.Format(time.RFC3339), FormatDays(margin))
	}
	return ""
}

// mismatch says how cert differs from what kubeadm would issue (want,
// signed by ca, with key), or "": its expiry aside.
func mismatch(cert *x509.Certificate, key crypto.Signer, ca *x509.Certificate, want *pkiutil.CertConfig) string {
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return "not signed by the etcd CA on this host"
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return "key does not match certificate"
	}
	if want == nil { // the CA itself
		return ""
	}
	if cert.Subject.CommonName != want.CommonName {
		return fmt.Sprintf("common name %q, want %q", cert.Subject.CommonName, want.CommonName)
	}
	for _, u := range want.Usages {
		if !slices.Contains(cert.ExtKeyUsage, u) {
			return "missing a required key usage"
		}
	}
	for _, d := range want.AltNames.DNSNames {
		if !slices.Contains(cert.DNSNames, d) {
			return fmt.Sprintf("missing DNS name %s", d)
		}
	}
	for _, ip := range want.AltNames.IPs {
		if !slices.ContainsFunc(cert.IPAddresses, func(x net.IP) bool { return x.Equal(ip) }) {
			return fmt.Sprintf("missing IP address %s", ip)
		}
	}
	return ""
}

// HasEtcdCA reports whether the host holds the etcd CA certificate and key.
func (h *Host) HasEtcdCA(cfg *Config) bool {
	return h.exists(filepath.Join(cfg.CertDir(), kubeadmconstants.EtcdCACertName)) &&
		h.exists(filepath.Join(cfg.CertDir(), kubeadmconstants.EtcdCAKeyName))
}

// ClientTLSFiles are the healthcheck-client files (host paths mapped for this
// process) that verbs use to talk to etcd from the host.
func (h *Host) ClientTLSFiles(cfg *Config) (ca, cert, key string) {
	d := cfg.CertDir()
	return h.Path(filepath.Join(d, kubeadmconstants.EtcdCACertName)),
		h.Path(filepath.Join(d, kubeadmconstants.EtcdHealthcheckClientCertName)),
		h.Path(filepath.Join(d, kubeadmconstants.EtcdHealthcheckClientKeyName))
}

// FormatDays writes a duration as kubectl-etcd's --before takes it: whole
// days as "30d", anything else as Go writes it.
func FormatDays(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// ParseBefore reads --before: a number of days ("30d") or a Go duration
// ("720h", "90m"), zero or more. Zero renews only what has expired (or is
// missing or wrong); 400d renews every certificate kubeadm issued for a year.
func ParseBefore(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(strings.TrimSpace(s), "d"); ok {
		days, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("--before %q: want a number of days (30d) or a duration (720h)", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(strings.TrimSpace(s)); err != nil {
			return 0, fmt.Errorf("--before %q: want a number of days (30d) or a duration (720h)", s)
		}
	}
	if d < 0 {
		return 0, fmt.Errorf("--before %q: must not be negative", s)
	}
	if d > 10*365*24*time.Hour {
		return 0, fmt.Errorf("--before %q: more than ten years (kubeadm issues member certificates for one)", s)
	}
	return d, nil
}
