//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// TestPluginBadInputAndInterrupts: bad input gets a clear error and changes
// nothing; a plugin stopped by Ctrl-C deletes its host pod, one killed by
// SIGKILL leaves it to the next run, which removes it; both reruns converge.
func TestPluginBadInputAndInterrupts(t *testing.T) {
	b := upBed(t, "e2eintr", "10.99.13", testbed.RoleInit, testbed.RoleControlPlaneNoEtcd, testbed.RoleWorker)
	bedShape(t, b, map[string]testbed.Role{"h1": testbed.RoleInit, "h2": testbed.RoleControlPlaneNoEtcd, "h3": testbed.RoleWorker})

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"remove", "nope"}, []string{`"nope" is neither a control-plane node nor an etcd member`, "h1, h2"}},
		{[]string{"remove", "h3"}, []string{"node h3 is not a control-plane node"}},
		{[]string{"replace", "h3"}, []string{"node h3 is not a control-plane node"}},
		{[]string{"replace", "h2"}, []string{"node h2 has no etcd member to replace"}},
		{[]string{"remove", "h1"}, []string{"last member"}},
		{[]string{"replace", "h1"}, []string{"last member", "restore"}},
		{[]string{"remove"}, []string{"exactly one NODE|MEMBER"}},
		{[]string{"scale", "--replicas", "3"}, []string{"more than the 2 control-plane nodes"}},
		// status reads through the etcd pods' etcdctl and needs no image;
		// the host-pod path, which does, is asked for by name.
		{[]string{"status", "--via", "host-pod", "--image", "localhost/testbed/nope:1"}, []string{"localhost/testbed/nope:1", "h1"}},
		{[]string{"status", "--server", "https://127.0.0.1:1"}, []string{"does not answer", "kubectl-etcd status --local"}},
	} {
		out, err := plugin(t, b, tc.args...)
		if err == nil {
			t.Errorf("%v succeeded, want an error", tc.args)
		}
		for _, want := range tc.want {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %q", tc.args, want)
			}
		}
	}
	wantVoters(t, b, "h1", "h1")
	waitNoHostPods(t, b)

	// Ctrl-C while h2 joins: the plugin deletes its pod on the way out.
	out := interruptPlugin(t, b, syscall.SIGINT, "h2 | ", "scale", "--replicas", "2")
	if !strings.Contains(out, "h2 | ") {
		t.Fatalf("the plugin was not interrupted during h2's host pod")
	}
	for _, p := range hostPods(t, b) {
		if p.DeletionTimestamp == nil {
			t.Errorf("after Ctrl-C, host pod %s is left running", p.Name)
		}
	}
	waitNoHostPods(t, b)
	if _, err := plugin(t, b, "scale", "--replicas", "2"); err != nil {
		t.Fatalf("scale --replicas 2 after Ctrl-C: %v", err)
	}
	wantVoters(t, b, "h1", "h1", "h2")

	// SIGKILL while h2 leaves: its pod stays until the next run removes it.
	interruptPlugin(t, b, syscall.SIGKILL, "h2 | ", "scale", "--replicas", "1")
	left := 0
	for _, p := range hostPods(t, b) {
		if p.DeletionTimestamp == nil {
			left++
		}
	}
	if left == 0 {
		t.Errorf("a SIGKILLed plugin left no host pod: the cleanup on the next run is not tested")
	}
	if _, err := plugin(t, b, "scale", "--replicas", "1"); err != nil {
		t.Fatalf("scale --replicas 1 after SIGKILL: %v", err)
	}
	wantVoters(t, b, "h1", "h1")
	apiserverReady(t, b.Host("h2"))
	waitNoHostPods(t, b)
}

// startPlugin starts the plugin from the workstation: its output (stdout
// and stderr) line by line, and its end, sent once the output is all read.
func startPlugin(t *testing.T, b *testbed.Bed, args ...string) (*exec.Cmd, *bufio.Scanner, <-chan error) {
	t.Helper()
	cmd := workstation(t, b, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait(); pw.Close() }()
	return cmd, bufio.NewScanner(pr), waited
}

// interruptPlugin runs the plugin and sends sig as soon as a line with
// marker (a host pod's relayed output) shows up, then waits for it to end;
// it returns the output.
func interruptPlugin(t *testing.T, b *testbed.Bed, sig syscall.Signal, marker string, args ...string) string {
	t.Helper()
	cmd, sc, waited := startPlugin(t, b, args...)
	var b2 strings.Builder
	sent := false
	var sentAt time.Time
	for sc.Scan() {
		line := sc.Text()
		b2.WriteString(line + "\n")
		if !sent && strings.Contains(line, marker) {
			_ = cmd.Process.Signal(sig)
			sent, sentAt = true, time.Now()
		}
	}
	err := <-waited
	t.Logf("kubectl etcd %s, %v after a host pod's first line: %v (exit %v after %s)\n%s", strings.Join(args, " "), sig, sent, err,
		time.Since(sentAt).Round(100*time.Millisecond), b2.String())
	if sent && time.Since(sentAt) > 45*time.Second {
		t.Errorf("the plugin took %s to stop after %v", time.Since(sentAt).Round(time.Second), sig)
	}
	return b2.String()
}

type podInfo struct {
	Name              string
	DeletionTimestamp *metav1.Time
}

func hostPods(t *testing.T, b *testbed.Bed) []podInfo {
	t.Helper()
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	pods, err := cs.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubectl-etcd"})
	if err != nil {
		t.Fatal(err)
	}
	var out []podInfo
	for _, p := range pods.Items {
		out = append(out, podInfo{Name: p.Namespace + "/" + p.Name, DeletionTimestamp: p.DeletionTimestamp})
	}
	return out
}

// waitNoHostPods: deleted pods take a moment to go (the container stops).
func waitNoHostPods(t *testing.T, b *testbed.Bed) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		pods := hostPods(t, b)
		if len(pods) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("host pods left behind: %v", pods)
			return
		}
		time.Sleep(2 * time.Second)
	}
}
