//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// writer creates ConfigMaps through the bed's load balancer until stopped,
// recording every write the apiserver acknowledged.
type writer struct {
	mu    sync.Mutex
	acked []string
	fails int
	stop  chan struct{}
	done  chan struct{}
}

func startWriter(t *testing.T, b *testbed.Bed, ns string) *writer {
	t.Helper()
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			case <-time.After(150 * time.Millisecond):
			}
			name := fmt.Sprintf("w-%05d", i)
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := cs.CoreV1().ConfigMaps(ns).Create(wctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"i": fmt.Sprint(i)}}, metav1.CreateOptions{})
			cancel()
			w.mu.Lock()
			if err == nil {
				w.acked = append(w.acked, name)
			} else {
				w.fails++
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// finish stops the writer and checks every acknowledged write is readable.
func (w *writer) finish(t *testing.T, b *testbed.Bed, ns string) {
	t.Helper()
	close(w.stop)
	<-w.done
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	var list *corev1.ConfigMapList
	for i := 0; i < 60; i++ {
		list, err = cs.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{})
		if err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		t.Fatalf("listing the writer's objects: %v", err)
	}
	have := map[string]bool{}
	for _, cm := range list.Items {
		have[cm.Name] = true
	}
	missing := 0
	for _, n := range w.acked {
		if !have[n] {
			missing++
			if missing < 5 {
				t.Errorf("acknowledged write %s is lost", n)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged writes lost", missing, len(w.acked))
	}
	if len(w.acked) < 20 {
		t.Errorf("the writer got only %d writes through (%d failed): the cluster was not serving", len(w.acked), w.fails)
	}
	t.Logf("writer: %d writes acknowledged, all readable; %d refused while the cluster changed", len(w.acked), w.fails)
}

type memberJSON struct {
	Members []struct {
		Name      string   `json:"name"`
		PeerURLs  []string `json:"peerURLs"`
		IsLearner bool     `json:"isLearner"`
	} `json:"members"`
}

// voters returns the sorted names of voting members, and learners.
func voters(t *testing.T, b *testbed.Bed, via string) (names []string, learners int) {
	t.Helper()
	out, err := etcdctl(context.Background(), b.Host(via), "member", "list", "-w", "json")
	if err != nil {
		t.Fatal(err)
	}
	var ml memberJSON
	if err := json.Unmarshal(out, &ml); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, m := range ml.Members {
		if m.IsLearner {
			learners++
		} else {
			names = append(names, m.Name)
		}
	}
	sortStrings(names)
	return names, learners
}

func sortStrings(s []string) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}

// wantVoters: the voting members are the named hosts' (by the bed's names:
// the members are named after the nodes).
func wantVoters(t *testing.T, b *testbed.Bed, via string, want ...string) {
	t.Helper()
	want = slices.Clone(want)
	for i, w := range want {
		want[i] = node(b, w)
	}
	got, learners := voters(t, b, via)
	if strings.Join(got, ",") != strings.Join(want, ",") || learners != 0 {
		t.Fatalf("voting members %v (+%d learners), want %v", got, learners, want)
	}
}

// leaderHost asks kubectl-etcd status on h2 which host's member leads.
func leaderHost(t *testing.T, b *testbed.Bed) *testbed.Host {
	t.Helper()
	out, err := b.Host("h2").Exec(context.Background(), "kubectl-etcd", "status", "--local", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Members []struct {
			Name   string `json:"name"`
			Leader bool   `json:"leader"`
		} `json:"members"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, m := range st.Members {
		if m.Leader && b.Host(m.Name) != nil {
			return b.Host(m.Name)
		}
	}
	t.Fatalf("no member leads: %s", out)
	return nil
}

// kectl runs the host-local binary on a host and returns its output.
func kectl(t *testing.T, h *testbed.Host, args ...string) (string, error) {
	t.Helper()
	start := time.Now()
	out, err := h.Exec(cmdContext(t), append([]string{"kubectl-etcd"}, args...)...)
	t.Logf("%s: kubectl-etcd %s (%s)\n%s", h.Name, strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond), out)
	return string(out), err
}

func apiserverReady(t *testing.T, h *testbed.Host) {
	t.Helper()
	var out []byte
	var err error
	for i := 0; i < 90; i++ {
		out, err = h.Exec(context.Background(), "kubectl", "--server=https://127.0.0.1:6443", "--request-timeout=5s", "get", "--raw=/readyz")
		if err == nil && strings.TrimSpace(string(out)) == "ok" {
			return
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("apiserver of %s not ready: %v %s", h.Name, err, out)
}

// killDuring starts the host-local binary and SIGKILLs it as soon as its
// output shows the given step finished: a crash at that point.
func killDuring(t *testing.T, h *testbed.Host, afterStep string, args ...string) {
	t.Helper()
	cmd, err := h.Command(cmdContext(t), append([]string{"kubectl-etcd"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); pw.Close() }()
	sc := bufio.NewScanner(pr)
	inStep, killed := false, false
	var seen, steps []string
	for sc.Scan() {
		line := sc.Text()
		seen = append(seen, line)
		if strings.Contains(line, "done in") || strings.Contains(line, "failed after") {
			steps = append(steps, fmt.Sprintf("%6.1fs %s", time.Since(start).Seconds(), strings.TrimSpace(line)))
		}
		if strings.Contains(line, "] "+afterStep+":") {
			inStep = true
			continue
		}
		if inStep && strings.Contains(line, "done in") && !killed {
			if _, err := h.Exec(context.Background(), "pkill", "-KILL", "-x", "kubectl-etcd"); err != nil {
				t.Fatalf("killing kubectl-etcd on %s: %v", h.Name, err)
			}
			killed = true
		}
	}
	if !killed {
		t.Fatalf("step %q never finished; output:\n%s", afterStep, strings.Join(seen, "\n"))
	}
	took := time.Since(start)
	t.Logf("%s: SIGKILLed kubectl-etcd %s after step %q (%s after it started); its steps:\n%s", h.Name, strings.Join(args, " "), afterStep, took.Round(100*time.Millisecond), strings.Join(steps, "\n"))
	if took > time.Minute {
		// Why a step waited this long is kubelet's to tell.
		out, _ := h.Exec(context.Background(), "sh", "-c", fmt.Sprintf("tail -n 4000 /var/log/testbed/kubelet.log | grep -E 'etcd|mount|Unable|timed out|terminat|SyncLoop' | tail -n 60"))
		t.Logf("%s: kubelet's log around the slow run:\n%s", h.Name, out)
	}
}

// TestHostLocalJoinLeave: the host-local binary grows host 1's kubeadm etcd to
// three members on two control-plane hosts that had none, shrinks and regrows
// it, survives being killed mid-join, and refuses bad input — while a writer
// keeps writing through the apiservers and loses nothing.
func TestHostLocalJoinLeave(t *testing.T) {
	b := upBed(t, "e2ehost", "10.99.3", testbed.RoleInit, testbed.RoleControlPlaneNoEtcd, testbed.RoleControlPlaneNoEtcd)
	h1, h2, h3 := b.Host("h1"), b.Host("h2"), b.Host("h3")
	ep := "--endpoints=https://" + h1.Address + ":2379"

	// Bad input first, while the cluster is a single member.
	if out, err := kectl(t, h1, "leave"); err == nil || !strings.Contains(out, "last member") {
		t.Errorf("leave of the last member must be refused, got %v:\n%s", err, out)
	}
	wantVoters(t, b, "h1", "h1")
	if out, err := kectl(t, h2, "join", "--endpoints=https://10.99.3.250:2379"); err == nil || !strings.Contains(out, "no etcd endpoint answered") {
		t.Errorf("join with a dead endpoint: %v\n%s", err, out)
	}
	if out, err := kectl(t, h2, "join", ep, "--node-name=h9"); err == nil || !strings.Contains(out, `does not match this host`) {
		t.Errorf("join with a wrong node name: %v\n%s", err, out)
	}
	if out, err := kectl(t, h2, "join", ep, "--advertise-address=10.99.3.13"); err == nil || !strings.Contains(out, "does not belong to this host") {
		t.Errorf("join with another host's address: %v\n%s", err, out)
	}
	if _, err := h2.ReadFile("/etc/kubernetes/manifests/etcd.yaml"); err == nil {
		t.Fatal("a refused join wrote a manifest")
	}
	wantVoters(t, b, "h1", "h1")

	w := startWriter(t, b, "e2e-writer")

	// Dry run: the plan, and nothing changed.
	before, _ := h2.Exec(context.Background(), "sh", "-c", "find /etc/kubernetes /var/lib/etcd -exec stat -c '%n %s %Y %a' {} + | sort | md5sum")
	out, err := kectl(t, h2, "join", ep, "--dry-run")
	if err != nil || !strings.Contains(out, "add learner") || !strings.Contains(out, "promote") || !strings.Contains(out, "dry run") {
		t.Fatalf("dry-run join: %v\n%s", err, out)
	}
	// Run by hand, join says it does not read the other members' settings.
	if !strings.Contains(out, "the other members' manifests are not read from this host") {
		t.Error("a join by hand does not say that the other members' shared settings are not carried")
	}
	after, _ := h2.Exec(context.Background(), "sh", "-c", "find /etc/kubernetes /var/lib/etcd -exec stat -c '%n %s %Y %a' {} + | sort | md5sum")
	if string(before) != string(after) {
		t.Error("join --dry-run changed files on h2")
	}
	wantVoters(t, b, "h1", "h1")

	// join h2, h3 -> 3 voters; each host's apiserver now serves from its member.
	for _, h := range []*testbed.Host{h2, h3} {
		if _, err := kectl(t, h, "join", ep); err != nil {
			t.Fatalf("join on %s: %v", h.Name, err)
		}
		apiserverReady(t, h)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")
	// Twice is the same as once.
	if out, err := kectl(t, h2, "join", ep); err != nil || !strings.Contains(out, "already a voting member") {
		t.Errorf("second join on h2: %v\n%s", err, out)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")

	// leave h3 -> 2 voters; h3's apiserver keeps serving from the others.
	if _, err := kectl(t, h3, "leave"); err != nil {
		t.Fatalf("leave on h3: %v", err)
	}
	wantVoters(t, b, "h1", "h1", "h2")
	apiserverReady(t, h3)
	if m, _ := h3.ReadFile("/etc/kubernetes/manifests/kube-apiserver.yaml"); strings.Contains(string(m), "--etcd-servers=https://127.0.0.1:2379") {
		t.Error("h3's apiserver still points at its removed local member")
	}
	// In the bed /var/lib/etcd is a mount point (as on hosts with a disk for
	// etcd), so its data is kept inside it.
	if out, _ := h3.Exec(context.Background(), "sh", "-c", "ls -d /var/lib/etcd.left-* /var/lib/etcd/.kubectl-etcd-left-*/member/snap/db"); !strings.Contains(string(out), "left-") {
		t.Errorf("h3's data was not moved aside: %s", out)
	}
	if out, err := kectl(t, h3, "leave"); err != nil || !strings.Contains(out, "nothing to do") {
		t.Errorf("second leave on h3: %v\n%s", err, out)
	}
	wantVoters(t, b, "h1", "h1", "h2")

	// Crashes: SIGKILL join right after the learner was added, rerun; then
	// leave again and SIGKILL right after the manifest was written, rerun.
	killDuring(t, h3, "add learner", "join", ep)
	if _, err := kectl(t, h3, "join", ep); err != nil {
		t.Fatalf("join rerun after a crash after add learner: %v", err)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")
	if _, err := kectl(t, h3, "leave"); err != nil {
		t.Fatalf("leave on h3: %v", err)
	}
	killDuring(t, h3, "manifest", "join", ep)
	if _, err := kectl(t, h3, "join", ep); err != nil {
		t.Fatalf("join rerun after a crash after the manifest: %v", err)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")
	for _, h := range []*testbed.Host{h1, h2, h3} {
		apiserverReady(t, h)
	}

	// The leader leaves: leadership is handed over first; then it comes back.
	leader, other := leaderHost(t, b), ""
	for _, n := range []string{"h1", "h2", "h3"} {
		if n != leader.Name && other == "" {
			other = n
		}
	}
	out, err = kectl(t, leader, "leave")
	if err != nil || !strings.Contains(out, "move leadership") {
		t.Fatalf("leave of the leader %s: %v\n%s", leader.Name, err, out)
	}
	if got, _ := voters(t, b, other); len(got) != 2 {
		t.Errorf("after the leader left: voters %v", got)
	}
	apiserverReady(t, leader)
	if _, err := kectl(t, leader, "join", "--endpoints=https://"+b.Host(other).Address+":2379"); err != nil {
		t.Fatalf("join %s back: %v", leader.Name, err)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")

	// status --local, as JSON for scripts.
	out, err = kectl(t, h2, "status", "--local", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Members []struct {
			Name    string `json:"name"`
			Healthy bool   `json:"healthy"`
		} `json:"members"`
		Local *struct {
			Name    string `json:"name"`
			Learner bool   `json:"learner"`
		} `json:"local"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json is not JSON: %v\n%s", err, out)
	}
	if st.Local == nil || st.Local.Name != "h2" || st.Local.Learner || len(st.Members) != 3 {
		t.Errorf("status: %+v", st)
	}
	for _, m := range st.Members {
		if !m.Healthy {
			t.Errorf("member %s unhealthy in status", m.Name)
		}
	}
	w.finish(t, b, "e2e-writer")

	hostLocalRemoveDeadPeer(t, b)
}

// hostLocalRemoveDeadPeer: h3 dies and the apiservers are down, so the
// plugin cannot help; on h1, the host-local `remove --local` removes h3's
// member through etcd alone, after refusing bad targets without changing
// anything. It ends the test: h3 stays off and the apiservers down.
func hostLocalRemoveDeadPeer(t *testing.T, b *testbed.Bed) {
	ctx := context.Background()
	h1, h2, h3 := b.Host("h1"), b.Host("h2"), b.Host("h3")
	if err := h3.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*testbed.Host{h1, h2} {
		if out, err := h.Exec(ctx, "mv", "/etc/kubernetes/manifests/kube-apiserver.yaml", "/etc/kubernetes/kube-apiserver.yaml.e2e-parked"); err != nil {
			t.Fatalf("parking %s's apiserver: %v %s", h.Name, err, out)
		}
	}
	for _, h := range []*testbed.Host{h1, h2} {
		for i := 0; ; i++ {
			out, err := h.Exec(ctx, "kubectl", "--server=https://127.0.0.1:6443", "--request-timeout=3s", "get", "--raw=/readyz")
			if err != nil || strings.TrimSpace(string(out)) != "ok" {
				break
			}
			if i > 60 {
				t.Fatalf("%s's apiserver still ready a minute after its manifest was removed", h.Name)
			}
			time.Sleep(time.Second)
		}
	}
	// h1 sees h3 down once its status read of h3 times out.
	for i := 0; ; i++ {
		if healthy, ok := localMembers(t, h1)["h3"]; ok && !healthy {
			break
		}
		if i > 30 {
			t.Fatalf("h3 still looks healthy to h1 after its power-off: %v", localMembers(t, h1))
		}
		time.Sleep(time.Second)
	}
	// doctor --local on h1, the first thing to run when paged: it names h3's
	// dead member, with one more failure the quorum lost, and the command
	// that removes it from here; the verdict is exit code 2.
	out, code := hostDoctor(t, h1, "--local")
	if code != 2 || !strings.Contains(out, "CRITICAL [member-down] h3: voting member h3") ||
		!strings.Contains(out, "fix: kubectl-etcd remove --local h3   # as root on h1, if h3 is gone for good") {
		t.Errorf("doctor --local on h1 with h3 dead: exit code %d, want 2 and h3's member-down with its fix:\n%s", code, out)
	}
	if r, code := hostDoctorJSON(t, h1); code != 2 || r.Healthy || !hasFinding(r, "member-down", "h3", "critical", "kubectl-etcd remove --local h3 ") {
		t.Errorf("doctor --local -o json on h1 with h3 dead: exit code %d, healthy %v, findings %+v", code, r.Healthy, r.Findings)
	}
	backups := func() string {
		out, _ := h1.Exec(ctx, "sh", "-c", "ls /var/lib/kubectl-etcd/backups/ 2>/dev/null | grep pre-remove || true")
		return strings.TrimSpace(string(out))
	}
	before := backups()

	// Refused, each changing nothing: an unknown member, this host's own,
	// and the healthy h2 (with h3 dead, 1 of 2 voters would remain).
	for _, tc := range []struct{ target, want string }{
		{"h9", `"h9" is not a member of this cluster (members: `},
		{"h1", "is this host's own: run `kubectl-etcd leave` here"},
		{"h2", "so the cluster would stop"},
	} {
		if out, err := kectl(t, h1, "remove", "--local", tc.target); err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("remove --local %s: %v, want %q in:\n%s", tc.target, err, tc.want, out)
		}
	}
	if out, err := kectl(t, h1, "remove", "--local", "h3", "--dry-run"); err != nil || !strings.Contains(out, "remove member h3") || !strings.Contains(out, "dry run") {
		t.Errorf("remove --local h3 --dry-run: %v\n%s", err, out)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")
	if got := backups(); got != before {
		t.Errorf("a refused or dry run wrote a backup: %q (before: %q)", got, before)
	}

	out, err := kectl(t, h1, "remove", "--local", "h3")
	if err != nil || !strings.Contains(out, "remove member") {
		t.Fatalf("remove --local h3: %v\n%s", err, out)
	}
	wantVoters(t, b, "h1", "h1", "h2")
	if got := backups(); got == before || !strings.Contains(got, "pre-remove") {
		t.Errorf("no pre-remove backup on h1: %q", got)
	}
	// Again: nothing left to remove, said so, nothing changed.
	if out, err := kectl(t, h1, "remove", "--local", "h3"); err == nil || !strings.Contains(out, `"h3" is not a member`) {
		t.Errorf("second remove --local h3: %v\n%s", err, out)
	}
	wantVoters(t, b, "h1", "h1", "h2")
	if m := localMembers(t, h2); len(m) != 2 || !m["h1"] || !m["h2"] {
		t.Errorf("status --local on h2 after the removal: members %v, want h1 and h2 healthy", m)
	}
	// Now doctor on h1 finds nothing at all: h3's member is gone, h1 and h2
	// hold the quorum, and the removal's pre-remove snapshot is h1's backup
	// (h1's apiserver is parked, so its --etcd-servers are not checked).
	if r, code := hostDoctorJSON(t, h1); code != 0 || !r.Healthy || len(r.Findings) != 0 {
		t.Errorf("doctor --local on h1 after h3's removal: exit code %d, healthy %v, findings %+v", code, r.Healthy, r.Findings)
	}
}

type doctorReport struct {
	Healthy  bool `json:"healthy"`
	Findings []struct {
		Check    string `json:"check"`
		Severity string `json:"severity"`
		Subject  string `json:"subject"`
		Problem  string `json:"problem"`
		Fix      string `json:"fix"`
	} `json:"findings"`
	Checked []string `json:"checked"`
}

// hostDoctor runs `kubectl-etcd doctor` on h; its output and exit code.
func hostDoctor(t *testing.T, h *testbed.Host, args ...string) (string, int) {
	t.Helper()
	out, err := kectl(t, h, append([]string{"doctor"}, args...)...)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &exit):
		return out, exit.ExitCode()
	}
	t.Fatalf("doctor on %s: %v", h.Name, err)
	return "", 0
}

// hostDoctorJSON is `kubectl-etcd doctor --local -o json` on h.
func hostDoctorJSON(t *testing.T, h *testbed.Host) (doctorReport, int) {
	t.Helper()
	out, code := hostDoctor(t, h, "--local", "-o", "json")
	// Warnings (the apiserver is down) may precede the document.
	if i := strings.Index(out, "\n{"); i >= 0 && !strings.HasPrefix(out, "{") {
		out = out[i+1:]
	}
	var r doctorReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("doctor --local -o json on %s (exit code %d): %v\n%s", h.Name, code, err, out)
	}
	return r, code
}

func hasFinding(r doctorReport, check, subject, severity, fix string) bool {
	for _, f := range r.Findings {
		if f.Check == check && f.Subject == subject && f.Severity == severity && strings.Contains(f.Fix, fix) {
			return true
		}
	}
	return false
}

// localMembers is `status --local -o json` on h: each member's health by name.
func localMembers(t *testing.T, h *testbed.Host) map[string]bool {
	t.Helper()
	out, err := h.Exec(context.Background(), "kubectl-etcd", "status", "--local", "-o", "json")
	var st struct {
		Members []struct {
			Name    string `json:"name"`
			Healthy bool   `json:"healthy"`
		} `json:"members"`
	}
	// Warnings (the apiserver is down: the configuration comes from the
	// host's manifests) may precede the document on the combined output.
	doc := string(out)
	if i := strings.Index(doc, "\n{"); i >= 0 && !strings.HasPrefix(doc, "{") {
		doc = doc[i+1:]
	}
	if jerr := json.Unmarshal([]byte(doc), &st); jerr != nil {
		t.Fatalf("status --local -o json on %s: %v %v\n%s", h.Name, err, jerr, out)
	}
	m := map[string]bool{}
	for _, x := range st.Members {
		m[x.Name] = x.Healthy
	}
	return m
}
