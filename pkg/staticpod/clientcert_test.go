package staticpod

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// LocalClientTLS signs in memory with the CA key where it can be read, and
// otherwise presents kubeadm's healthcheck-client certificate (the backup
// CronJob's pods have only that and ca.crt).
func TestLocalClientTLS(t *testing.T) {
	h, cfg := testHost(t, true)
	if _, err := h.EnsureCerts(cfg, true); err != nil {
		t.Fatal(err)
	}
	cn := func() string {
		t.Helper()
		c, err := h.LocalClientTLS(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c.Certificates[0].Leaf.Subject.CommonName
	}
	if got := cn(); got != "kubectl-etcd" {
		t.Errorf("with the CA key: CN %q, want the in-memory kubectl-etcd", got)
	}
	pki := filepath.Join(h.Path(cfg.CertDir()), "etcd")
	if err := os.Remove(filepath.Join(pki, "ca.key")); err != nil {
		t.Fatal(err)
	}
	if got := cn(); got != "kube-etcd-healthcheck-client" {
		t.Errorf("without the CA key: CN %q, want kubeadm's healthcheck client", got)
	}
	if err := os.Remove(filepath.Join(pki, "healthcheck-client.key")); err != nil {
		t.Fatal(err)
	}
	_, err := h.LocalClientTLS(cfg)
	if err == nil || !strings.Contains(err.Error(), "no etcd CA") || !strings.Contains(err.Error(), "healthcheck-client.crt") {
		t.Errorf("with neither: %v; want both reasons", err)
	}
}
