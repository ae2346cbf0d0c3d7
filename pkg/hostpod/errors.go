package hostpod

import (
	"fmt"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// Kinds of failure a caller may want to tell apart (errors.Is): hostapi's
// transport errors, under the names this transport gives them. The error
// returned carries the full explanation; these only classify it.
var (
	// ErrNodeNotFound: the node named does not exist.
	ErrNodeNotFound = hostapi.ErrNoSuchHost
	// ErrKubeletCannotStartPods: the node's kubelet did not start the pod in
	// time or the node is not reporting; the host-local command is the way.
	ErrKubeletCannotStartPods = hostapi.ErrUnreachable
	// ErrImagePull: the node cannot get the image.
	ErrImagePull = hostapi.ErrSetup
	// ErrForbidden: RBAC or Pod Security admission refused the pod or the attach.
	ErrForbidden = hostapi.ErrForbidden
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
type ExitError = hostapi.ExitError
