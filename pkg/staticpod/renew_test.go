package staticpod

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/internal/certtest"
)

// resign rewrites one certificate of h (kubeadm's base name, e.g.
// "etcd/server") with the given validity, signed by h's etcd CA (or the
// cluster CA for apiserver-etcd-client: kubeadm signs it with the etcd CA too).
func resign(t *testing.T, h *Host, cfg *Config, base string, notBefore, notAfter time.Time) {
	t.Helper()
	dir := h.Path(cfg.CertDir())
	read := func(p string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	out, err := certtest.Resign(read(base+".crt"), read("etcd/ca.crt"), read("etcd/ca.key"), notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, base+".crt"), out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func actionsByName(as []CertAction) map[string]CertAction {
	m := map[string]CertAction{}
	for _, a := range as {
		m[a.Name] = a
	}
	return m
}

// TestRenewCerts: a certificate with 5 days left is reissued under the
// default 30-day margin but not under 0; an expired one is reissued under
// any margin; the rest are kept; the old files move aside; the new one has
// a year and its key is 0600. A plan changes nothing.
func TestRenewCerts(t *testing.T) {
	h, cfg := testHost(t, true)
	if _, err := h.EnsureCerts(cfg, true); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	resign(t, h, cfg, "etcd/server", now.Add(-300*24*time.Hour), now.Add(5*24*time.Hour))
	resign(t, h, cfg, "apiserver-etcd-client", now.Add(-400*24*time.Hour), now.Add(-time.Hour))
	serverBefore, _ := os.ReadFile(h.Path(filepath.Join(cfg.CertDir(), "etcd/server.crt")))

	m := actionsByName(must(h.PlanRenewCerts(cfg, 0)))
	if a := m["etcd-server"]; a.Action != "keep" {
		t.Errorf("5 days left, --before 0: %+v, want keep", a)
	}
	if a := m["apiserver-etcd-client"]; a.Action != "reissue" || !strings.HasPrefix(a.Reason, "expired ") {
		t.Errorf("expired, --before 0: %+v, want reissue, expired", a)
	}
	m = actionsByName(must(h.PlanRenewCerts(cfg, 30*24*time.Hour)))
	if a := m["etcd-server"]; a.Action != "reissue" || !strings.Contains(a.Reason, "less than 30d left") {
		t.Errorf("5 days left, --before 30d: %+v, want reissue", a)
	}
	for _, n := range []string{"etcd-ca", "etcd-peer", "etcd-healthcheck-client"} {
		if m[n].Action != "keep" {
			t.Errorf("%s: %+v, want keep", n, m[n])
		}
	}
	if after, _ := os.ReadFile(h.Path(filepath.Join(cfg.CertDir(), "etcd/server.crt"))); string(after) != string(serverBefore) {
		t.Fatal("PlanRenewCerts changed etcd/server.crt")
	}

	done := actionsByName(must(h.RenewCerts(cfg, 30*24*time.Hour)))
	if a := done["etcd-server"]; a.Action != "reissue" || a.MovedTo == "" {
		t.Fatalf("renew: %+v, want reissued with the old file moved aside", a)
	}
	if moved, err := os.ReadFile(h.Path(done["etcd-server"].MovedTo)); err != nil || string(moved) != string(serverBefore) {
		t.Errorf("the old etcd/server.crt is not at %s (%v)", done["etcd-server"].MovedTo, err)
	}
	for _, r := range must(h.CheckCerts(cfg, now)) {
		if r.DaysLeft < 360 || r.Reason != "" {
			t.Errorf("after renew: %+v, want about a year left and nothing wrong", r)
		}
	}
	for _, k := range []string{"etcd/server.key", "apiserver-etcd-client.key"} {
		fi, err := os.Stat(h.Path(filepath.Join(cfg.CertDir(), k)))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", k, fi.Mode(), err)
		}
	}
	// A rerun has nothing left to do.
	for _, a := range must(h.PlanRenewCerts(cfg, 30*24*time.Hour)) {
		if a.Action != "keep" {
			t.Errorf("rerun: %+v, want keep", a)
		}
	}
}

// TestRenewCertsRefusals: no CA is never created by a renew, and an expired
// CA is refused naming why; neither changes a file.
func TestRenewCertsRefusals(t *testing.T) {
	h, cfg := testHost(t, false)
	if _, err := h.RenewCerts(cfg, 0); err == nil || !strings.Contains(err.Error(), "etcd CA") {
		t.Fatalf("no CA: %v, want an error about the missing etcd CA", err)
	}
	if _, err := os.Stat(h.Path(filepath.Join(cfg.CertDir(), "etcd/ca.crt"))); err == nil {
		t.Fatal("a renew created an etcd CA")
	}

	if _, err := h.EnsureCerts(cfg, true); err != nil {
		t.Fatal(err)
	}
	dir := h.Path(cfg.CertDir())
	ca, _ := os.ReadFile(filepath.Join(dir, "etcd/ca.crt"))
	caKey, _ := os.ReadFile(filepath.Join(dir, "etcd/ca.key"))
	expired, err := certtest.Resign(ca, ca, caKey, time.Now().Add(-3650*24*time.Hour), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "etcd/ca.crt"), expired, 0o644)
	peer, _ := os.ReadFile(filepath.Join(dir, "etcd/peer.crt"))
	_, err = h.RenewCerts(cfg, 400*24*time.Hour)
	if err == nil || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), "does not renew the etcd CA") {
		t.Fatalf("expired CA: %v, want a refusal naming the expired CA", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "etcd/peer.crt")); string(after) != string(peer) {
		t.Fatal("a refused renew changed etcd/peer.crt")
	}
}

func TestParseBefore(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"30d", 30 * 24 * time.Hour, ""},
		{"0", 0, ""},
		{"0d", 0, ""},
		{"720h", 720 * time.Hour, ""},
		{"90m", 90 * time.Minute, ""},
		{"400d", 400 * 24 * time.Hour, ""},
		{"-1d", 0, "want a number of days"},
		{"-5h", 0, "must not be negative"},
		{"soon", 0, "want a number of days"},
		{"30 days", 0, "want a number of days"},
		{"", 0, "want a number of days"},
		{"4000d", 0, "more than ten years"},
	} {
		got, err := ParseBefore(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: %v, want an error with %q", tc.in, err, tc.err)
		}
	}
	for _, d := range []time.Duration{30 * 24 * time.Hour, 0, 90 * time.Minute} {
		if back, err := ParseBefore(FormatDays(d)); err != nil || back != d {
			t.Errorf("FormatDays(%v) = %q reads back as %v, %v", d, FormatDays(d), back, err)
		}
	}
}

// TestStartedBefore: this test's process started before a file written now,
// and after one dated in 2001; no process holds nothing.
func TestStartedBefore(t *testing.T) {
	h := NewHost("/")
	f := filepath.Join(t.TempDir(), "cert")
	os.WriteFile(f, []byte("x"), 0o600)
	pid := []int{os.Getpid()}
	if !h.StartedBefore(pid, f) {
		t.Error("a file written now: want started before it")
	}
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	os.Chtimes(f, old, old)
	if h.StartedBefore(pid, f) {
		t.Error("a file from 2001: want started after it")
	}
	if h.StartedBefore(nil, f) {
		t.Error("no process: want false")
	}
	if !h.StartedBefore(pid, filepath.Join(t.TempDir(), "missing")) {
		t.Error("a missing file with a process running: want true (restart to be sure)")
	}
}
