//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostpod"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// storyHostPod: the plugin's way to do host-level work — kubectl-etcd in a
// short-lived privileged pod on the node, spoken to over attach — answers,
// leaves its binary on the host, fails fast and clearly, and never leaves a
// pod behind.
func storyHostPod(t *testing.T, b *testbed.Bed) {
	n2 := node(b, "h2") // the node host pods are pinned to
	names, _ := voters(t, b, "h1")
	want := len(names)
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", b.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	runner := func() *hostpod.Runner {
		return &hostpod.Runner{Client: cs, Config: cfg, Image: testbed.SelfImage(),
			HostLocalCommand: "kubectl-etcd status --local", Log: logWriter{t}}
	}
	run := func(t *testing.T, r *hostpod.Runner, node string, stdin io.Reader) (string, string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		var out, errOut bytes.Buffer
		start := time.Now()
		err := r.Run(ctx, node, []string{"agent"}, stdin, &out, &errOut)
		t.Logf("run on %s took %s (err: %v)\nstderr:\n%s", node, time.Since(start).Round(10*time.Millisecond), err, errOut.String())
		return out.String(), errOut.String(), err
	}
	noPodsLeft := func(t *testing.T) {
		t.Helper()
		l, err := cs.CoreV1().Pods("kube-system").List(context.Background(), metav1.ListOptions{
			LabelSelector: hostpod.ManagedByLabel + "=" + hostpod.ManagedByValue})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range l.Items {
			t.Errorf("pod %s (node %s, %s) left behind", p.Name, p.Spec.NodeName, p.Status.Phase)
		}
	}

	// The mechanism under the runner: a privileged pod pinned to h2 with
	// the host's / at /host writes on h2 and nowhere else.
	t.Run("PrivilegedPod", func(t *testing.T) { hostPod(t, b) })

	t.Run("Status", func(t *testing.T) {
		// Earlier stories ran host pods on h1 and h2: h2's copy is removed
		// (the run must leave one), h1's must stay as it is.
		if _, err := b.Host("h2").Exec(context.Background(), "rm", "-f", hostpod.HostBinaryPath); err != nil {
			t.Fatal(err)
		}
		binaryOnH1 := func() string {
			out, _ := b.Host("h1").Exec(context.Background(), "sh", "-c", "stat -c '%s %Y' "+hostpod.HostBinaryPath+" 2>/dev/null || echo none")
			return strings.TrimSpace(string(out))
		}
		h1Before := binaryOnH1()
		out, _, err := run(t, runner(), n2, strings.NewReader(`{"verb":"status"}`))
		if err != nil {
			t.Fatal(err)
		}
		var st hostlocal.State
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("stdout is not the State JSON: %v\n%s", err, out)
		}
		if st.Node != n2 || len(st.Members) != want {
			t.Errorf("state node %q with %d members, want h2 with %d:\n%s", st.Node, len(st.Members), want, out)
		}
		bin, err := b.Host("h2").ReadFile(hostpod.HostBinaryPath)
		if err != nil || !bytes.HasPrefix(bin, []byte("\x7fELF")) {
			t.Errorf("kubectl-etcd not left on h2 at %s (err %v, %d bytes)", hostpod.HostBinaryPath, err, len(bin))
		}
		if h1After := binaryOnH1(); h1After != h1Before {
			t.Errorf("kubectl-etcd on h1, where nothing ran, changed: %q -> %q", h1Before, h1After)
		}
		noPodsLeft(t)
	})

	t.Run("ExecVerb", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		var out, errOut bytes.Buffer
		err := runner().Agent(ctx, n2, hostpod.Request{Verb: hostpod.VerbExec,
			Args: hostpod.RequestArgs{Argv: []string{"status", "--local", "-o", "json"}}}, &out, &errOut)
		if err != nil {
			t.Fatalf("%v\nstderr:\n%s", err, errOut.String())
		}
		var st hostlocal.State
		if err := json.Unmarshal(out.Bytes(), &st); err != nil || st.Node != n2 || len(st.Members) != want {
			t.Errorf("status --local through the agent: node %q, %d members, err %v\n%s", st.Node, len(st.Members), err, out.String())
		}
		noPodsLeft(t)
	})

	t.Run("ExitCodeAndStderr", func(t *testing.T) {
		_, _, err := run(t, runner(), n2, strings.NewReader(`{"verb":"exec","args":{"argv":["join"]}}`))
		var ee *hostpod.ExitError
		if !errors.As(err, &ee) || ee.ExitCode != 1 || !strings.Contains(err.Error(), "--endpoints is required") || !strings.Contains(err.Error(), n2) {
			t.Fatalf("err = %v, want exit code 1 with the agent's error", err)
		}
		noPodsLeft(t)
	})

	t.Run("NodeNotFound", func(t *testing.T) {
		start := time.Now()
		_, _, err := run(t, runner(), "h9", strings.NewReader(`{"verb":"status"}`))
		if err == nil || !strings.Contains(err.Error(), "not found") || !errors.Is(err, hostpod.ErrNodeNotFound) {
			t.Fatalf("err = %v, want node not found", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %s to say the node does not exist", d)
		}
	})

	t.Run("ImagePull", func(t *testing.T) {
		r := runner()
		r.Image = "localhost/does-not-exist:1"
		_, _, err := run(t, r, n2, strings.NewReader(`{"verb":"status"}`))
		if err == nil || !strings.Contains(err.Error(), r.Image) || !strings.Contains(err.Error(), n2) || !errors.Is(err, hostpod.ErrImagePull) {
			t.Fatalf("err = %v, want an image pull failure naming the image and the node", err)
		}
		noPodsLeft(t)
	})

	t.Run("Cancel", func(t *testing.T) {
		pr, pw := io.Pipe() // stdin that never ends: the agent waits for its request
		defer pw.Close()
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(3*time.Second, cancel)
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- runner().Run(ctx, n2, []string{"agent"}, pr, io.Discard, io.Discard) }()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
			t.Logf("returned %s after start, %s after cancel", time.Since(start).Round(10*time.Millisecond), (time.Since(start) - 3*time.Second).Round(10*time.Millisecond))
		case <-time.After(45 * time.Second):
			t.Fatal("Run did not return after its context was cancelled")
		}
		noPodsLeft(t)
	})

	t.Run("LeftoverRemoved", func(t *testing.T) {
		ctx := context.Background()
		left, err := cs.CoreV1().Pods("kube-system").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "kubectl-etcd-h2-", Labels: map[string]string{
				hostpod.ManagedByLabel: hostpod.ManagedByValue, hostpod.RunLabel: "killed-run"}},
			Spec: corev1.PodSpec{NodeName: n2, HostNetwork: true, RestartPolicy: corev1.RestartPolicyNever,
				TerminationGracePeriodSeconds: ptr.To[int64](1),
				Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
				Containers: []corev1.Container{{Name: "sleep", Image: testbed.ToolboxImage, ImagePullPolicy: corev1.PullNever,
					Command: []string{"sleep", "600"}}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitPodRunning(t, b, "kube-system", left.Name)
		if _, _, err := run(t, runner(), n2, strings.NewReader(`{"verb":"status"}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Pods("kube-system").Get(ctx, left.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("leftover pod %s still there after a run on its node (err %v)", left.Name, err)
		}
		noPodsLeft(t)
	})

	// Last: it stops h2's kubelet. A kubelet that cannot take pods (on a
	// real control-plane host: its local apiserver is down with its local
	// etcd) must be reported fast, with the host-local command instead.
	t.Run("KubeletDown", func(t *testing.T) {
		ctx := context.Background()
		h2 := b.Host("h2")
		if _, err := h2.Exec(ctx, "systemctl", "stop", "kubelet"); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		t.Cleanup(func() { _, _ = h2.Exec(ctx, "systemctl", "start", "kubelet") })
		check := func(t *testing.T, within time.Duration) error {
			t.Helper()
			start := time.Now()
			_, _, err := run(t, runner(), n2, strings.NewReader(`{"verb":"status"}`))
			if !errors.Is(err, hostpod.ErrKubeletCannotStartPods) || !strings.Contains(err.Error(), "kubectl-etcd status --local") {
				t.Fatalf("err = %v, want the kubelet cannot start pods, with the host-local command", err)
			}

			if d := time.Since(start); d > within {
				t.Errorf("took %s to say so, want under %s", d, within)
			}
			noPodsLeft(t)
			return err
		}
		// The node still looks Ready: the pod is never picked up.
		t.Run("NotPickedUp", func(t *testing.T) { check(t, 30*time.Second) })
		// Once the node controller marks it Unknown: at once.
		t.Run("NodeUnknown", func(t *testing.T) {
			deadline := time.Now().Add(2 * time.Minute)
			for {
				n, err := cs.CoreV1().Nodes().Get(ctx, n2, metav1.GetOptions{})
				if err == nil && nodeReady(n) == corev1.ConditionUnknown {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node h2 not Unknown 2m after its kubelet stopped (err %v)", err)
				}
				time.Sleep(2 * time.Second)
			}
			// How long the kubelet has been silent comes from its node
			// lease: no longer than since it was stopped, plus the lease's
			// 10 s renewal (the Ready heartbeat said minutes).
			err := check(t, 5*time.Second)
			m := regexp.MustCompile(`its kubelet last renewed its node lease (\S+) ago`).FindStringSubmatch(err.Error())
			if m == nil {
				t.Fatalf("err = %v, want how long ago the kubelet last renewed its node lease", err)
			}
			if d, perr := time.ParseDuration(m[1]); perr != nil || d > time.Since(stopped)+15*time.Second {
				t.Errorf("kubelet silent for %s by the error, stopped %s ago", m[1], time.Since(stopped).Round(time.Second))
			}
		})
	})
}

func nodeReady(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}
