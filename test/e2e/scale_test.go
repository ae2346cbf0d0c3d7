//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// plugin runs kubectl-etcd as a kubectl plugin from "the workstation" (this
// machine's own network namespace, which reaches the bed only through the
// apiserver proxy on 127.0.0.1).
func plugin(t *testing.T, b *testbed.Bed, args ...string) (string, error) {
	t.Helper()
	start := time.Now()
	cmd := workstation(t, b, args...)
	out, err := cmd.CombinedOutput()
	t.Logf("workstation: kubectl etcd %s (%s)\n%s", strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond), out)
	return string(out), err
}

type statusJSON struct {
	Members []struct {
		Host    string `json:"host"`
		Healthy bool   `json:"healthy"`
		Learner bool   `json:"learner"`
		Leader  bool   `json:"leader"`
		Version string `json:"version"`
	} `json:"members"`
	Hosts []struct {
		Node          string `json:"node"`
		Member        string `json:"member"`
		APIServerEtcd string `json:"apiserverEtcdServers"`
	} `json:"hosts"`
}

func pluginStatus(t *testing.T, b *testbed.Bed) statusJSON {
	t.Helper()
	cmd := workstation(t, b, "status", "-o", "json")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("status -o json: %v", err)
	}
	var st statusJSON
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status -o json is not JSON: %v\n%s", err, out)
	}
	return st
}

func noHostPodsLeft(t *testing.T, b *testbed.Bed) {
	t.Helper()
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	pods, err := cs.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubectl-etcd"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) > 0 {
		t.Errorf("%d host pods left behind", len(pods.Items))
	}
}

// storyPluginScaleUp: a kubeadm control plane on h1 and two control-plane
// hosts without etcd; `kubectl etcd scale --replicas 3` from the workstation
// gives three voters, and the apiservers that waited for a local member serve;
// then `kubectl etcd snapshot save` streams a verified snapshot. On the scale
// chain's bed every address is IPv6 and every node name dotted
// (h1.cp.example.internal): the members' URLs are bracketed, and the
// apiservers read their members at https://[::1]:2379.
func storyPluginScaleUp(t *testing.T, b *testbed.Bed) {
	w := startWriter(t, b, "e2e-scale-writer")
	n1, n2 := node(b, "h1"), node(b, "h2")

	if out, err := plugin(t, b, "version"); err != nil || !strings.Contains(out, "Server Version: "+testbed.KubernetesVersion) ||
		!hasRow(out, n1, testbed.EtcdPreviousTag) {
		t.Errorf("version: %v", err)
	}
	out, err := plugin(t, b, "status")
	if err != nil || !strings.Contains(out, "control-plane node "+n2+" has no etcd member") {
		t.Fatalf("status before: %v", err)
	}
	// h2 lacks the etcd CA (joined without uploaded certificates, say):
	// scale brings it over, sealed, from h1.
	h1, h2 := b.Host("h1"), b.Host("h2")
	mustExec(t, h2, "mkdir -p /root/ca-aside && mv /etc/kubernetes/pki/etcd/ca.crt /etc/kubernetes/pki/etcd/ca.key /root/ca-aside/")
	// h2 keeps kubeadm patches where kubeadm's docs put them: its new
	// member's manifest gets its etcd patch, as kubeadm join's would.
	mustExec(t, h2, `mkdir -p /etc/kubernetes/patches && printf 'metadata:\n  annotations:\n    e2e.kubectl-etcd.io/patched: "yes"\n' > /etc/kubernetes/patches/etcd+strategic.yaml`)
	out, err = plugin(t, b, "scale", "--replicas", "2")
	if err != nil || !strings.Contains(out, "tolerate no more failures") {
		t.Errorf("an even count must warn: %v", err)
	}
	// The host verb used the ClusterConfiguration the plugin read, and
	// the host's patches.
	if !strings.Contains(out, "configuration from ConfigMap kube-system/kubeadm-config (as the plugin read it); kubeadm patches from /etc/kubernetes/patches") {
		t.Errorf("the join on h2 does not say it used the plugin's ClusterConfiguration and h2's patches")
	}
	if m, err := h2.ReadFile("/etc/kubernetes/manifests/etcd.yaml"); err != nil || !strings.Contains(string(m), `e2e.kubectl-etcd.io/patched: "yes"`) {
		t.Errorf("h2's etcd manifest lacks its kubeadm patch (%v):\n%s", err, m)
	}
	if !strings.Contains(out, "take a verified snapshot on "+n1) {
		t.Errorf("scale did not take a snapshot first")
	}
	if out, err := h1.Exec(context.Background(), "sh", "-c", "ls /var/lib/kubectl-etcd/backups"); err != nil || !strings.Contains(string(out), "-pre-scale.db") {
		t.Errorf("no pre-scale snapshot on h1: %v\n%s", err, out)
	}
	if !strings.Contains(out, n2+" has no etcd CA: sending it") || !strings.Contains(out, "installed on "+n2) {
		t.Errorf("scale did not say it brought the etcd CA to h2")
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Errorf("a private key shows in the plugin's output")
	}
	sums := func(h *testbed.Host) string {
		out, err := h.Exec(context.Background(), "sh", "-c", "cd /etc/kubernetes/pki/etcd && sha256sum ca.crt ca.key && stat -c %a ca.key")
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	if a, b := sums(h1), sums(h2); a != b || !strings.HasSuffix(strings.TrimSpace(a), "600") {
		t.Errorf("etcd CA on h2 differs from h1's or its key is not 0600:\nh1:\n%s\nh2:\n%s", a, b)
	}
	wantVoters(t, b, "h1", "h1", "h2")
	scaleWhileOthersRun(t, b)
	wantVoters(t, b, "h1", "h1", "h2", "h3")
	for _, name := range []string{"h1", "h2", "h3"} { // (h4, h5 are bare hosts for a later story)
		apiserverReady(t, b.Host(name))
	}
	st := pluginStatus(t, b)
	if len(st.Members) != 3 {
		t.Errorf("status shows %d members", len(st.Members))
	}
	for _, m := range st.Members {
		if !m.Healthy || m.Learner || m.Host == "" {
			t.Errorf("member row %+v", m)
		}
	}
	for _, h := range st.Hosts {
		if hh := b.Host(h.Node); hh == nil || h.Member == "" || h.APIServerEtcd != hh.LocalEtcdURL() {
			t.Errorf("host row %+v", h)
		}
	}
	checkStatusPaths(t, b)
	snapshotSave(t, b)
	// Bad input changes nothing.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"scale", "--replicas", "0"}, "at least 1"},
		{[]string{"scale", "--replicas", "5"}, "more than the 3 control-plane nodes"},
		{[]string{"scale", "--nodes", n1 + ",nope"}, `"nope" is not a control-plane node`},
		{[]string{"status", "--via", "ssh"}, `unknown --via "ssh" (auto, exec, host-pod)`},
	} {
		if out, err := plugin(t, b, tc.args...); err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%v: want %q, got %v", tc.args, tc.want, err)
		}
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")
	noHostPodsLeft(t, b)
	w.finish(t, b, "e2e-scale-writer")
}

// snapshotSave: `kubectl etcd snapshot save FILE` from the workstation
// streams a snapshot from a member through the apiserver, verified, to a
// file here; its report names the member's client URL (in brackets on an
// IPv6 bed).
func snapshotSave(t *testing.T, b *testbed.Bed) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "etcd.db")
	out, err := plugin(t, b, "snapshot", "save", path)
	if err != nil || !strings.Contains(out, "Snapshot saved to "+path) || !strings.Contains(out, "verified:") {
		t.Fatalf("snapshot save: %v", err)
	}
	named := false
	for _, h := range []string{"h1", "h2", "h3"} {
		named = named || strings.Contains(out, " at https://"+net.JoinHostPort(b.Host(h).Address, "2379")+", cluster ")
	}
	if !named {
		t.Errorf("snapshot save does not name its member's client URL (https://%s for h1's)", net.JoinHostPort(b.Host("h1").Address, "2379"))
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() < 1<<20 {
		t.Errorf("snapshot file %s: %v", path, err)
	}
}

// scaleWhileOthersRun runs `scale --replicas 3` and, once it starts adding
// h3, a colleague's `status` and second `scale` from another
// terminal: status answers, the second scale is refused naming the first
// run (its pid) and changes nothing, and the first completes, none of its
// pods deleted under it.
func scaleWhileOthersRun(t *testing.T, b *testbed.Bed) {
	t.Helper()
	cmd, sc, waited := startPlugin(t, b, "scale", "--replicas", "3")
	type others struct {
		status, second string
		statusErr      error
		secondErr      error
	}
	got := make(chan others, 1)
	var first strings.Builder
	started := false
	for sc.Scan() {
		line := sc.Text()
		first.WriteString(line + "\n")
		// The step adding h3 starts: the first run holds the lock and is
		// mid-way (its join on h3 takes half a minute).
		if !started && strings.Contains(line, "] add "+node(b, "h3")+": ") {
			started = true
			go func() {
				var o others
				o.status, o.statusErr = plugin(t, b, "status")
				o.second, o.secondErr = plugin(t, b, "scale", "--replicas", "3")
				got <- o
			}()
		}
	}
	err := <-waited
	t.Logf("workstation: kubectl etcd scale --replicas 3 (the first run, pid %d)\n%s", cmd.Process.Pid, first.String())
	if err != nil {
		t.Fatalf("scale --replicas 3 with a colleague's status and scale beside it: %v", err)
	}
	if !started {
		t.Fatal("the first scale never started adding h3: nothing ran beside it")
	}
	o := <-got
	if o.statusErr != nil || !strings.Contains(o.status, "voting members") {
		t.Errorf("status beside a running scale: %v", o.statusErr)
	}
	if o.secondErr == nil || !strings.Contains(o.second, "another kubectl-etcd run holds this cluster's run lock") ||
		!strings.Contains(o.second, fmt.Sprintf("pid %d (scale: ", cmd.Process.Pid)) || !strings.Contains(o.second, "nothing was changed") {
		t.Errorf("a second scale beside the first must be refused naming it (pid %d): %v", cmd.Process.Pid, o.secondErr)
	}
	if strings.Contains(o.second, "[1/") {
		t.Errorf("the refused scale ran a step")
	}
	if strings.Contains(first.String(), "removed pod") || strings.Contains(o.status+o.second, "removed pod") {
		t.Errorf("a run removed another's pod")
	}
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoordinationV1().Leases("kube-system").Get(context.Background(), "kubectl-etcd", metav1.GetOptions{}); err == nil {
		t.Errorf("the run lock is still held after the first scale ended")
	}
}
