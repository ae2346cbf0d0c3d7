// Package hostapi is the typed API of kubectl-etcd's host-side operations:
// one request and result type per operation, and a Client with one method
// per operation over a small Transport that runs this same binary on a host.
//
// Both faces import it: the workstation calls the Client; the host-side
// commands produce the result types. The wire form of a request is the
// host-local command line itself (what an operator would type as root on
// the host), on purpose: when a transport cannot reach a host, the error
// names that exact command, and the two can never drift apart.
//
// Host pods (pkg/hostpod) are the transport today; SSH and the local host
// are the next ones. Whatever the transport, its failures are classified by
// the errors below, so callers decide once (Unreachable, Answered) instead of
// matching one transport's errors.
package hostapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Transport runs kubectl-etcd on a host with a host-local command line,
// streams stdin to it and its stdout and stderr back, and waits for it to
// end. It returns nil only when the command exited 0, an *ExitError when it
// ran and failed, and otherwise an error classified by one of the Err*
// kinds below when it could tell why the command did not run.
type Transport interface {
	Exec(ctx context.Context, node string, call Call, stdin io.Reader, stdout, stderr io.Writer) error
}

// KubeletFree is implemented by a Transport that reaches hosts without
// their kubelet (SSH). Host pods need the Node's kubelet, so callers skip a
// NotReady Node for them; a NotReady Node is still worth trying over SSH (its
// Ready condition lags minutes behind a host that just came back, and a host
// that is really down fails the dial as ErrUnreachable).
type KubeletFree interface {
	Transport
	ReachesWithoutKubelet()
}

// Call is one run of a host-local command on a host.
type Call struct {
	// Argv is the host-local command line without the binary, e.g.
	// ["join", "--endpoints", "https://10.0.0.11:2379"].
	Argv []string
	// JSON asks the verb for its result as JSON on stdout (-o json, with
	// progress on stderr).
	JSON bool
	// Poll marks a call repeated until it answers: the transport stays
	// quiet about it and gives up on an unresponsive host sooner.
	Poll bool
	// ReadOnly marks a call that changes nothing on the host (status's
	// certificate signing, backup list, certs check, ...): its run removes
	// no leftover of another run there, which may be a colleague's step
	// still going. Leftovers are for the next run that changes something.
	ReadOnly bool
	// ClusterConfig is the cluster's ClusterConfiguration (kubeadm-config)
	// as the caller read it, handed to the verb so that the host uses the
	// same one and need not read it again through its admin.conf. Not in
	// HostCommand: run by hand, the verb reads it itself.
	ClusterConfig []byte
}

// ClusterConfigFlag is the hidden host-verb flag that takes
// Call.ClusterConfig, base64-encoded (one argv word, whatever the YAML).
const ClusterConfigFlag = "cluster-config-b64"

// SkipKubeadmConfigFlag is the hidden flag of the host's recover that has
// it go by its own manifests without reading kubeadm-config through its
// admin.conf: a cross-host recovery's survey of that host found it
// unreadable a moment before (no quorum, no apiserver can read it).
const SkipKubeadmConfigFlag = "skip-kubeadm-config-read"

// KubeadmConfigSource begins a host's configuration source
// (recover's configSource) when its ClusterConfiguration is the cluster's
// kubeadm-config ConfigMap, read through its admin.conf or handed to it.
const KubeadmConfigSource = "ConfigMap kube-system/kubeadm-config"

// Args is the command line the transport runs.
func (c Call) Args() []string {
	args := append([]string(nil), c.Argv...)
	if len(c.ClusterConfig) > 0 {
		args = append(args, "--"+ClusterConfigFlag, base64.StdEncoding.EncodeToString(c.ClusterConfig))
	}
	if c.JSON {
		args = append(args, "-o", "json")
	}
	return args
}

// HostCommand is the call as an operator runs it as root on the host.
func (c Call) HostCommand() string {
	return HostBinaryPath + " " + strings.Join(c.Argv, " ")
}

// Kinds of transport failure (errors.Is). The error returned carries the
// full explanation; these only classify it.
var (
	// ErrNoSuchHost: the host named is not known to the transport.
	ErrNoSuchHost = errors.New("no such host")
	// ErrUnreachable: the host is there but cannot run kubectl-etcd now
	// (for host pods: its kubelet cannot start pods, usually because its
	// apiserver has no etcd). The host-local command is the way.
	ErrUnreachable = errors.New("the host cannot be reached")
	// ErrForbidden: the transport was refused permission (RBAC, admission).
	ErrForbidden = errors.New("forbidden")
	// ErrSetup: the transport itself is not set up to run kubectl-etcd
	// there (for host pods: the image cannot be pulled).
	ErrSetup = errors.New("the transport cannot run kubectl-etcd")
)

// Unreachable reports whether err says the host could not run the command at
// all (unknown or unreachable): nothing ran there.
func Unreachable(err error) bool {
	return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrNoSuchHost)
}

// Answered reports whether err is a definite outcome: the command ran and
// failed, or the transport knows it cannot run it. Any other error (a broken
// stream, a timeout) leaves open whether the command ran, and a caller that
// needs to know asks the host again.
func Answered(err error) bool {
	var exit *ExitError
	return errors.As(err, &exit) || Unreachable(err) || errors.Is(err, ErrForbidden) || errors.Is(err, ErrSetup)
}

// ExitError is a run whose kubectl-etcd process ended unsuccessfully.
type ExitError struct {
	Node string
	// Where it ran, as the transport names it (e.g. "pod kube-system/x").
	Where    string
	ExitCode int32
	// Reason is the transport's reason, e.g. "Error", "OOMKilled",
	// "DeadlineExceeded".
	Reason string
	// Tail is the last lines of its stderr.
	Tail string
}

func (e *ExitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kubectl-etcd in %s on node %s failed", e.Where, e.Node)
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
