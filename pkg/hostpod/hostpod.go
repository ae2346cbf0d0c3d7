package hostpod

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// containerName is the pod's only container.
const containerName = "kubectl-etcd"

// Timeouts bound every wait of a run; a zero field takes its default.
type Timeouts struct {
	// Start bounds pod created -> the node's kubelet reports anything about
	// it. A kubelet that cannot reach its apiserver never does; this bound is
	// what makes that case fail fast instead of waiting for a pull timeout.
	Start time.Duration
	// LiveKubelet is how much longer, after Start, a pod is given to be
	// picked up by a kubelet that is alive and talks to its apiserver (it
	// renewed its node lease after the pod was made). Such a kubelet has not
	// seen the pod because its pod watch broke, typically while its apiserver
	// restarted (leave and scale re-point it): client-go's reflector retries
	// after a backoff that stops in [30 s, 60 s) and resets only after two
	// minutes without a failure.
	LiveKubelet time.Duration
	// Running bounds pod picked up -> container running, which includes
	// pulling the image. It is Start instead when the node is not Ready.
	Running time.Duration
	// Exit bounds output ended -> the pod reports how the container ended.
	Exit time.Duration
	// Deadline is the pod's activeDeadlineSeconds: the kubelet kills the pod
	// then even if the process that made it died and never deleted it.
	Deadline time.Duration
	// Delete bounds one delete call. Deletes run on a fresh context so they
	// happen even when the caller's context was cancelled.
	Delete time.Duration
	// Poll is how often the pod is looked at while waiting.
	Poll time.Duration
}

// DefaultTimeouts fail fast where a healthy node answers in a second and
// leave room for an image pull and a loaded apiserver.
func DefaultTimeouts() Timeouts {
	return Timeouts{Start: 20 * time.Second, LiveKubelet: time.Minute, Running: 3 * time.Minute, Exit: time.Minute,
		Deadline: 10 * time.Minute, Delete: 30 * time.Second, Poll: 250 * time.Millisecond}
}

func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts()
	for _, f := range []struct{ v, def *time.Duration }{
		{&t.Start, &d.Start}, {&t.LiveKubelet, &d.LiveKubelet}, {&t.Running, &d.Running}, {&t.Exit, &d.Exit},
		{&t.Deadline, &d.Deadline}, {&t.Delete, &d.Delete}, {&t.Poll, &d.Poll},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return t
}

// Runner runs kubectl-etcd in a privileged pod on a chosen node. It holds
// no state between runs; one Runner may serve many runs, also concurrently
// on different nodes.
type Runner struct {
	// Client makes and watches the pods; Config (the same cluster) carries
	// the attach stream.
	Client kubernetes.Interface
	Config *rest.Config
	// Namespace of the pods (default kube-system, where kubeadm's own
	// control-plane pods run and privileged pods are usually allowed).
	Namespace string
	// Image is the kubectl-etcd image to run, normally DefaultImage(). It
	// must be this very build: the agent protocol is not versioned.
	Image string
	// HostLocalCommand is the exact command to run as root on the host
	// instead, shown when the node's kubelet cannot start the pod (e.g.
	// "kubectl-etcd join --endpoints https://10.0.0.11:2379").
	HostLocalCommand string
	// Timeouts; zero fields take DefaultTimeouts.
	Timeouts Timeouts
	// Log receives one line per pod created or removed (nil: none).
	Log io.Writer

	// keepOtherRuns: this run changes nothing on the host
	// (hostapi.Call.ReadOnly), so it removes no other run's pod there: it
	// holds no run lock, and one may be a colleague's step still going. Its
	// pod carries ReadOnlyLabel.
	keepOtherRuns bool
}

// complete returns a copy with defaults filled in, leaving r untouched so
// a Runner can be shared.
func (r *Runner) complete() (*Runner, error) {
	c := *r
	if c.Namespace == "" {
		c.Namespace = "kube-system"
	}
	c.Timeouts = c.Timeouts.withDefaults()
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.Client == nil || c.Config == nil {
		return nil, errors.New("hostpod.Runner needs a Client and a rest Config")
	}
	if c.Image == "" {
		return nil, errors.New("hostpod.Runner needs the kubectl-etcd image to run")
	}
	return &c, nil
}

// Run runs `kubectl-etcd args...` on node in a new privileged pod, streams
// stdin to it and its stdout and stderr back, and waits for it to end. It
// returns nil only when the process exited 0; an *ExitError when it ran and
// failed. The pod is deleted in every case, also when ctx is cancelled.
//
// The process must read its stdin before it writes anything: output written
// before the attach stream is up is not streamed (it is copied from the
// pod's log afterwards only when the attach could not be made at all).
func (r *Runner) Run(ctx context.Context, node string, args []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	c, err := r.complete()
	if err != nil {
		return err
	}
	if node == "" {
		return errors.New("no node given to run kubectl-etcd on")
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}

	notReady, err := c.checkNode(ctx, node)
	if err != nil {
		return err
	}
	if err := c.checkAccess(ctx); err != nil {
		return err
	}
	if !c.keepOtherRuns {
		if _, err := c.cleanup(ctx, node); err != nil {
			return err
		}
	}

	runID, err := newRunID()
	if err != nil {
		return err
	}
	spec := c.podFor(node, runID, args)
	if c.keepOtherRuns {
		spec.Labels[ReadOnlyLabel] = "true"
	}
	pod, err := c.create(ctx, spec)
	if err != nil {
		if ctx.Err() != nil {
			// The pod may have been made before the cancel reached the
			// call; find it by its run id, on a fresh context.
			c.deleteRun(context.WithoutCancel(ctx), runID)
			return fmt.Errorf("creating kubectl-etcd's pod for node %s: %w", node, ctx.Err())
		}
		return c.createError(ctx, node, err)
	}
	name := pod.Name
	fmt.Fprintf(c.Log, "pod %s/%s runs kubectl-etcd on node %s\n", c.Namespace, name, node)
	defer func() {
		if derr := c.deletePod(ctx, name); derr != nil {
			derr = fmt.Errorf("deleting pod %s/%s: %w (the next run on node %s removes it; its activeDeadlineSeconds stops it)", c.Namespace, name, derr, node)
			err = errors.Join(err, derr)
		}
	}()

	pod, err = c.waitRunning(ctx, node, pod, notReady)
	if err != nil {
		return err
	}

	tail := newTailBuffer(20, 4096)
	attached := false
	exitWait := c.Timeouts.Exit
	if cs := containerStatus(pod); cs != nil && cs.State.Running != nil {
		out, errOut := &sawWriter{w: stdout}, &sawWriter{w: io.MultiWriter(stderr, tail)}
		serr := c.attach(ctx, name, stdin, out, errOut)
		if ctx.Err() != nil {
			return fmt.Errorf("running kubectl-etcd on node %s (pod %s): %w", node, name, ctx.Err())
		}
		if serr != nil {
			// The process may have ended between "running" and the attach;
			// that is not a failure of the attach, its log still tells.
			p, gerr := c.getPod(ctx, name)
			switch {
			case gerr == nil && ended(p):
			case out.saw.Load() || errOut.saw.Load():
				// A stream that worked and broke: the apiserver it went
				// through restarted (a verb may restart the one on its own
				// host). The process goes on; deleting the pod now would
				// kill it half-way. Wait for it to end (up to the pod's
				// deadline) and take its output from the log.
				fmt.Fprintf(c.Log, "the stream from pod %s/%s on node %s broke (%v); kubectl-etcd goes on there: waiting for it to end, then reading its log\n", c.Namespace, name, node, serr)
				out.saw.Store(false)
				errOut.saw.Store(false)
				exitWait = c.Timeouts.Deadline
			default:
				return c.attachError(node, name, serr)
			}
		}
		// Output that came through must not be repeated from the log.
		attached = out.saw.Load() || errOut.saw.Load() || serr == nil
	}

	pod, err = c.waitEnded(ctx, node, name, exitWait)
	if err != nil {
		return err
	}
	if !attached {
		// Nothing was streamed: hand over what the log has instead, so a
		// short command (e.g. "version") still shows its output.
		logs, lerr := c.Client.CoreV1().Pods(c.Namespace).GetLogs(name, &corev1.PodLogOptions{Container: containerName}).DoRaw(ctx)
		if lerr == nil {
			_, _ = stdout.Write(logs)
			_, _ = tail.Write(logs)
		}
	}
	return exitResult(node, pod, tail.String())
}

// Cleanup deletes every pod a kubectl-etcd run left behind in the namespace
// (a run whose process was killed could not delete its pod) and returns
// their names.
func (r *Runner) Cleanup(ctx context.Context) ([]string, error) {
	c, err := r.complete()
	if err != nil {
		return nil, err
	}
	return c.cleanup(ctx, "")
}

// cleanup deletes the pods of earlier runs, on node only when node is set.
func (r *Runner) cleanup(ctx context.Context, node string) ([]string, error) {
	opts := metav1.ListOptions{LabelSelector: labels.Set{ManagedByLabel: ManagedByValue}.String() + "," + RunLabel}
	if node != "" {
		opts.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
	}
	list, err := r.Client.CoreV1().Pods(r.Namespace).List(ctx, opts)
	if err != nil {
		if apierrors.IsForbidden(err) {
			return nil, kindErrorf(ErrForbidden, "RBAC does not allow you to list pods in namespace %s (verb list, resource pods), which kubectl-etcd needs to find pods of earlier runs: %v", r.Namespace, err)
		}
		return nil, fmt.Errorf("looking for pods left by earlier kubectl-etcd runs in namespace %s: %w", r.Namespace, err)
	}
	var removed []string
	now := time.Now()
	for _, p := range list.Items {
		if p.Labels[ReadOnlyLabel] == "true" && !Spent(&p, now) {
			continue // a colleague's read, next to our change
		}
		if err := r.deletePod(ctx, p.Name); err != nil {
			return removed, fmt.Errorf("deleting pod %s/%s left by an earlier kubectl-etcd run on node %s: %w", r.Namespace, p.Name, p.Spec.NodeName, err)
		}
		fmt.Fprintf(r.Log, "removed pod %s/%s left by an earlier kubectl-etcd run on node %s\n", r.Namespace, p.Name, p.Spec.NodeName)
		removed = append(removed, p.Name)
	}
	return removed, nil
}

// Spent: the pod's container is done, or it is past its deadline (its
// kubelet should have stopped it; a kubelet that is down never will).
func Spent(p *corev1.Pod, now time.Time) bool {
	if ended(p) {
		return true
	}
	if d := p.Spec.ActiveDeadlineSeconds; d != nil {
		return now.After(p.CreationTimestamp.Add(time.Duration(*d)*time.Second + time.Minute))
	}
	return false
}

// deleteRun removes the pods of one run, best effort (Cleanup catches any
// it misses).
func (r *Runner) deleteRun(ctx context.Context, runID string) {
	ctx, cancel := context.WithTimeout(ctx, r.Timeouts.Delete)
	defer cancel()
	list, err := r.Client.CoreV1().Pods(r.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.Set{RunLabel: runID}.String()})
	if err != nil {
		return
	}
	for _, p := range list.Items {
		_ = r.deletePod(ctx, p.Name)
	}
}

// deletePod removes the pod at once (grace 0: the API object goes now, the
// kubelet stops the container), on a fresh context so a cancelled caller
// still cleans up.
func (r *Runner) deletePod(ctx context.Context, name string) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.Timeouts.Delete)
	defer cancel()
	err := r.Client.CoreV1().Pods(r.Namespace).Delete(dctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// checkNode fails fast on a node that does not exist or whose kubelet has
// stopped reporting. It returns why the node is not Ready when it reports
// NotReady: that alone does not stop host-network pods (a missing network
// plugin makes a node NotReady), so the run goes on with a short bound.
func (r *Runner) checkNode(ctx context.Context, node string) (notReady string, err error) {
	n, err := r.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", kindErrorf(ErrNodeNotFound, "node %s not found (kubectl get nodes lists the cluster's nodes)", node)
	}
	if apierrors.IsForbidden(err) {
		return "", kindErrorf(ErrForbidden, "RBAC does not allow you to get node %s (verb get, resource nodes): %v", node, err)
	}
	if err != nil {
		return "", fmt.Errorf("reading node %s: %w", node, err)
	}
	var ready *corev1.NodeCondition
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			ready = &n.Status.Conditions[i]
		}
	}
	switch {
	case ready == nil:
		return "", r.kubeletDown(node, "the node has never reported Ready")
	case ready.Status == corev1.ConditionUnknown:
		return "", r.kubeletDown(node, fmt.Sprintf("it stopped reporting to the apiserver: %s (Ready=Unknown: %s)",
			r.lastHeard(ctx, node, ready), strings.TrimSuffix(ready.Message, ".")))
	case ready.Status == corev1.ConditionFalse:
		return fmt.Sprintf("the node is NotReady: %s: %s", ready.Reason, ready.Message), nil
	}
	return "", nil
}

// lastHeard says when node's kubelet was last heard from. Its node lease
// says it best: the kubelet renews it every 10 s, while it rewrites the Ready
// condition's heartbeat only every few minutes when nothing changes (so
// that time overstates a silence by up to five minutes). The heartbeat is
// the fallback when the lease cannot be read.
func (r *Runner) lastHeard(ctx context.Context, node string, ready *corev1.NodeCondition) string {
	l, err := r.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node, metav1.GetOptions{})
	if err == nil && l.Spec.RenewTime != nil {
		return fmt.Sprintf("its kubelet last renewed its node lease %s ago", time.Since(l.Spec.RenewTime.Time).Round(time.Second))
	}
	return fmt.Sprintf("its last node status report was %s ago", time.Since(ready.LastHeartbeatTime.Time).Round(time.Second))
}

// kubeletDown explains a kubelet that cannot start the pod and what to do.
func (r *Runner) kubeletDown(node, why string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "the kubelet on node %s cannot start pods: %s.\n", node, why)
	b.WriteString("On a kubeadm control-plane host this usually means the host's own kube-apiserver is down (its kubelet talks to it), most likely because the host's local etcd member is down.\n")
	if r.HostLocalCommand != "" {
		fmt.Fprintf(&b, "Run this as root on %s instead:\n  %s", node, r.HostLocalCommand)
	} else {
		fmt.Fprintf(&b, "Run the host-local kubectl-etcd as root on %s instead.", node)
	}
	if !strings.Contains(r.HostLocalCommand, HostBinaryPath) {
		fmt.Fprintf(&b, "\n(Hosts where kubectl-etcd ran before have it at %s.)", HostBinaryPath)
	}
	return kindErrorf(ErrKubeletCannotStartPods, "%s", b.String())
}

// checkAccess asks the apiserver whether the caller may do everything a run
// needs, so a missing permission is named before anything is created rather
// than showing up half-way (an attach refused after the pod started).
func (r *Runner) checkAccess(ctx context.Context) error {
	needs := []authorizationv1.ResourceAttributes{
		{Verb: "create", Resource: "pods"},
		{Verb: "create", Resource: "pods", Subresource: "attach"},
		{Verb: "get", Resource: "pods"},
		{Verb: "list", Resource: "pods"},
		{Verb: "delete", Resource: "pods"},
	}
	var missing []string
	for _, ra := range needs {
		ra.Namespace = r.Namespace
		res, err := r.Client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
			&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &ra}},
			metav1.CreateOptions{})
		if err != nil {
			// Cannot ask (an old or locked-down apiserver): the calls
			// themselves will say what is refused.
			return nil
		}
		if !res.Status.Allowed {
			what := ra.Resource
			if ra.Subresource != "" {
				what += "/" + ra.Subresource
			}
			missing = append(missing, ra.Verb+" "+what)
		}
	}
	if len(missing) > 0 {
		return kindErrorf(ErrForbidden, "RBAC does not allow you to run kubectl-etcd's host pod in namespace %s: missing %s (verb resource)",
			r.Namespace, strings.Join(missing, ", "))
	}
	return nil
}

// createError explains why the pod was refused.
// create creates the pod, waiting (bounded) for the namespace's default
// service account: the ServiceAccount admission refuses every pod until the
// controller-manager has made it, which takes a moment after kubeadm init.
func (r *Runner) create(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	var p *corev1.Pod
	var err error
	_ = wait.PollUntilContextTimeout(ctx, time.Second, 30*time.Second, true, func(context.Context) (bool, error) {
		p, err = r.Client.CoreV1().Pods(r.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		waitingForSA := err != nil && apierrors.IsForbidden(err) && strings.Contains(err.Error(), `serviceaccount "default" not found`)
		return !waitingForSA, nil
	})
	return p, err
}

func (r *Runner) createError(ctx context.Context, node string, err error) error {
	if !apierrors.IsForbidden(err) {
		return fmt.Errorf("creating kubectl-etcd's pod for node %s in namespace %s: %w", node, r.Namespace, err)
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "PodSecurity"):
		level := "?"
		if ns, nerr := r.Client.CoreV1().Namespaces().Get(ctx, r.Namespace, metav1.GetOptions{}); nerr == nil {
			level = ns.Labels["pod-security.kubernetes.io/enforce"]
		}
		return kindErrorf(ErrForbidden, "Pod Security admission refused kubectl-etcd's pod: namespace %s's pod-security.kubernetes.io/enforce label (%q) forbids privileged pods, and this pod must be privileged (host network and PID, the host's / mounted) to work on the host's etcd: %v",
			r.Namespace, level, err)
	case strings.Contains(msg, "cannot create resource"):
		return kindErrorf(ErrForbidden, "RBAC does not allow you to create pods in namespace %s (verb create, resource pods), which kubectl-etcd needs to run on node %s: %v",
			r.Namespace, node, err)
	}
	return fmt.Errorf("creating kubectl-etcd's pod for node %s in namespace %s: %w", node, r.Namespace, err)
}

// attachError explains a stream that could not be set up.
func (r *Runner) attachError(node, pod string, err error) error {
	if strings.Contains(err.Error(), "forbidden") || strings.Contains(err.Error(), "Forbidden") {
		return kindErrorf(ErrForbidden, "RBAC does not allow you to attach to pod %s/%s on node %s (verb create, resource pods/attach): %v",
			r.Namespace, pod, node, err)
	}
	return fmt.Errorf("attaching to pod %s/%s on node %s: %w", r.Namespace, pod, node, err)
}

// podNamePrefix is the pod's generateName: the node's name with its dots
// made dashes (a node named h1.cp.example.internal), since a pod's name is
// also its hostname, for which the apiserver warns about dots.
func podNamePrefix(node string) string {
	return "kubectl-etcd-" + strings.ReplaceAll(node, ".", "-") + "-"
}

// podFor is the pod spec: a privileged, host-namespaced pod pinned to the
// node (nodeName: no scheduler involved, so it runs on a cordoned or tainted
// control-plane node too), with the host's / at /host. It carries no secret:
// the agent works with the host's own files.
func (r *Runner) podFor(node, runID string, args []string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: podNamePrefix(node),
			Namespace:    r.Namespace,
			Labels:       map[string]string{ManagedByLabel: ManagedByValue, RunLabel: runID},
		},
		Spec: corev1.PodSpec{
			NodeName:    node,
			HostNetwork: true,
			HostPID:     true, // the agent finds the host's etcd and apiserver processes
			// Cluster DNS may be what is broken; the host's resolver is enough.
			DNSPolicy:     corev1.DNSDefault,
			RestartPolicy: corev1.RestartPolicyNever,
			// The kubelet stops the pod by itself if nobody deletes it.
			ActiveDeadlineSeconds: ptr.To(int64(r.Timeouts.Deadline / time.Second)),
			// Time for the agent to stop between steps on SIGTERM.
			TerminationGracePeriodSeconds: ptr.To[int64](10),
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			// Must run on a full or pressured control-plane node.
			PriorityClassName: "system-node-critical",
			Tolerations:       []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Volumes: []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/", Type: ptr.To(corev1.HostPathDirectory)}}}},
			Containers: []corev1.Container{{
				Name:            containerName,
				Image:           r.Image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         append([]string{"kubectl-etcd"}, args...),
				// The request comes on stdin; StdinOnce closes it after the
				// one attach, so the agent sees the end of its input.
				Stdin:     true,
				StdinOnce: true,
				// Not a secret: the name of the node the pod is pinned to.
				Env: []corev1.EnvVar{{Name: NodeNameEnv, ValueFrom: &corev1.EnvVarSource{
					FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}},
				SecurityContext: &corev1.SecurityContext{
					Privileged: ptr.To(true),
					RunAsUser:  ptr.To[int64](0), // root on the host: etcd CA, manifests
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "host", MountPath: HostRoot}},
				// A failure is explained by the pod status even when the
				// stream missed it.
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			}},
		},
	}
}

func newRunID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making a run id: %w", err)
	}
	return hex.EncodeToString(b), nil
}
