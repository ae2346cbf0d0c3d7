// Package hostpod runs kubectl-etcd on a node of the cluster, as a
// short-lived privileged pod pinned to that node with the host's / mounted at
// /host. This is how the kubectl plugin does host-level work (certificates,
// the etcd manifest, the data dir) from the admin's workstation: the same
// binary runs its hidden "agent" command in the pod, reads one request from
// its stdin and answers on stdout and stderr, all through the apiserver's
// attach subresource. No secret ever goes into the pod's spec or environment;
// the agent uses the host's own files.
package hostpod

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/version"
)

// HostRoot is where the pod mounts the host's /.
const HostRoot = "/host"

// HostBinaryPath is where every agent run leaves a copy of itself on the
// host (hostapi.HostBinaryPath).
const HostBinaryPath = hostapi.HostBinaryPath

// NodeNameEnv carries the pod's node name (from the downward API) to the
// agent: the pod runs on that node, so it is the kubelet's node name by
// definition, while the kubelet's certificate under /host is an absolute
// symlink that only resolves on the host itself.
const NodeNameEnv = "KUBECTL_ETCD_NODE_NAME"

// Labels on every pod this package creates. Cleanup finds leftovers of killed
// runs by them.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "kubectl-etcd"
	RunLabel       = "kubectl-etcd.io/run"
	// ReadOnlyLabel ("true") marks the pod of a run that changes nothing
	// (hostapi.Call.ReadOnly): such runs take no run lock, so a live one
	// may be a colleague's status next to our scale, and cleanup spares it
	// until it ended or is past its deadline.
	ReadOnlyLabel = "kubectl-etcd.io/read-only"
)

// Agent verbs, the "verb" of a Request.
const (
	// VerbStatus reports the host's State (pkg/hostlocal) as JSON on stdout.
	VerbStatus = "status"
	// VerbExec runs a host-local verb (Args.Argv, e.g. ["join",
	// "--endpoints", URL, "-o", "json"]) in the agent with --host-root=/host.
	VerbExec = "exec"
)

// Request is the one JSON document the agent reads from its stdin.
type Request struct {
	Verb string      `json:"verb"`
	Args RequestArgs `json:"args,omitzero"`
	// Version and Commit are the plugin's (pkg/version): the agent acts
	// only for a plugin of its own build, whose requests and expectations
	// it knows. Empty: a caller that does not say (tests, scripts).
	Version string `json:"version,omitempty"`
	Commit  string `json:"commit,omitempty"`
}

// stamped is req with this build's version, as every request the plugin
// sends carries it.
func stamped(req Request) Request {
	req.Version, req.Commit = version.Version, version.GitCommit
	return req
}

// RequestArgs are the arguments of every verb; each verb reads its own.
type RequestArgs struct {
	// Argv is the host-local command line of VerbExec, without the binary.
	Argv []string `json:"argv,omitempty"`
	// Endpoints are extra etcd client URLs VerbStatus may reach the cluster by.
	Endpoints []string `json:"endpoints,omitempty"`
}

// DefaultImage is the image of this build of kubectl-etcd. The pod must run
// the same build as the plugin: the agent protocol is not versioned.
func DefaultImage() string {
	ref := ImageRepository + ":" + version.Version
	if version.ImageDigest != "" {
		ref += "@" + version.ImageDigest
	}
	return ref
}

// ImageRepository is where the released images are.
const ImageRepository = "ghcr.io/kubectl-etcd/kubectl-etcd"

// TagOnly says why an image reference without a digest is a risk, or ""
// when it names a digest: the host pods run privileged with the host's /,
// and a tag is whatever was last pushed under it (IfNotPresent: or
// whatever copy a node already has).
func TagOnly(image string) string {
	if strings.Contains(image, "@sha256:") {
		return ""
	}
	return fmt.Sprintf("image %s names a tag, not a digest: the host pods (privileged, with the host's /) run whatever that tag names when a node pulls it, or a copy the node already has; pin it with %s@sha256:<digest>", image, image)
}

// Agent runs the agent on node with one request: Run with args ["agent"]
// and the request as the pod's whole stdin.
func (r *Runner) Agent(ctx context.Context, node string, req Request, stdout, stderr io.Writer) error {
	raw, err := json.Marshal(stamped(req))
	if err != nil {
		return fmt.Errorf("encoding the agent request: %w", err)
	}
	return r.Run(ctx, node, []string{"agent"}, bytes.NewReader(raw), stdout, stderr)
}

// Exec runs the host-local command line call.Args() on node through the
// agent (VerbExec), with stdin after the request: the hostapi.Transport of
// host pods. When the node's kubelet cannot start the pod, the error names
// the host-local command to run there instead.
func (r *Runner) Exec(ctx context.Context, node string, call hostapi.Call, stdin io.Reader, stdout, stderr io.Writer) error {
	raw, err := json.Marshal(stamped(Request{Verb: VerbExec, Args: RequestArgs{Argv: call.Args()}}))
	if err != nil {
		return fmt.Errorf("encoding the agent request: %w", err)
	}
	in := io.Reader(bytes.NewReader(raw))
	if stdin != nil {
		in = io.MultiReader(in, stdin)
	}
	c := *r
	c.HostLocalCommand = call.HostCommand()
	c.keepOtherRuns = call.ReadOnly
	if call.Poll {
		// A poll is repeated until it answers: no pod lines, and a node
		// that does not start the pod is given up on sooner.
		c.Log = io.Discard
		c.Timeouts.Start = 15 * time.Second
	}
	return c.Run(ctx, node, []string{"agent"}, in, stdout, stderr)
}

var _ hostapi.Transport = (*Runner)(nil)
