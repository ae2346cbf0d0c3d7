//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/internal/certtest"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// The certificates a member host holds, as `certs renew` renews them.
var renewedCerts = []string{
	"/etc/kubernetes/pki/etcd/server.crt",
	"/etc/kubernetes/pki/etcd/peer.crt",
	"/etc/kubernetes/pki/etcd/healthcheck-client.crt",
	"/etc/kubernetes/pki/apiserver-etcd-client.crt",
}

// shorten re-signs h's certificates (renewedCerts) with the bed's etcd CA
// to run out at notAfter, as certificates issued a year ago would.
func shorten(t *testing.T, h *testbed.Host, notAfter time.Time) {
	t.Helper()
	ca, err := h.ReadFile("/etc/kubernetes/pki/etcd/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := h.ReadFile("/etc/kubernetes/pki/etcd/ca.key")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range renewedCerts {
		crt, err := h.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out, err := certtest.Resign(crt, ca, caKey, notAfter.Add(-365*24*time.Hour), notAfter)
		if err != nil {
			t.Fatalf("%s %s: %v", h.Name, p, err)
		}
		if err := h.WriteFile(p, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// certDays reads every host's certificates with `certs check -o json`:
// days left by "host/name".
func certDays(t *testing.T, b *testbed.Bed) map[string]int {
	t.Helper()
	cmd := workstation(t, b, "certs", "check", "-o", "json")
	out, _ := cmd.Output() // exits non-zero on expired ones; the JSON says which
	var r struct {
		Hosts []struct {
			Node  string `json:"node"`
			Error string `json:"error"`
			Certs []struct {
				Name     string `json:"name"`
				DaysLeft int    `json:"daysLeft"`
			} `json:"certificates"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("certs check -o json: %v\n%s", err, out)
	}
	if len(r.Hosts) != 3 {
		t.Fatalf("certs check read %d hosts, want 3:\n%s", len(r.Hosts), out)
	}
	days := map[string]int{}
	for _, h := range r.Hosts {
		if h.Error != "" {
			t.Fatalf("certs check could not read %s: %s", h.Node, h.Error)
		}
		for _, c := range h.Certs {
			days[h.Node+"/"+c.Name] = c.DaysLeft
		}
	}
	return days
}

// servingCertDays is, per member host, how many days the certificate its
// etcd serves with has left, as `status` sees it in the TLS handshake: the
// certificate the running process actually uses.
func servingCertDays(t *testing.T, b *testbed.Bed) map[string]int {
	t.Helper()
	out, err := workstation(t, b, "status", "-o", "json").Output()
	if err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	var st struct {
		Members []struct {
			Name               string     `json:"name"`
			ServerCertNotAfter *time.Time `json:"serverCertNotAfter"`
		} `json:"members"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	days := map[string]int{}
	for _, m := range st.Members {
		if m.ServerCertNotAfter == nil {
			t.Fatalf("status shows no serving certificate for member %s:\n%s", m.Name, out)
		}
		days[m.Name] = int(time.Until(*m.ServerCertNotAfter).Hours() / 24)
	}
	if len(days) != 3 {
		t.Fatalf("status shows %d members, want 3:\n%s", len(days), out)
	}
	return days
}

// storyCertsRenew: certificates about to run out on h1 and h2 and already
// expired on h3 (its member is cut off). h1's host-local renew refuses (its
// restart would lose the quorum while h3 is down), changing nothing; h3 is
// renewed host-local; then `certs renew --all` rolls h1 and h2 while a
// writer runs (every acknowledged write readable), leaving h3 alone; every
// certificate has a year again and every member serves with its new one. A
// rerun does nothing. Last, a renew of h1 SIGKILLed mid-way converges on
// the rerun.
func storyCertsRenew(t *testing.T, b *testbed.Bed) {
	ctx := context.Background()
	h1, h3 := b.Host("h1"), b.Host("h3")
	soon := time.Now().Add(10 * 24 * time.Hour)
	shorten(t, h1, soon)
	shorten(t, b.Host("h2"), soon)
	shorten(t, h3, time.Now().Add(-time.Hour))
	// etcd reads its certificates at each new connection: restart h3's so
	// that its peers' connections to it are new, and fail.
	if out, err := h3.Exec(ctx, "pkill", "-x", "etcd"); err != nil {
		t.Fatalf("restarting h3's etcd: %v\n%s", err, out)
	}
	waitMemberDown(t, b, "h3")

	// h1 alone: its member is healthy and needed, h3's is down.
	before, _ := h1.ReadFile("/etc/kubernetes/pki/etcd/server.crt")
	out, err := h1.Exec(ctx, "kubectl-etcd", "certs", "renew", "--local")
	t.Logf("h1: kubectl-etcd certs renew --local: %v\n%s", err, out)
	if err == nil || !strings.Contains(string(out), "refusing to restart member h1 on h1") ||
		!strings.Contains(string(out), "kubectl-etcd certs renew --local") || !strings.Contains(string(out), "h3") {
		t.Fatalf("h1's renew with h3's member down: want a refusal naming h3 and the host-local renew")
	}
	if after, _ := h1.ReadFile("/etc/kubernetes/pki/etcd/server.crt"); string(after) != string(before) {
		t.Fatal("the refused renew changed h1's server certificate")
	}

	// h3 host-local: its member is down already, nothing to lose.
	out, err = h3.Exec(ctx, "kubectl-etcd", "certs", "renew", "--local")
	t.Logf("h3: kubectl-etcd certs renew --local: %v\n%s", err, out)
	if err != nil || !strings.Contains(string(out), "restart etcd") {
		t.Fatalf("h3's host-local renew: %v", err)
	}
	if moved, _ := h3.Exec(ctx, "sh", "-c", "ls /var/lib/kubectl-etcd/replaced-certs | wc -l"); strings.TrimSpace(string(moved)) == "0" {
		t.Error("h3: no old certificate kept aside in /var/lib/kubectl-etcd/replaced-certs")
	}
	waitHealthy(t, b, 3)
	if err := b.WaitNodesReady(ctx, 2*time.Minute); err != nil {
		t.Fatalf("nodes after h3's renew: %v", err)
	}

	w := startWriter(t, b, "e2e-certs-renew")
	out2, err := plugin(t, b, "certs", "renew", "--all")
	w.finish(t, b, "e2e-certs-renew")
	if err != nil {
		t.Fatalf("certs renew --all: %v", err)
	}
	if !strings.Contains(out2, "renew h1") || !strings.Contains(out2, "renew h2") || strings.Contains(out2, "renew h3:") {
		t.Errorf("certs renew --all: want steps for h1 and h2 only (h3 was renewed)")
	}
	for k, d := range certDays(t, b) {
		if d < 360 {
			t.Errorf("%s: %d days left after the renew, want a year", k, d)
		}
	}
	for m, d := range servingCertDays(t, b) {
		if d < 360 {
			t.Errorf("member %s serves a certificate with %d days left: not restarted with its new one", m, d)
		}
	}
	out3, err := plugin(t, b, "certs", "renew", "--all")
	if err != nil || !strings.Contains(out3, "nothing to do on h1") || strings.Contains(out3, "[1/") {
		t.Errorf("a rerun: %v, want nothing to do on every host", err)
	}

	// SIGKILL during h1's renew, right after its certificates were
	// reissued (before its restarts), then rerun.
	shorten(t, h1, soon)
	interruptPlugin(t, b, syscall.SIGKILL, "renewed etcd-server", "certs", "renew", "h1")
	if _, err := plugin(t, b, "certs", "renew", "h1"); err != nil {
		t.Fatalf("certs renew h1 after SIGKILL: %v", err)
	}
	days := certDays(t, b)
	for _, n := range []string{"etcd-server", "etcd-peer", "etcd-healthcheck-client", "apiserver-etcd-client"} {
		if days["h1/"+n] < 360 {
			t.Errorf("h1 %s: %d days left after the rerun", n, days["h1/"+n])
		}
	}
	if d := servingCertDays(t, b)["h1"]; d < 360 {
		t.Errorf("h1's etcd serves a certificate with %d days left after the rerun", d)
	}
}

// memberHealth reads, through h1's host-local status, whether each member
// (by name) is healthy.
func memberHealth(t *testing.T, b *testbed.Bed) map[string]bool {
	t.Helper()
	out, err := b.Host("h1").Exec(context.Background(), "kubectl-etcd", "status", "--local", "-o", "json")
	var st struct {
		Members []struct {
			Name    string `json:"name"`
			Healthy bool   `json:"healthy"`
		} `json:"members"`
	}
	if jerr := json.Unmarshal(out, &st); jerr != nil {
		t.Logf("h1: status --local: %v %v\n%s", err, jerr, out)
		return nil
	}
	health := map[string]bool{}
	for _, m := range st.Members {
		health[m.Name] = m.Healthy
	}
	return health
}

// waitMemberDown waits until host's member is not healthy.
func waitMemberDown(t *testing.T, b *testbed.Bed, host string) {
	t.Helper()
	waitFor(t, time.Minute, "member "+host+" down", func() bool {
		h, ok := memberHealth(t, b)[host]
		return ok && !h
	})
}

// waitHealthy waits until n members are all healthy.
func waitHealthy(t *testing.T, b *testbed.Bed, n int) {
	t.Helper()
	waitFor(t, 2*time.Minute, "every member healthy", func() bool {
		health := memberHealth(t, b)
		for _, ok := range health {
			if !ok {
				return false
			}
		}
		return len(health) == n
	})
}
