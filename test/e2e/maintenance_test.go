//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// kubeadmChainQuota is the kubeadm chain's etcd quota-backend-bytes: small
// enough to fill in seconds, far above what the other stories store.
const kubeadmChainQuota = 48 << 20

// dbSizes reads every member's database file size, by client URL, with
// etcdctl on h.
func dbSizes(t *testing.T, h *testbed.Host) map[string]int64 {
	t.Helper()
	out, err := etcdctl(context.Background(), h, "endpoint", "status", "--cluster", "-w", "json")
	if err != nil {
		t.Fatalf("etcdctl endpoint status on %s: %v\n%s", h.Name, err, out)
	}
	var list []struct {
		Endpoint string
		Status   struct {
			DBSize int64 `json:"dbSize"`
		}
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("etcdctl endpoint status: %v\n%s", err, out)
	}
	sizes := map[string]int64{}
	for _, e := range list {
		sizes[e.Endpoint] = e.Status.DBSize
	}
	return sizes
}

// storyNoSpace: etcd fills up to its quota and raises NOSPACE; the cluster
// takes no writes. status shows the alarm with the way out; a membership
// change is refused with the same advice; disarming before the space is
// freed is refused; defrag --all --compact (followers first, the leader last)
// shrinks every member's database, alarm disarm clears the alarm, and the
// cluster takes writes again, with every write acknowledged before the alarm
// still there. The plugin does all of it with the apiserver unable to write
// (no host pod can be created), through etcdctl in the etcd pods.
func storyNoSpace(t *testing.T, b *testbed.Bed) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	h1 := b.Host("h1")
	base := "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt " +
		"--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key"
	defer etcdctl(context.Background(), h1, "del", "--prefix", "/e2e-nospace/")

	// Acknowledged writes, through etcd and through the apiserver.
	var acked []string
	for i := range 10 {
		k := fmt.Sprintf("/e2e-nospace/ack/%02d", i)
		if out, err := etcdctl(ctx, h1, "put", k, "v"+k); err != nil {
			t.Fatalf("put %s: %v\n%s", k, err, out)
		}
		acked = append(acked, k)
	}
	kubectl := func(args ...string) (string, error) {
		out, err := h1.Exec(ctx, append([]string{"kubectl"}, args...)...)
		return string(out), err
	}
	if out, err := kubectl("-n", "default", "create", "configmap", "nospace-before", "--from-literal=k=v"); err != nil {
		t.Fatalf("kubectl create configmap: %v\n%s", err, out)
	}
	defer kubectl("-n", "default", "delete", "configmap", "nospace-before", "nospace-after", "--ignore-not-found")

	// Fill until etcd refuses (1 MB values: under etcd's 1.5 MiB request limit).
	fill := `head -c 1000000 /dev/zero | tr '\0' x >/tmp/nospace.value; i=0
while [ $i -lt 200 ]; do ` + base + ` put /e2e-nospace/fill/$i </tmp/nospace.value >/dev/null || exit 0; i=$((i+1)); done
echo "etcd took 200 MB under a quota of ` + fmt.Sprint(kubeadmChainQuota>>20) + ` MiB"; exit 1`
	start := time.Now()
	out, err := h1.Exec(ctx, "sh", "-c", fill)
	t.Logf("h1: filled etcd until it refused (%s): %v\n%s", time.Since(start).Round(100*time.Millisecond), err, out)
	if err != nil || !strings.Contains(string(out), "database space exceeded") {
		t.Fatalf("filling etcd: want NOSPACE's \"database space exceeded\", got %v\n%s", err, out)
	}
	if out, err := kubectl("-n", "default", "create", "configmap", "nospace-refused", "--from-literal=k=v"); err == nil || !strings.Contains(out, "database space exceeded") {
		t.Errorf("an apiserver write under NOSPACE: want it refused, got %v\n%s", err, out)
	}
	votersBefore, _ := voters(t, b, "h1")

	// status: the alarm in HEALTH and in the summary, with the way out.
	out2, err := plugin(t, b, "status")
	if err != nil || !strings.Contains(out2, "ALARM NOSPACE") ||
		!strings.Contains(out2, "ALARM: etcd's NOSPACE alarm is raised (by member ") ||
		!strings.Contains(out2, "free the space with `kubectl etcd defrag --all --compact`, then clear the alarm with `kubectl etcd alarm disarm`") {
		t.Errorf("status under NOSPACE: want the alarm and its fix, got %v", err)
	}
	// A membership change: refused with the same advice, nothing changed.
	out2, err = plugin(t, b, "scale", "--replicas", "2")
	if err == nil || !strings.Contains(out2, "nothing was changed") || !strings.Contains(out2, "kubectl etcd defrag --all --compact") {
		t.Errorf("scale under NOSPACE: want it refused with the advice, got %v", err)
	}
	if got, _ := voters(t, b, "h1"); strings.Join(got, ",") != strings.Join(votersBefore, ",") {
		t.Errorf("voters %v after the refused scale, were %v", got, votersBefore)
	}
	out2, err = plugin(t, b, "alarm", "list")
	if err != nil || !strings.Contains(out2, "NOSPACE") {
		t.Errorf("alarm list: want NOSPACE, got %v", err)
	}
	// The host-local face sees the same, from h2, without the apiserver.
	if out, err := b.Host("h2").Exec(ctx, "kubectl-etcd", "alarm", "list", "--local", "-o", "json"); err != nil ||
		!strings.Contains(string(out), `"type": "NOSPACE"`) || !strings.Contains(string(out), "kubectl-etcd defrag --local --all --compact") {
		t.Errorf("h2: kubectl-etcd alarm list --local: %v\n%s", err, out)
	}
	// Disarming before the space is freed: refused, the alarm stays.
	out2, err = plugin(t, b, "alarm", "disarm")
	if err == nil || !strings.Contains(out2, "refusing to clear the alarms (nothing was changed): NOSPACE (by member ") ||
		!strings.Contains(out2, "free the space with `kubectl etcd defrag --all --compact` first") {
		t.Errorf("alarm disarm before the defrag: want it refused, got %v", err)
	}

	// Free the space: delete what filled it (etcd allows deletes under
	// NOSPACE), then the dry run changes nothing, the real one shrinks.
	if out, err := etcdctl(ctx, h1, "del", "--prefix", "/e2e-nospace/fill/"); err != nil {
		t.Fatalf("deleting the filler: %v\n%s", err, out)
	}
	before := dbSizes(t, h1)
	out2, err = plugin(t, b, "defrag", "--all", "--compact", "--dry-run")
	if err != nil || !strings.Contains(out2, "Plan: compact, then defragment 3 member(s), one at a time (dry run: nothing will be changed)") {
		t.Errorf("defrag --dry-run: %v", err)
	}
	out2, err = plugin(t, b, "defrag", "--all", "--compact")
	if err != nil || strings.Count(out2, " MiB → ") != 3 || !strings.Contains(out2, "compacted to revision ") {
		t.Fatalf("defrag --all --compact: want three members defragmented after a compaction, got %v", err)
	}
	// The leader's step is the last one.
	steps := strings.Split(out2, "\n[")
	if last := steps[len(steps)-1]; !strings.Contains(last, "(the leader, last)") {
		t.Errorf("the last defrag step is not the leader's: %q", strings.SplitN(last, "\n", 2)[0])
	}
	after := dbSizes(t, h1)
	for ep, was := range before {
		if now := after[ep]; now >= was || now >= kubeadmChainQuota/2 {
			t.Errorf("member %s: database %d bytes after the defrag, %d before", ep, now, was)
		}
	}
	// Clear the alarm; the rerun finds none.
	out2, err = plugin(t, b, "alarm", "disarm")
	if err != nil || !strings.Contains(out2, "cleared") {
		t.Errorf("alarm disarm after the defrag: %v", err)
	}
	out2, err = plugin(t, b, "alarm", "disarm")
	if err != nil || !strings.Contains(out2, "no alarm is raised") {
		t.Errorf("alarm disarm, rerun: %v", err)
	}
	if out, err := etcdctl(ctx, h1, "alarm", "list"); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("etcdctl alarm list after the disarm: %v %q", err, out)
	}

	// Writes work again; every acknowledged one is there.
	if out, err := etcdctl(ctx, h1, "put", "/e2e-nospace/after", "x"); err != nil {
		t.Errorf("a write after the disarm: %v\n%s", err, out)
	}
	if out, err := kubectl("-n", "default", "create", "configmap", "nospace-after", "--from-literal=k=v"); err != nil {
		t.Errorf("an apiserver write after the disarm: %v\n%s", err, out)
	}
	if out, err := kubectl("-n", "default", "get", "configmap", "nospace-before", "-o", "jsonpath={.data.k}"); err != nil || out != "v" {
		t.Errorf("the configmap written before the alarm: %v %q", err, out)
	}
	for _, k := range acked {
		out, err := etcdctl(ctx, h1, "get", "--print-value-only", k)
		if err != nil || strings.TrimSpace(string(out)) != "v"+k {
			t.Errorf("acknowledged %s after the alarm: %v %q", k, err, out)
		}
	}

	// SIGKILL during a rolling defrag, once the first member's pass is
	// done; the rerun defragments every member and leaves them healthy.
	interruptPlugin(t, b, syscall.SIGKILL, " MiB → ", "defrag", "--all")
	out2, err = plugin(t, b, "defrag", "--all")
	if err != nil || strings.Count(out2, " MiB → ") != 3 {
		t.Errorf("defrag --all after a SIGKILLed one: want three members defragmented, got %v", err)
	}
	waitHealthy(t, b, 3)
}

// storyCertsCheck: every host's etcd certificates as kubeadm issued them
// (ok, about a year left); one missing on h3 is an error naming it, and
// nothing is written anywhere.
func storyCertsCheck(t *testing.T, b *testbed.Bed) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	type report struct {
		Hosts []struct {
			Node  string `json:"node"`
			Error string `json:"error"`
			Certs []struct {
				Name     string `json:"name"`
				Status   string `json:"status"`
				DaysLeft int    `json:"daysLeft"`
			} `json:"certificates"`
		} `json:"hosts"`
	}
	check := func() (report, string, error) {
		cmd := workstation(t, b, "certs", "check", "-o", "json")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		t.Logf("workstation: kubectl etcd certs check -o json: %v\n%s", err, stderr.String())
		var r report
		if jerr := json.Unmarshal(out, &r); jerr != nil {
			t.Fatalf("certs check -o json: %v\n%s", jerr, out)
		}
		return r, stderr.String(), err
	}
	r, _, err := check()
	if err != nil || len(r.Hosts) != 3 {
		t.Fatalf("certs check: %v, %d hosts", err, len(r.Hosts))
	}
	for _, h := range r.Hosts {
		if h.Error != "" || len(h.Certs) != 5 {
			t.Errorf("%s: error %q, %d certificates, want 5", h.Node, h.Error, len(h.Certs))
		}
		for _, c := range h.Certs {
			if c.Status != "ok" || c.DaysLeft < 360 {
				t.Errorf("%s %s: %s, %d days left", h.Node, c.Name, c.Status, c.DaysLeft)
			}
		}
	}
	// One certificate missing on h3: an error naming it; the file comes back.
	h3 := b.Host("h3")
	const crt = "/etc/kubernetes/pki/etcd/healthcheck-client.crt"
	if out, err := h3.Exec(ctx, "mv", crt, crt+".e2e-aside"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	defer h3.Exec(context.Background(), "mv", crt+".e2e-aside", crt)
	before := pathsNow(t, h3, "/etc/kubernetes/pki/etcd/*")
	out, err := plugin(t, b, "certs", "check")
	if err == nil || !strings.Contains(out, "etcd certificates need attention: h3: etcd-healthcheck-client missing") ||
		!strings.Contains(out, "MISSING") {
		t.Errorf("certs check with h3's healthcheck-client certificate gone: want an error naming it, got %v", err)
	}
	if added := newPaths(t, h3, "/etc/kubernetes/pki/etcd/*", before); len(added) != 0 {
		t.Errorf("certs check wrote %v on h3", added)
	}
	if out, err := h3.Exec(ctx, "kubectl-etcd", "certs", "check", "--local", "-o", "json"); err != nil ||
		!strings.Contains(string(out), `"status": "missing"`) {
		t.Errorf("h3: kubectl-etcd certs check --local: %v\n%s", err, out)
	}
}
