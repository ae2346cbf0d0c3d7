package hostpod

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/version"
)

func readyNode(name string, status corev1.ConditionStatus) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: status, Reason: "KubeletReady", LastHeartbeatTime: metav1.NewTime(time.Now().Add(-time.Minute))}}}}
}

// allowAll answers every access review with allowed, except the ones deny
// names ("verb resource[/sub]").
func allowAll(cs *fake.Clientset, deny ...string) {
	cs.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		ra := r.Spec.ResourceAttributes
		what := ra.Verb + " " + ra.Resource
		if ra.Subresource != "" {
			what += "/" + ra.Subresource
		}
		r.Status.Allowed = true
		for _, d := range deny {
			if d == what {
				r.Status.Allowed = false
			}
		}
		return true, r, nil
	})
}

func newRunner(cs *fake.Clientset) *Runner {
	return &Runner{Client: cs, Config: &rest.Config{Host: "https://127.0.0.1:1"}, Image: "ghcr.io/kubectl-etcd/kubectl-etcd:test",
		HostLocalCommand: "kubectl-etcd status --local", Timeouts: Timeouts{Start: 300 * time.Millisecond, Poll: 20 * time.Millisecond}}
}

func TestPodSpec(t *testing.T) {
	r, err := newRunner(fake.NewClientset()).complete()
	if err != nil {
		t.Fatal(err)
	}
	p := r.podFor("h2", "abc", []string{"agent"})
	s := p.Spec
	c := s.Containers[0]
	switch {
	case p.GenerateName != "kubectl-etcd-h2-" || p.Namespace != "kube-system":
		t.Errorf("name/namespace: %q %q", p.GenerateName, p.Namespace)
	case p.Labels[ManagedByLabel] != "kubectl-etcd" || p.Labels[RunLabel] != "abc":
		t.Errorf("labels: %v", p.Labels)
	case s.NodeName != "h2" || !s.HostNetwork || !s.HostPID || s.RestartPolicy != corev1.RestartPolicyNever:
		t.Errorf("placement: %+v", s)
	case *s.ActiveDeadlineSeconds != 600 || *s.AutomountServiceAccountToken || *s.EnableServiceLinks:
		t.Errorf("deadline/token/links: %v %v %v", *s.ActiveDeadlineSeconds, *s.AutomountServiceAccountToken, *s.EnableServiceLinks)
	case s.PriorityClassName != "system-node-critical" || len(s.Tolerations) != 1 || s.Tolerations[0].Operator != corev1.TolerationOpExists:
		t.Errorf("priority/tolerations: %q %v", s.PriorityClassName, s.Tolerations)
	case s.Volumes[0].HostPath.Path != "/" || c.VolumeMounts[0].MountPath != "/host":
		t.Errorf("host mount: %+v %+v", s.Volumes, c.VolumeMounts)
	case !*c.SecurityContext.Privileged || !c.Stdin || !c.StdinOnce || c.TTY || c.ImagePullPolicy != corev1.PullIfNotPresent:
		t.Errorf("container: %+v", c)
	case strings.Join(c.Command, " ") != "kubectl-etcd agent" || len(c.Env) != 1 || c.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" || len(c.EnvFrom) != 0:
		t.Errorf("command/env: %v %v %v", c.Command, c.Env, c.EnvFrom)
	}
	for _, v := range s.Volumes {
		if v.Secret != nil || v.Projected != nil || v.ConfigMap != nil {
			t.Errorf("pod mounts a secret or config: %+v", v)
		}
	}
	// A dotted node name: pinned to that node, named without dots (a pod's
	// name is its hostname, and the apiserver warns about dots there).
	d := r.podFor("h2.cp.example.internal", "abc", []string{"agent"})
	if d.GenerateName != "kubectl-etcd-h2-cp-example-internal-" || d.Spec.NodeName != "h2.cp.example.internal" {
		t.Errorf("dotted node: generateName %q, nodeName %q", d.GenerateName, d.Spec.NodeName)
	}
}

func TestRunNodeNotFound(t *testing.T) {
	cs := fake.NewClientset()
	err := newRunner(cs).Run(context.Background(), "h9", []string{"agent"}, nil, nil, nil)
	if !errors.Is(err, ErrNodeNotFound) || !strings.Contains(err.Error(), "node h9 not found") {
		t.Fatalf("err = %v", err)
	}
}

func TestRunKubeletStoppedReporting(t *testing.T) {
	cs := fake.NewClientset(readyNode("h2", corev1.ConditionUnknown))
	err := newRunner(cs).Run(context.Background(), "h2", []string{"agent"}, nil, nil, nil)
	if !errors.Is(err, ErrKubeletCannotStartPods) || !strings.Contains(err.Error(), "kubectl-etcd status --local") ||
		!strings.Contains(err.Error(), HostBinaryPath) {
		t.Fatalf("err = %v", err)
	}
}

// How long the kubelet has been silent comes from its node lease when there
// is one (the Ready condition's heartbeat is rewritten only every few
// minutes), from the heartbeat when not.
func TestRunKubeletSilentSince(t *testing.T) {
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "h2", Namespace: corev1.NamespaceNodeLease},
		Spec: coordinationv1.LeaseSpec{RenewTime: ptr.To(metav1.NewMicroTime(time.Now().Add(-35 * time.Second)))}}
	for _, tc := range []struct {
		name    string
		objects []runtime.Object
		want    string
	}{
		{"lease", []runtime.Object{readyNode("h2", corev1.ConditionUnknown), lease}, "it stopped reporting to the apiserver: its kubelet last renewed its node lease 35s ago"},
		{"no lease", []runtime.Object{readyNode("h2", corev1.ConditionUnknown)}, "it stopped reporting to the apiserver: its last node status report was 1m0s ago"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := newRunner(fake.NewClientset(tc.objects...)).Run(context.Background(), "h2", []string{"agent"}, nil, nil, nil)
			if !errors.Is(err, ErrKubeletCannotStartPods) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// A pod the kubelet never picks up fails after Start with the host-local
// command, and is deleted.
func TestRunPodNeverPickedUp(t *testing.T) {
	cs := fake.NewClientset(readyNode("h2", corev1.ConditionTrue))
	allowAll(cs)
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		p.Name = p.GenerateName + "x" // the fake does not generate names
		p.Status.Phase = corev1.PodPending
		return false, p, nil
	})
	start := time.Now()
	err := newRunner(cs).Run(context.Background(), "h2", []string{"agent"}, nil, nil, nil)
	if !errors.Is(err, ErrKubeletCannotStartPods) || !strings.Contains(err.Error(), "did not pick up") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %s", time.Since(start))
	}
	if l, _ := cs.CoreV1().Pods("kube-system").List(context.Background(), metav1.ListOptions{}); len(l.Items) != 0 {
		t.Errorf("pod left: %v", l.Items[0].Name)
	}
}

func TestRunImagePull(t *testing.T) {
	cs := fake.NewClientset(readyNode("h2", corev1.ConditionTrue))
	allowAll(cs)
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		p.Name = p.GenerateName + "x"
		p.Status.HostIP = "10.0.0.12"
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "no such host"}}}}
		return false, p, nil
	})
	err := newRunner(cs).Run(context.Background(), "h2", []string{"agent"}, nil, nil, nil)
	if !errors.Is(err, ErrImagePull) || !strings.Contains(err.Error(), "ghcr.io/kubectl-etcd/kubectl-etcd:test") || !strings.Contains(err.Error(), "h2") {
		t.Fatalf("err = %v", err)
	}
	if l, _ := cs.CoreV1().Pods("kube-system").List(context.Background(), metav1.ListOptions{}); len(l.Items) != 0 {
		t.Errorf("pod left: %v", l.Items[0].Name)
	}
}

func TestRunRBACNamesMissingPermission(t *testing.T) {
	cs := fake.NewClientset(readyNode("h2", corev1.ConditionTrue))
	allowAll(cs, "create pods/attach")
	err := newRunner(cs).Run(context.Background(), "h2", nil, nil, nil, nil)
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "missing create pods/attach") {
		t.Fatalf("err = %v", err)
	}
}

func TestRunPodSecurityRefusal(t *testing.T) {
	cs := fake.NewClientset(readyNode("h2", corev1.ConditionTrue),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system", Labels: map[string]string{"pod-security.kubernetes.io/enforce": "baseline"}}})
	allowAll(cs)
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "kubectl-etcd-h2-x",
			errors.New(`violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true, hostPID=true), privileged`))
	})
	err := newRunner(cs).Run(context.Background(), "h2", nil, nil, nil, nil)
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), `pod-security.kubernetes.io/enforce label ("baseline") forbids privileged pods`) {
		t.Fatalf("err = %v", err)
	}
}

func TestCleanupRemovesOnlyManagedRunPods(t *testing.T) {
	pod := func(name string, l map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system", Labels: l}}
	}
	ro := map[string]string{ManagedByLabel: ManagedByValue, RunLabel: "2", ReadOnlyLabel: "true"}
	live := pod("read", ro)
	live.CreationTimestamp = metav1.Now()
	live.Spec.ActiveDeadlineSeconds = ptr.To[int64](600)
	done := pod("read-done", ro)
	done.Status.Phase = corev1.PodSucceeded
	stale := pod("read-stale", ro)
	stale.CreationTimestamp = metav1.NewTime(time.Now().Add(-time.Hour))
	stale.Spec.ActiveDeadlineSeconds = ptr.To[int64](600)
	cs := fake.NewClientset(
		pod("left", map[string]string{ManagedByLabel: ManagedByValue, RunLabel: "1"}),
		pod("other", map[string]string{ManagedByLabel: "helm"}),
		pod("etcd-h1", nil), live, done, stale)
	removed, err := newRunner(cs).Cleanup(context.Background())
	slices.Sort(removed)
	if err != nil || strings.Join(removed, ",") != "left,read-done,read-stale" {
		t.Fatalf("removed %v, err %v: want the run's leftover and the read-only pods that ended or are past their deadline, not a live read", removed, err)
	}
	l, _ := cs.CoreV1().Pods("kube-system").List(context.Background(), metav1.ListOptions{})
	if len(l.Items) != 3 {
		t.Errorf("pods left: %d, want 3 (other, etcd-h1, read)", len(l.Items))
	}
}

func TestExitResult(t *testing.T) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: containerName,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}}}}}}
	err := exitResult("h2", p, "a\nb\nerror: boom\n")
	var ee *ExitError
	if !errors.As(err, &ee) || ee.ExitCode != 3 || !strings.Contains(err.Error(), "exit code 3") || !strings.Contains(err.Error(), "error: boom") {
		t.Fatalf("err = %v", err)
	}
	p.Status.ContainerStatuses[0].State.Terminated.ExitCode = 0
	if err := exitResult("h2", p, ""); err != nil {
		t.Fatalf("exit 0: %v", err)
	}
}

func TestTailBuffer(t *testing.T) {
	tb := newTailBuffer(3, 100)
	for i := 0; i < 50; i++ {
		_, _ = tb.Write([]byte("line " + strings.Repeat("x", i%7) + "\n"))
	}
	_, _ = tb.Write([]byte("last"))
	got := strings.Split(tb.String(), "\n")
	if len(got) != 3 || got[2] != "last" {
		t.Fatalf("tail = %q", got)
	}
}

func TestStartedOrFailed(t *testing.T) {
	r := newRunner(fake.NewClientset())
	waiting := func(reason, msg string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kubectl-etcd-h2-x"}, Status: corev1.PodStatus{Phase: corev1.PodPending,
			ContainerStatuses: []corev1.ContainerStatus{{Name: containerName,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}}}}
	}
	for _, tc := range []struct {
		name    string
		pod     *corev1.Pod
		done    bool
		wantErr string
	}{
		{"creating", waiting("ContainerCreating", ""), false, ""},
		{"kubelet informers not synced yet", waiting("CreateContainerConfigError", "services have not yet been read at least once, cannot construct envvars"), false, ""},
		{"config error", waiting("CreateContainerConfigError", `secret "x" not found`), false, `cannot start on node h2: CreateContainerConfigError: secret "x" not found`},
		{"run error", waiting("RunContainerError", "exec format error"), false, "RunContainerError: exec format error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done, err := r.startedOrFailed("h2", tc.pod)
			if done != tc.done || (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("startedOrFailed = %v, %v; want %v, error containing %q", done, err, tc.done, tc.wantErr)
			}
		})
	}
}

// Exec is the host API's transport: a host that cannot run pods is
// hostapi.ErrUnreachable, and the error names the call as an operator runs
// it on the host (without the -o json the plugin adds for itself).
func TestExecUnreachableNamesHostCommand(t *testing.T) {
	cs := fake.NewClientset(readyNode("h2", corev1.ConditionUnknown))
	call := hostapi.Call{Argv: []string{"join", "--endpoints", "https://10.0.0.11:2379"}, JSON: true}
	err := newRunner(cs).Exec(context.Background(), "h2", call, nil, nil, nil)
	if !hostapi.Unreachable(err) || !hostapi.Answered(err) ||
		!strings.Contains(err.Error(), hostapi.HostBinaryPath+" join --endpoints https://10.0.0.11:2379") || strings.Contains(err.Error(), "-o json") {
		t.Fatalf("err = %v", err)
	}
	err = newRunner(cs).Exec(context.Background(), "h9", call, nil, nil, nil)
	if !errors.Is(err, hostapi.ErrNoSuchHost) || !hostapi.Unreachable(err) {
		t.Fatalf("unknown node: err = %v", err)
	}
}

// A kubelet that renewed its node lease after the pod was made is alive and
// talks to its apiserver: a pod it has not picked up within Start gets
// LiveKubelet more (its pod watch backs off after an apiserver restart),
// and is run when it is picked up then. A lease renewed before the pod was
// made says nothing: that kubelet fails after Start, as before.
func TestWaitRunningLiveKubelet(t *testing.T) {
	created := time.Now().Add(-time.Second)
	for _, tc := range []struct {
		name    string
		renewed time.Time
		pickAt  time.Duration // when the kubelet reports the pod; 0: never
		wantErr string
		wantLog string
		atLeast time.Duration
		atMost  time.Duration
	}{
		{name: "alive, picked up late", renewed: created.Add(500 * time.Millisecond), pickAt: 700 * time.Millisecond,
			wantLog: "renewed its node lease", atLeast: 600 * time.Millisecond, atMost: 1900 * time.Millisecond},
		{name: "alive, never picks up", renewed: created.Add(500 * time.Millisecond),
			wantErr: "did not pick up pod kube-system/p within", wantLog: "renewed its node lease", atLeast: 2300 * time.Millisecond, atMost: 5 * time.Second},
		{name: "lease older than the pod", renewed: created.Add(-10 * time.Second), pickAt: 700 * time.Millisecond,
			wantErr: "did not pick up pod kube-system/p within", atMost: 1500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "kube-system", CreationTimestamp: metav1.NewTime(created)},
				Status: corev1.PodStatus{Phase: corev1.PodPending}}
			lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "h2", Namespace: corev1.NamespaceNodeLease},
				Spec: coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: tc.renewed}}}
			cs := fake.NewClientset(pod, lease)
			if tc.pickAt > 0 {
				go func() {
					time.Sleep(tc.pickAt)
					p := pod.DeepCopy()
					p.Status.HostIP = "10.0.0.12"
					p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName,
						State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
					if _, err := cs.CoreV1().Pods("kube-system").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
						t.Error(err)
					}
				}()
			}
			var log strings.Builder
			r := newRunner(cs)
			// Bounds far apart, so that a loaded machine cannot blur them.
			r.Timeouts = Timeouts{Start: 400 * time.Millisecond, LiveKubelet: 2 * time.Second, Poll: 20 * time.Millisecond}
			r.Log = &log
			c, err := r.complete()
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = c.waitRunning(context.Background(), "h2", pod, "")
			took := time.Since(start)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tc.wantErr != "" && (!errors.Is(err, ErrKubeletCannotStartPods) || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want it to say %q", err, tc.wantErr)
			}
			if !strings.Contains(log.String(), tc.wantLog) || tc.wantLog == "" && strings.Contains(log.String(), "renewed") {
				t.Errorf("log %q, want %q", log.String(), tc.wantLog)
			}
			if took < tc.atLeast || took > tc.atMost {
				t.Errorf("took %s, want within [%s, %s]", took, tc.atLeast, tc.atMost)
			}
		})
	}
}

// A read-only call (hostapi.Call.ReadOnly: status's certificate, backup
// list, ...) removes no pod of another run on the node, which may be a
// colleague's step still going; a call that changes the host does, as a
// rerun after a killed run must.
func TestReadOnlyCallKeepsOtherRuns(t *testing.T) {
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kubectl-etcd-h2-other", Namespace: "kube-system",
		Labels: map[string]string{ManagedByLabel: ManagedByValue, RunLabel: "other"}},
		Spec: corev1.PodSpec{NodeName: "h2"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	cs := fake.NewClientset(readyNode("h2", corev1.ConditionTrue), other)
	allowAll(cs)
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		p.Name = p.GenerateName + "x"
		p.Status.Phase = corev1.PodPending // never picked up: the run ends after Start
		return false, p, nil
	})
	r := newRunner(cs)
	otherLeft := func() bool {
		_, err := cs.CoreV1().Pods("kube-system").Get(context.Background(), other.Name, metav1.GetOptions{})
		return err == nil
	}
	err := r.Exec(context.Background(), "h2", hostapi.Call{Argv: []string{"backup", "list", "--local"}, ReadOnly: true}, nil, nil, nil)
	if !errors.Is(err, ErrKubeletCannotStartPods) {
		t.Fatalf("read-only call: %v", err)
	}
	if !otherLeft() {
		t.Fatal("a read-only call removed another run's pod")
	}
	err = r.Exec(context.Background(), "h2", hostapi.Call{Argv: []string{"leave"}}, nil, nil, nil)
	if !errors.Is(err, ErrKubeletCannotStartPods) {
		t.Fatalf("changing call: %v", err)
	}
	if otherLeft() {
		t.Error("a call that changes the host left another run's pod")
	}
}

func TestDefaultImageByDigest(t *testing.T) {
	old := version.ImageDigest
	t.Cleanup(func() { version.ImageDigest = old })
	version.ImageDigest = ""
	if got := DefaultImage(); got != ImageRepository+":"+version.Version || TagOnly(got) == "" {
		t.Errorf("development build: %q (tag only: %q)", got, TagOnly(got))
	}
	version.ImageDigest = "sha256:" + strings.Repeat("ab", 32)
	got := DefaultImage()
	if got != ImageRepository+":"+version.Version+"@"+version.ImageDigest || TagOnly(got) != "" {
		t.Errorf("release build: %q (tag only: %q)", got, TagOnly(got))
	}
	if w := TagOnly("example.org/kubectl-etcd:v1"); !strings.Contains(w, "names a tag, not a digest") || !strings.Contains(w, "example.org/kubectl-etcd:v1@sha256:<digest>") {
		t.Errorf("TagOnly: %q", w)
	}
}
