//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/doctor"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// pluginDoctor runs `kubectl etcd doctor -o json` and returns the report
// and the exit code (0 healthy, 2 a problem found).
func pluginDoctor(t *testing.T, b *testbed.Bed) (*doctor.Report, int) {
	t.Helper()
	start := time.Now()
	cmd := workstation(t, b, "doctor", "-o", "json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("doctor: %v\n%s", err, stderr.String())
	}
	var r doctor.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("doctor -o json (exit %d) is not a report: %v\n%s\n%s", code, err, out, stderr.String())
	}
	var lines []string
	for _, f := range r.Findings {
		lines = append(lines, string(f.Severity)+" ["+f.Check+"] "+f.Subject+": "+f.Problem+" | fix: "+f.Fix)
	}
	t.Logf("doctor (%s, exit %d): %s\n  %s\n%s", time.Since(start).Round(100*time.Millisecond), code, r.Summary, strings.Join(lines, "\n  "), stderr.String())
	return &r, code
}

func finding(r *doctor.Report, check, subject string) *doctor.Finding {
	for i, f := range r.Findings {
		if f.Check == check && (subject == "" || f.Subject == subject) {
			return &r.Findings[i]
		}
	}
	return nil
}

// storyDoctor: a fresh bed of three members on five control-plane hosts,
// whose h4 and h5 joined without a member (the bed's apiservers there read
// a local etcd that does not exist), with backups scheduled. Two more
// half-done states: a voter added for h4 and never started (a failed join),
// and another cluster's data in h5's data dir. Doctor names each, with its
// fix: `scale --replicas 4` starts h4's member; the host-local join it
// prints for h5, run there as printed, moves the data aside and makes h5 a
// member; both point their apiservers at their members. Then doctor is
// clean (exit 0).
func storyDoctor(t *testing.T, b *testbed.Bed) {
	ctx := context.Background()
	if _, err := plugin(t, b, "backup", "schedule", "--every", "1h", "--keep", "24"); err != nil {
		t.Fatalf("backup schedule: %v", err)
	}

	// A failed join: the member added, its host never started.
	h4, h5 := b.Host("h4"), b.Host("h5")
	if out, err := etcdctl(ctx, b.Host("h1"), "member", "add", "h4", "--peer-urls=https://"+h4.Address+":2380"); err != nil {
		t.Fatalf("member add for h4: %v\n%s", err, out)
	}
	// Another cluster's data in h5's data dir: a throwaway etcd ran there.
	mustExec(t, h5, `etcd-scratch --data-dir /var/lib/etcd --name foreign --listen-client-urls http://127.0.0.1:12379 --advertise-client-urls http://127.0.0.1:12379 `+
		`--listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 --initial-cluster foreign=http://127.0.0.1:12380 `+
		`--listen-metrics-urls http://127.0.0.1:12381 >/tmp/foreign-etcd.log 2>&1 & pid=$!; `+
		`for i in $(seq 50); do etcdctl --endpoints http://127.0.0.1:12379 put /foreign yes >/dev/null 2>&1 && break; sleep 0.2; done; kill $pid; wait $pid || true; test -d /var/lib/etcd/member`)

	r, code := pluginDoctor(t, b)
	var critical []string
	for _, f := range r.Findings {
		if f.Severity == doctor.Critical {
			critical = append(critical, f.Check+" "+f.Subject)
		}
	}
	// h4's apiserver reads its own member, which is the unstarted one: one
	// problem, one finding.
	if got := strings.Join(critical, ", "); got != "member-unstarted h4, apiserver-orphaned h5" {
		t.Errorf("critical findings: %s; want h4's unstarted member and h5's apiserver reading no member", got)
	}
	unstarted, foreign := finding(r, "member-unstarted", "h4"), finding(r, "foreign-data-dir", "h5")
	if code != 2 || unstarted == nil || unstarted.Severity != doctor.Critical || !strings.Contains(unstarted.Fix, "kubectl etcd scale --replicas 4") {
		t.Fatalf("doctor with an unstarted voter for h4: exit %d, finding %+v", code, unstarted)
	}
	if foreign == nil || !strings.Contains(foreign.Fix, "--move-aside-foreign-data") {
		t.Fatalf("doctor with another cluster's data on h5: finding %+v", foreign)
	}
	if _, err := plugin(t, b, "scale", "--replicas", "4"); err != nil {
		t.Fatalf("scale --replicas 4 (the fix doctor gave): %v", err)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3", "h4")
	// The fix is a command line to paste, with where to run it after "#".
	fix := regexp.MustCompile(`(?m)^(kubectl-etcd join [^#\n]+?)\s+# as root on h5`).FindStringSubmatch(foreign.Fix)
	if fix == nil {
		t.Fatalf("no host-local join in the fix %q", foreign.Fix)
	}
	if out, err := h5.Exec(ctx, "sh", "-c", fix[1]); err != nil {
		t.Fatalf("h5: %s: %v\n%s", fix[1], err, out)
	} else if !strings.Contains(string(out), "foreign-cluster") {
		t.Errorf("h5's join does not say it moved the foreign data aside:\n%s", out)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3", "h4", "h5")
	if out, err := h5.Exec(ctx, "sh", "-c", "find /var/lib -maxdepth 3 -name '*foreign-cluster*'"); err != nil || len(strings.TrimSpace(string(out))) == 0 {
		t.Errorf("h5's foreign data is not kept aside: %v %s", err, out)
	}
	if r, code = pluginDoctor(t, b); code != 0 {
		t.Errorf("doctor after the fixes: exit %d, %s", code, r.Summary)
	}

	// h5's Node object deleted (by mistake) while its member runs: the
	// member is still read (by its client URL, from another etcd pod) and
	// named as without a host, not counted as down; the fix doctor prints
	// (restart kubelet there, then kubeadm's control-plane mark) brings it
	// back and doctor is clean again.
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Nodes().Delete(ctx, "h5", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting node h5: %v", err)
	}
	r, code = pluginDoctor(t, b)
	gone := finding(r, "member-without-host", "h5")
	if code != 2 || gone == nil || gone.Severity != doctor.Warning || finding(r, "member-down", "") != nil || finding(r, "quorum-lost", "") != nil {
		t.Fatalf("doctor with h5's Node deleted: exit %d, member-without-host %+v; want it, and no member down", code, gone)
	}
	lines := strings.Split(gone.Fix, "\n")
	cmdOf := func(line string) string { c, _, _ := strings.Cut(line, "#"); return strings.TrimSpace(c) }
	if len(lines) != 4 || cmdOf(lines[0]) != "systemctl restart kubelet" || !strings.HasPrefix(lines[1], "kubectl label node h5 ") || !strings.HasPrefix(lines[2], "kubectl taint node h5 ") {
		t.Fatalf("the fix for h5's member without a Node:\n%s", gone.Fix)
	}
	mustExec(t, h5, cmdOf(lines[0]))
	waitFor(t, 2*time.Minute, "h5's Node to register again", func() bool {
		_, err := cs.CoreV1().Nodes().Get(ctx, "h5", metav1.GetOptions{})
		return err == nil
	})
	for _, line := range lines[1:3] {
		args := append([]string{"--kubeconfig", b.Kubeconfig()}, strings.Fields(cmdOf(line))[1:]...)
		if out, err := exec.Command(filepath.Join(b.BinDir(), "kubectl"), args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmdOf(line), err, out)
		}
	}
	waitFor(t, 2*time.Minute, "doctor to be clean with h5's Node back", func() bool {
		_, code := pluginDoctor(t, b)
		return code == 0
	})

	// No scheduled run may start a pod at the hour in the stories after.
	if _, err := plugin(t, b, "backup", "unschedule"); err != nil {
		t.Errorf("backup unschedule: %v", err)
	}
	noHostPodsLeft(t, b)
}
