package hostpod

import (
	"context"
	"fmt"
	"io"
	"net/url"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
)

// attach streams stdin to the running container and its stdout and stderr
// back until the process ends (or ctx does). When stdin reaches its end the
// container's stdin is closed (StdinOnce), so the agent sees EOF.
func (r *Runner) attach(ctx context.Context, pod string, stdin io.Reader, stdout, stderr io.Writer) error {
	req := r.Client.CoreV1().RESTClient().Post().
		Namespace(r.Namespace).Resource("pods").Name(pod).SubResource("attach").
		VersionedParams(&corev1.PodAttachOptions{
			Container: containerName, Stdin: true, Stdout: true, Stderr: true,
		}, scheme.ParameterCodec)
	exec, err := newExecutor(r.Config, req.URL())
	if err != nil {
		return fmt.Errorf("setting up the attach stream: %w", err)
	}
	return exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: stdout, Stderr: stderr})
}

// newExecutor does what kubectl attach does: WebSocket (the v5 protocol,
// which can close stdin on its own) first, SPDY when the server or a proxy
// in between refuses the WebSocket upgrade.
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
