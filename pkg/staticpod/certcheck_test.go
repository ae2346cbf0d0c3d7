package staticpod

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

func TestExpiryStatus(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		left time.Duration
		want string
	}{
		{365 * 24 * time.Hour, hostapi.CertOK},
		{30*24*time.Hour + time.Minute, hostapi.CertOK},
		{30*24*time.Hour - time.Minute, hostapi.CertRenew},
		{time.Hour, hostapi.CertRenew},
		{0, hostapi.CertExpired},
		{-time.Hour, hostapi.CertExpired},
	} {
		if got := ExpiryStatus(now.Add(tc.left), now); got != tc.want {
			t.Errorf("%s left: %s, want %s", tc.left, got, tc.want)
		}
	}
}

// TestCheckCerts reads what EnsureCerts wrote (all ok, a year out), then
// sees the same files a year later (expired), with a SAN the configuration
// now wants (mismatch, naming it), and with a certificate gone (missing);
// it writes nothing.
func TestCheckCerts(t *testing.T) {
	h, cfg := testHost(t, true)
	if _, err := h.EnsureCerts(cfg, true); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	byName := func(rs []hostapi.CertReport) map[string]hostapi.CertReport {
		m := map[string]hostapi.CertReport{}
		for _, r := range rs {
			m[r.Name] = r
		}
		return m
	}
	got, err := h.CheckCerts(cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"etcd-ca", "etcd-server", "etcd-peer", "etcd-healthcheck-client", "apiserver-etcd-client"}
	if len(got) != len(names) {
		t.Fatalf("%d reports, want %v: %+v", len(got), names, got)
	}
	m := byName(got)
	for _, n := range names {
		r := m[n]
		if r.Status != hostapi.CertOK || r.Reason != "" || r.DaysLeft < 360 || r.Subject == "" || r.Issuer == "" {
			t.Errorf("%s: %+v, want ok, about a year left", n, r)
		}
	}
	if s := m["etcd-server"]; !strings.Contains(strings.Join(s.DNSNames, ","), "cp-1") || !strings.Contains(strings.Join(s.IPs, ","), "127.0.0.1") {
		t.Errorf("etcd-server names %v %v, want cp-1 and 127.0.0.1", s.DNSNames, s.IPs)
	}
	if m["etcd-server"].Issuer != m["etcd-ca"].Subject {
		t.Errorf("etcd-server issuer %q, CA subject %q", m["etcd-server"].Issuer, m["etcd-ca"].Subject)
	}

	m = byName(must(h.CheckCerts(cfg, now.Add(366*24*time.Hour))))
	if r := m["etcd-peer"]; r.Status != hostapi.CertExpired || r.DaysLeft >= 0 {
		t.Errorf("a year later: %+v, want expired", r)
	}

	cfg.Init.Etcd.Local.ServerCertSANs = append(cfg.Init.Etcd.Local.ServerCertSANs, "new.example.com")
	m = byName(must(h.CheckCerts(cfg, now)))
	if r := m["etcd-server"]; r.Status != hostapi.CertMismatch || r.Reason != "missing DNS name new.example.com" {
		t.Errorf("a SAN now wanted: %+v", r)
	}
	if r := m["etcd-peer"]; r.Status != hostapi.CertOK {
		t.Errorf("etcd-peer does not carry server SANs: %+v", r)
	}

	if err := os.Remove(h.Path(cfg.CertDir() + "/etcd/peer.crt")); err != nil {
		t.Fatal(err)
	}
	before := listDir(t, h.Path(cfg.CertDir()))
	m = byName(must(h.CheckCerts(cfg, now)))
	if r := m["etcd-peer"]; r.Status != hostapi.CertMissing {
		t.Errorf("a removed certificate: %+v", r)
	}
	if after := listDir(t, h.Path(cfg.CertDir())); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("CheckCerts changed the pki dir: %v -> %v", before, after)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"", "/etcd"} {
		ents, err := os.ReadDir(dir + sub)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			out = append(out, sub+"/"+e.Name())
		}
	}
	return out
}
