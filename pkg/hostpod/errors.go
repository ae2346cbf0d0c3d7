package hostpod

import (
	"errors"
	"fmt"
	"strings"
)

// Kinds of failure a caller may want to tell apart (errors.Is). The error
// returned carries the full explanation; these only classify it.
var (
	// ErrNodeNotFound: the node named does not exist.
	ErrNodeNotFound = errors.New("node not found")
	// ErrKubeletCannotStartPods: the node's kubelet did not start the pod in
	// time or the node is not reporting; the host-local command is the way.
	ErrKubeletCannotStartPods = errors.New("the node's kubelet cannot start pods")
	// ErrImagePull: the node cannot get the image.
	ErrImagePull = errors.New("image cannot be pulled")
	// ErrForbidden: RBAC or Pod Security admission refused the pod or the attach.
	ErrForbidden = errors.New("forbidden")
)

// kindError is a full explanation classified by one of the Err* kinds.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func kindErrorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// ExitError is a run whose kubectl-etcd process ended unsuccessfully.
type ExitError struct {
	Node     string
	Pod      string
	ExitCode int32
	// Reason is the container's or pod's reason, e.g. "Error", "OOMKilled",
	// "DeadlineExceeded".
	Reason string
	// Tail is the last lines of its stderr (or, when the stream was not
	// attached, of its log).
	Tail string
}

func (e *ExitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kubectl-etcd in pod %s on node %s failed", e.Pod, e.Node)
	if e.ExitCode != 0 {
		fmt.Fprintf(&b, " with exit code %d", e.ExitCode)
	}
	if e.Reason != "" && e.Reason != "Error" {
		fmt.Fprintf(&b, " (%s)", e.Reason)
	}
	if t := strings.TrimSpace(e.Tail); t != "" {
		b.WriteString(":\n" + indent(t))
	}
	return b.String()
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}
