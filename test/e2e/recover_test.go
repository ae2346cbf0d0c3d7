//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// staleWatch polls a returning stale host for dangerous behaviour: its etcd
// reporting a leader (a quorum of the old membership) or its apiserver
// answering (serving old data).
type staleWatch struct {
	mu           sync.Mutex
	violations   []string
	up, polls    int
	stoppedEarly time.Duration
}

// It ends after d, or earlier once the host's etcd has logged that it was
// permanently removed from the cluster (it then stops itself, and restarts
// by kubelet end the same way) and minWatch has passed.
func (s *staleWatch) run(t *testing.T, h *testbed.Host, ns string, minWatch, d time.Duration) {
	start := time.Now()
	deadline := start.Add(d)
	for time.Now().Before(deadline) {
		if time.Since(start) > minWatch && s.polls%5 == 0 {
			out, _ := h.Exec(context.Background(), "sh", "-c", "grep -l 'permanently removed' /var/log/pods/kube-system_etcd-*/etcd/*.log 2>/dev/null")
			if len(out) > 0 {
				s.mu.Lock()
				s.stoppedEarly = time.Since(start)
				s.mu.Unlock()
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		out, err := etcdctl(ctx, h, "endpoint", "status", "-w", "json", "--command-timeout=1s")
		cancel()
		s.mu.Lock()
		s.polls++
		if err == nil {
			var st []struct {
				Status struct {
					Leader uint64 `json:"leader"`
				} `json:"Status"`
			}
			if json.Unmarshal(out, &st) == nil && len(st) == 1 {
				s.up++
				if st[0].Status.Leader != 0 {
					s.violations = append(s.violations, fmt.Sprintf("%s %s: etcd reports leader %x", time.Now().Format("15:04:05.000"), h.Name, st[0].Status.Leader))
				}
			}
		}
		s.mu.Unlock()
		ctx, cancel = context.WithTimeout(context.Background(), 4*time.Second)
		out, err = h.Exec(ctx, "kubectl", "--server=https://127.0.0.1:6443", "--request-timeout=2s", "get", "configmaps", "-n", ns, "-o", "name")
		cancel()
		if err == nil {
			s.mu.Lock()
			s.violations = append(s.violations, fmt.Sprintf("%s %s: apiserver served %d configmaps", time.Now().Format("15:04:05.000"), h.Name, strings.Count(string(out), "\n")))
			s.mu.Unlock()
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func hasPath(t *testing.T, h *testbed.Host, glob string) string {
	t.Helper()
	out, _ := h.Exec(context.Background(), "sh", "-c", "ls -d "+glob+" 2>/dev/null")
	return strings.TrimSpace(string(out))
}

// storyRecoverQuorumLoss: 3 members, a writer; hosts 2 and 3 powered off,
// so etcd loses its quorum and the apiserver its storage. recover on host 1
// (killed after steps that leave each distinct journal state, and rerun)
// brings it back from host 1's data; hosts 2 and 3 come back together with
// their stale data and must neither elect a leader nor serve through their
// apiservers; join brings each back fresh; every acknowledged write is
// there; nothing was deleted. (recover on a host without data is refused:
// TestPluginMembers, after h3's leave.)
func storyRecoverQuorumLoss(t *testing.T, b *testbed.Bed) {
	h1, h2, h3 := b.Host("h1"), b.Host("h2"), b.Host("h3")
	leftBefore := pathsNow(t, h1, "/etc/kubernetes/kubectl-etcd/recovery.json /var/lib/etcd/.kubectl-etcd-*")
	copyGlob := "/var/lib/etcd/.kubectl-etcd-before-recover-*/member/snap/db /var/lib/etcd.before-recover-*/member/snap/db"
	copiesBefore := pathsNow(t, h1, copyGlob)
	staleGlob := "/var/lib/etcd/.kubectl-etcd-stale-member-*/member/snap/db /var/lib/etcd.stale-member-*/member/snap/db"
	staleBefore := map[string][]string{"h2": pathsNow(t, h2, staleGlob), "h3": pathsNow(t, h3, staleGlob)}
	ctx := context.Background()
	ep := "--endpoints=https://" + h1.Address + ":2379"
	wantVoters(t, b, "h1", "h1", "h2", "h3")

	// Bad input: a healthy cluster; not root.
	manifestBefore, _ := h1.ReadFile("/etc/kubernetes/manifests/etcd.yaml")
	if out, err := kectl(t, h1, "recover", "--yes"); err == nil || !strings.Contains(out, "nothing to recover") {
		t.Errorf("recover on a healthy cluster: %v\n%s", err, out)
	}
	if out, err := h1.Exec(ctx, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "kubectl-etcd", "recover", "--yes"); err == nil || !strings.Contains(string(out), "runs as root") {
		t.Errorf("recover as non-root: %v\n%s", err, out)
	}
	if out, err := plugin(t, b, "recover"); err == nil || !strings.Contains(out, "nothing to recover") || !strings.Contains(out, "CONTROL-PLANE NODE") {
		t.Errorf("kubectl etcd recover on a healthy cluster: %v\n%s", err, out)
	}
	if m, _ := h1.ReadFile("/etc/kubernetes/manifests/etcd.yaml"); string(m) != string(manifestBefore) {
		t.Error("a refused recover changed the etcd manifest")
	}
	if p := newPaths(t, h1, "/etc/kubernetes/kubectl-etcd/recovery.json /var/lib/etcd/.kubectl-etcd-*", leftBefore); len(p) > 0 {
		t.Errorf("a refused recover left %s", p)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")

	ns := "e2e-recover"
	w := startWriter(t, b, ns)
	// A workload on h1: recover restarts h1's kubelet; its containers must
	// keep running through that (same process, no container restart).
	wl := startWorkload(t, b, ns, "h1")
	time.Sleep(8 * time.Second)

	lost := loseQuorum(t, h1, h2, h3)

	// From the workstation: explained, with the host command.
	if out, err := plugin(t, b, "recover"); err == nil || !strings.Contains(out, "kubectl-etcd recover") {
		t.Errorf("kubectl etcd recover with the apiserver down: %v\n%s", err, out)
	}
	// Dry run: the plan, nothing changed.
	out, err := kectl(t, h1, "recover", "--dry-run")
	if err != nil || !strings.Contains(out, "force new cluster") || !strings.Contains(out, "h2") {
		t.Fatalf("recover --dry-run: %v\n%s", err, out)
	}
	if m, _ := h1.ReadFile("/etc/kubernetes/manifests/etcd.yaml"); string(m) != string(manifestBefore) {
		t.Error("recover --dry-run changed the etcd manifest")
	}
	// Without --yes and without a "yes" on stdin: nothing happens.
	if out, err := h1.Exec(ctx, "sh", "-c", "echo no | kubectl-etcd recover"); err == nil || !strings.Contains(string(out), "not confirmed") {
		t.Errorf("recover answered 'no': %v\n%s", err, out)
	}
	if m, _ := h1.ReadFile("/etc/kubernetes/manifests/etcd.yaml"); string(m) != string(manifestBefore) {
		t.Error("an unconfirmed recover changed the etcd manifest")
	}

	// A crash after each step that leaves a distinct journal state: etcd
	// parked without a journal; {copy}; {copy, quarantined} (the kills after
	// "verify" and "marker" would leave this state again, and the plan for
	// each state is unit-tested in pkg/recover); the normal manifest written;
	// kubelet restarted after it. Each rerun resumes from the journal, and
	// the end state is checked below: one copy of the data, the marker, the
	// voters.
	for _, step := range []string{"stop local etcd", "copy data dir", "force new cluster (quarantined)",
		"single-member manifest", "restart kubelet"} {
		killDuring(t, h1, step, "recover", "--yes")
	}
	out, err = kectl(t, h1, "recover", "--yes")
	if err != nil || !strings.Contains(out, "kubectl-etcd join --endpoints https://"+h1.Address+":2379") {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	t.Logf("quorum lost -> recovered on h1: %s", time.Since(lost).Round(100*time.Millisecond))
	// The last run was killed right after it restarted kubelet: the rerun
	// must not restart it again: kubelet already started after the manifest
	// was written (staticpod.KubeletStartedAfter).
	if !strings.Contains(out, "not restarted again: kubelet started after") {
		t.Errorf("the rerun after a kill right after \"restart kubelet\" did not skip the restart:\n%s", out)
	}
	apiserverReady(t, h1)
	wl.check(t, b)
	wantVoters(t, b, "h1", "h1")
	if copies := newPaths(t, h1, copyGlob, copiesBefore); len(copies) != 1 {
		t.Errorf("want exactly one complete copy of h1's data, got %q", copies)
	}
	if out, err := etcdctl(ctx, h1, "get", "--print-value-only", "/kubectl-etcd/recovery"); err != nil || !strings.Contains(string(out), `"host":"h1"`) {
		t.Errorf("recovery marker: %v %s", err, out)
	}
	// Twice: nothing to recover.
	if out, err := kectl(t, h1, "recover", "--yes"); err == nil || !strings.Contains(out, "nothing to recover") {
		t.Errorf("recover again: %v\n%s", err, out)
	}
	time.Sleep(5 * time.Second) // writes through the recovered cluster

	// Hosts 2 and 3 come back together with their stale data.
	var wg sync.WaitGroup
	for _, h := range []*testbed.Host{h2, h3} {
		wg.Go(func() {
			if err := h.PowerOn(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	watches := map[string]*staleWatch{"h2": {}, "h3": {}}
	for _, h := range []*testbed.Host{h2, h3} {
		wg.Go(func() { watches[h.Name].run(t, h, ns, 20*time.Second, 60*time.Second) })
	}
	wg.Wait()
	for name, s := range watches {
		t.Logf("%s stale window: %d polls, etcd answered %d times, violations %d, ended early after %s", name, s.polls, s.up, len(s.violations), s.stoppedEarly.Round(time.Second))
		for _, v := range s.violations {
			t.Errorf("split brain: %s", v)
		}
		h := b.Host(name)
		logs, _ := h.Exec(ctx, "sh", "-c", "cat /var/log/pods/kube-system_etcd-*/etcd/*.log | grep -c 'permanently removed' || true")
		t.Logf("%s etcd log lines saying it was permanently removed: %s", name, strings.TrimSpace(string(logs)))
	}
	wantVoters(t, b, "h1", "h1")

	// join brings each back fresh; the stale data is moved aside.
	for _, h := range []*testbed.Host{h2, h3} {
		out, err := kectl(t, h, "join", ep)
		if err != nil {
			t.Fatalf("join on %s: %v", h.Name, err)
		}
		if !strings.Contains(out, "cut off") || !strings.Contains(out, "stale") {
			t.Errorf("join on %s did not say its data was stale:\n%s", h.Name, out)
		}
		if p := newPaths(t, h, staleGlob, staleBefore[h.Name]); len(p) == 0 {
			t.Errorf("%s's stale data was not kept", h.Name)
		}
		apiserverReady(t, h)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")
	w.finish(t, b, ns)
}

// storyRecoverRebootedSurvivor: h2 and h3 die, then h1 reboots too, so its
// kubelet never reaches its apiserver after boot (it then does not finish
// terminating removed static pods). recover on h1 still brings it back, and
// h2, h3 join.
func storyRecoverRebootedSurvivor(t *testing.T, b *testbed.Bed) {
	h1, h2, h3 := b.Host("h1"), b.Host("h2"), b.Host("h3")
	ctx := context.Background()
	ns := "e2e-rebooted"
	w := startWriter(t, b, ns)
	time.Sleep(5 * time.Second)
	for _, h := range []*testbed.Host{h2, h3, h1} {
		if err := h.PowerOff(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := h1.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second) // kubelet up, etcd up without a quorum
	start := time.Now()
	if out, err := kectl(t, h1, "recover", "--yes"); err != nil {
		t.Fatalf("recover on the rebooted survivor: %v\n%s", err, out)
	}
	t.Logf("recover on the rebooted survivor took %s", time.Since(start).Round(100*time.Millisecond))
	apiserverReady(t, h1)
	wantVoters(t, b, "h1", "h1")
	for _, h := range []*testbed.Host{h2, h3} {
		if err := h.PowerOn(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range []*testbed.Host{h2, h3} {
		if out, err := kectl(t, h, "join", "--endpoints=https://"+h1.Address+":2379"); err != nil {
			t.Fatalf("join on %s: %v\n%s", h.Name, err, out)
		}
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")
	w.finish(t, b, ns)
}

// loseQuorum powers off the hosts down and waits until survivor's apiserver
// stops being ready (its etcd has no quorum); it returns when the power went.
func loseQuorum(t *testing.T, survivor *testbed.Host, down ...*testbed.Host) time.Time {
	t.Helper()
	ctx := context.Background()
	for _, h := range down {
		if err := h.PowerOff(ctx); err != nil {
			t.Fatal(err)
		}
	}
	lost := time.Now()
	for i := 0; ; i++ {
		out, err := survivor.Exec(ctx, "kubectl", "--server=https://127.0.0.1:6443", "--request-timeout=3s", "get", "--raw=/readyz")
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			return lost
		}
		if i > 60 {
			t.Fatalf("%s's apiserver still ready a minute after quorum loss", survivor.Name)
		}
		time.Sleep(time.Second)
	}
}

// workload is a plain pod pinned to a host, and the process its container runs.
type workload struct {
	ns, name string
	host     *testbed.Host
	pid      string
	uid      string
	cid      string
}

// startWorkload runs a sleeping pod on host (host network: the bed has no
// pod network) and notes its process and container.
func startWorkload(t *testing.T, b *testbed.Bed, ns, host string) *workload {
	t.Helper()
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	w := &workload{ns: ns, name: "workload-" + host, host: b.Host(host)}
	tag := "sleep 86399" // its command line, unique on the host
	if _, err := cs.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: w.name},
		Spec: corev1.PodSpec{NodeName: host, HostNetwork: true,
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{Name: "sleep", Image: testbed.ToolboxImage, ImagePullPolicy: corev1.PullNever,
				Command: strings.Fields(tag)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPodRunning(t, b, ns, w.name)
	w.uid = string(p.UID)
	if len(p.Status.ContainerStatuses) == 1 {
		w.cid = p.Status.ContainerStatuses[0].ContainerID
	}
	var out []byte
	for i := 0; i < 20; i++ { // Running may be reported a moment before the process shows
		if out, err = w.host.Exec(context.Background(), "pgrep", "-x", "-f", tag); err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the workload's process on %s: %v %s", host, err, out)
	}
	w.pid = strings.TrimSpace(string(out))
	return w
}

// check: the same process still runs, and the pod shows the same container
// with no restart.
func (w *workload) check(t *testing.T, b *testbed.Bed) {
	t.Helper()
	if out, err := w.host.Exec(context.Background(), "kill", "-0", w.pid); err != nil {
		t.Errorf("the workload's process %s on %s is gone: %v %s", w.pid, w.host.Name, err, out)
	}
	p := waitPodRunning(t, b, w.ns, w.name)
	if string(p.UID) != w.uid || len(p.Status.ContainerStatuses) != 1 {
		t.Fatalf("workload pod %s changed: uid %s (was %s), %d containers", w.name, p.UID, w.uid, len(p.Status.ContainerStatuses))
	}
	cs := p.Status.ContainerStatuses[0]
	if cs.RestartCount != 0 || cs.ContainerID != w.cid {
		t.Errorf("workload container restarted: restarts %d, container %s (was %s)", cs.RestartCount, cs.ContainerID, w.cid)
	}
	t.Logf("workload %s on %s: process %s and container %s kept running", w.name, w.host.Name, w.pid, w.cid)
}
