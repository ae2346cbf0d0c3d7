package hostpod

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// errTimeout marks a poll that ran out of time; the caller explains it.
var errTimeout = errors.New("timed out")

// imagePullReasons are the kubelet's reasons for a container it cannot get
// the image of. None of them heals by waiting a few seconds.
var imagePullReasons = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "ErrImageNeverPull": true,
	"InvalidImageName": true, "ImageInspectError": true, "RegistryUnavailable": true,
	"SignatureValidationFailed": true,
}

// startReasons are the kubelet's reasons for a container it cannot create
// or start for a cause other than the image.
var startReasons = map[string]bool{
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
	"PreCreateHookError": true, "PreStartHookError": true, "ContainerCannotRun": true,
}

// kubeletSyncing: a kubelet that has just (re)connected to its apiserver
// refuses to build a container's environment until its informers have
// listed once ("services have not yet been read at least once, cannot
// construct envvars"), and retries by itself a moment later. Seen on a
// freshly joined host in CI; waiting (within the Running bound) is right.
func kubeletSyncing(msg string) bool {
	return strings.Contains(msg, "have not yet been read at least once")
}

// poll gets the pod every Timeouts.Poll until done says so, fails, timeout
// passes (errTimeout) or ctx ends. It polls rather than watches: the runs are
// seconds long, a Get needs no list/watch permission, and it rides out an
// apiserver behind a load balancer switching backends. It returns the last
// pod seen.
func (r *Runner) poll(ctx context.Context, name string, timeout time.Duration, done func(*corev1.Pod) (bool, error)) (*corev1.Pod, error) {
	var last *corev1.Pod
	var lastErr, condErr error
	err := wait.PollUntilContextTimeout(ctx, r.Timeouts.Poll, timeout, true, func(pctx context.Context) (bool, error) {
		p, err := r.getPod(pctx, name)
		switch {
		case apierrors.IsNotFound(err):
			condErr = fmt.Errorf("pod %s/%s was deleted while kubectl-etcd waited for it (another kubectl-etcd run on the same node removes pods of earlier runs)", r.Namespace, name)
			return false, condErr
		case err != nil:
			lastErr = err // transient: the apiserver may be switching; try again
			return false, nil
		}
		last, lastErr = p, nil
		ok, derr := done(p)
		condErr = derr
		return ok, derr
	})
	switch {
	case err == nil:
		return last, nil
	case condErr != nil:
		return last, condErr
	case ctx.Err() != nil:
		return last, ctx.Err()
	case lastErr != nil:
		return last, fmt.Errorf("%w (last error reading pod %s: %v)", errTimeout, name, lastErr)
	}
	return last, errTimeout
}

func (r *Runner) getPod(ctx context.Context, name string) (*corev1.Pod, error) {
	return r.Client.CoreV1().Pods(r.Namespace).Get(ctx, name, metav1.GetOptions{})
}

// waitRunning waits for the container to run (or to have ended already),
// in two bounds: the kubelet picking the pod up (Start: a kubelet cut off
// from its apiserver never does) and then the container running (Running,
// room for an image pull; only Start when the node is NotReady).
func (r *Runner) waitRunning(ctx context.Context, node string, pod *corev1.Pod, notReady string) (*corev1.Pod, error) {
	name := pod.Name
	wrap := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for pod %s/%s on node %s: %w", r.Namespace, name, node, ctx.Err())
		}
		return err
	}
	start := time.Now()
	p, err := r.poll(ctx, name, r.Timeouts.Start, func(p *corev1.Pod) (bool, error) { return pickedUp(p), nil })
	if errors.Is(err, errTimeout) && notReady == "" {
		if renewed, ok := r.leaseRenewedSince(ctx, node, pod.CreationTimestamp.Time); ok {
			fmt.Fprintf(r.Log, "the kubelet on node %s renewed its node lease %s ago but has not seen pod %s/%s yet (its pod watch may be backing off after its apiserver restarted): waiting up to %s more\n",
				node, time.Since(renewed).Round(time.Second), r.Namespace, name, r.Timeouts.LiveKubelet)
			p, err = r.poll(ctx, name, r.Timeouts.LiveKubelet, func(p *corev1.Pod) (bool, error) { return pickedUp(p), nil })
		}
	}
	if errors.Is(err, errTimeout) {
		why := fmt.Sprintf("it did not pick up pod %s/%s within %s", r.Namespace, name, time.Since(start).Round(time.Second))
		if notReady != "" {
			why += "; " + notReady
		}
		return nil, r.kubeletDown(node, why)
	}
	if err != nil {
		return nil, wrap(err)
	}

	bound := r.Timeouts.Running
	if notReady != "" {
		bound = r.Timeouts.Start
	}
	p, err = r.poll(ctx, name, bound, func(p *corev1.Pod) (bool, error) { return r.startedOrFailed(node, p) })
	if errors.Is(err, errTimeout) {
		state := "Pending"
		if cs := containerStatus(p); cs != nil && cs.State.Waiting != nil {
			state = cs.State.Waiting.Reason + " " + cs.State.Waiting.Message
		}
		if notReady != "" {
			return nil, r.kubeletDown(node, fmt.Sprintf("pod %s/%s is still %s after %s; %s", r.Namespace, name, state, bound, notReady))
		}
		return nil, fmt.Errorf("the container of pod %s/%s on node %s is not running after %s (still %s): %w", r.Namespace, name, node, bound, state, err)
	}
	if err != nil {
		return nil, wrap(err)
	}
	return p, nil
}

// leaseRenewedSince reports when node's kubelet last renewed its node lease,
// if that was after t. An unreadable lease (RBAC, an old cluster) says
// nothing: the caller then treats the kubelet as it did before.
func (r *Runner) leaseRenewedSince(ctx context.Context, node string, t time.Time) (time.Time, bool) {
	l, err := r.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node, metav1.GetOptions{})
	if err != nil || l.Spec.RenewTime == nil || !l.Spec.RenewTime.After(t) {
		return time.Time{}, false
	}
	return l.Spec.RenewTime.Time, true
}

// pickedUp: the kubelet has reported anything about the pod.
func pickedUp(p *corev1.Pod) bool {
	return p.Status.StartTime != nil || p.Status.HostIP != "" || len(p.Status.ContainerStatuses) > 0 ||
		p.Status.Phase != corev1.PodPending && p.Status.Phase != ""
}

// startedOrFailed is done once the container runs or ended, and fails on
// a state the kubelet will not get out of by itself soon.
func (r *Runner) startedOrFailed(node string, p *corev1.Pod) (bool, error) {
	if cs := containerStatus(p); cs != nil {
		switch {
		case cs.State.Running != nil, cs.State.Terminated != nil:
			return true, nil
		case cs.State.Waiting != nil && imagePullReasons[cs.State.Waiting.Reason]:
			return false, kindErrorf(ErrImagePull, "node %s cannot get image %s for kubectl-etcd's pod (%s: %s); make the image available to that node (or pass another image)",
				node, r.Image, cs.State.Waiting.Reason, cs.State.Waiting.Message)
		case cs.State.Waiting != nil && startReasons[cs.State.Waiting.Reason] && !kubeletSyncing(cs.State.Waiting.Message):
			return false, fmt.Errorf("the container of pod %s/%s cannot start on node %s: %s: %s",
				r.Namespace, p.Name, node, cs.State.Waiting.Reason, cs.State.Waiting.Message)
		}
	}
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		if containerStatus(p) == nil || containerStatus(p).State.Terminated == nil {
			// Refused by the kubelet's admission (resources, node
			// affinity, eviction) before any container ran.
			return false, fmt.Errorf("node %s rejected pod %s/%s: %s: %s", node, r.Namespace, p.Name, p.Status.Reason, p.Status.Message)
		}
		return true, nil
	}
	return false, nil
}

// waitEnded waits until the pod reports how the container ended. The stream
// ends with the process; the kubelet reports it a moment later (timeout:
// Timeouts.Exit; the pod's deadline when the stream broke while it ran).
func (r *Runner) waitEnded(ctx context.Context, node, name string, timeout time.Duration) (*corev1.Pod, error) {
	p, err := r.poll(ctx, name, timeout, func(p *corev1.Pod) (bool, error) { return ended(p), nil })
	if errors.Is(err, errTimeout) {
		return nil, fmt.Errorf("the output of pod %s/%s on node %s ended but the pod did not report the end of kubectl-etcd within %s: %w",
			r.Namespace, name, node, timeout, err)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("running kubectl-etcd on node %s (pod %s): %w", node, name, ctx.Err())
		}
		return nil, err
	}
	return p, nil
}

func ended(p *corev1.Pod) bool {
	if cs := containerStatus(p); cs != nil && cs.State.Terminated != nil {
		return true
	}
	return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
}

func containerStatus(p *corev1.Pod) *corev1.ContainerStatus {
	if p == nil {
		return nil
	}
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == containerName {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// exitResult turns the ended pod into Run's result.
func exitResult(node string, p *corev1.Pod, tail string) error {
	e := &ExitError{Node: node, Where: "pod " + p.Name, Tail: tail}
	if cs := containerStatus(p); cs != nil && cs.State.Terminated != nil {
		t := cs.State.Terminated
		if t.ExitCode == 0 {
			return nil
		}
		e.ExitCode, e.Reason = t.ExitCode, t.Reason
		if p.Status.Reason != "" {
			e.Reason = p.Status.Reason // e.g. DeadlineExceeded says more than "Error"
		}
		if e.Tail == "" {
			e.Tail = lastLines([]byte(t.Message), 20, 4096)
		}
		return e
	}
	// The pod ended without a container result: killed at its deadline or
	// evicted.
	e.Reason = p.Status.Reason
	if e.Tail == "" {
		e.Tail = p.Status.Message
	}
	if e.Reason == "" {
		e.Reason = string(p.Status.Phase)
	}
	return e
}
