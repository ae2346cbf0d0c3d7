// Package podexec runs one command in a container of a running pod and
// collects what it prints, as `kubectl exec` does: through the apiserver,
// WebSocket first and SPDY when the WebSocket upgrade is refused.
package podexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
)

// Target is the container a command runs in.
type Target struct {
	Namespace, Pod, Container string
}

func (t Target) String() string {
	return t.Namespace + "/" + t.Pod + " (container " + t.Container + ")"
}

// Result is what a command that ran printed, and how it ended.
type Result struct {
	Stdout, Stderr []byte
	// ExitCode is the command's exit status; 0 when it succeeded.
	ExitCode int
}

// Runner execs commands in pods with one client's credentials. It holds
// no state of its own and is safe for concurrent use.
type Runner struct {
	Client kubernetes.Interface
	Config *rest.Config
}

// Run runs argv in the target container without stdin or a TTY and waits
// for it to end. A command that ran and exited non-zero is not an error: its
// Result says so (etcdctl, for one, prints a partial answer and exits 1).
// An error means the command did not run to its end: the exec was refused
// (RBAC, no such pod or container, container not running), the binary is
// missing, or the stream broke.
func (r *Runner) Run(ctx context.Context, t Target, argv ...string) (*Result, error) {
	if len(argv) == 0 {
		return nil, errors.New("podexec: no command given")
	}
	req := r.Client.CoreV1().RESTClient().Post().
		Namespace(t.Namespace).Resource("pods").Name(t.Pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: t.Container, Command: argv, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	exec, err := newExecutor(r.Config, req.URL())
	if err != nil {
		return nil, fmt.Errorf("exec in %s: setting up the stream: %w", t, err)
	}
	var stdout, stderr bytes.Buffer
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	res := &Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var exitErr utilexec.ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &exitErr) && exitErr.Exited():
		res.ExitCode = exitErr.ExitStatus()
		return res, nil
	}
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		return nil, fmt.Errorf("exec %s in %s: %w (stderr: %s)", argv[0], t, err, msg)
	}
	return nil, fmt.Errorf("exec %s in %s: %w", argv[0], t, err)
}

// newExecutor does what kubectl exec does: WebSocket first, SPDY when the
// server or a proxy in between refuses the WebSocket upgrade.
func newExecutor(config *rest.Config, u *url.URL) (remotecommand.Executor, error) {
	spdy, err := remotecommand.NewSPDYExecutor(config, "POST", u)
	if err != nil {
		return nil, err
	}
	// A WebSocket handshake must be a GET (RFC 6455 4.1).
	ws, err := remotecommand.NewWebSocketExecutor(config, "GET", u.String())
	if err != nil {
		return nil, err
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}
