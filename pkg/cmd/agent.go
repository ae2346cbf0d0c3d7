package cmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/atomicfile"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostpod"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/version"
)

// AgentOptions: serve one request inside the plugin's privileged host pod.
type AgentOptions struct {
	genericiooptions.IOStreams

	HostRoot string
	NodeName string

	request hostpod.Request
	// input is stdin after the request, handed on to an exec'd verb.
	input io.Reader
}

// NewCmdAgent returns the hidden `kubectl-etcd agent`.
func NewCmdAgent(streams genericiooptions.IOStreams) *cobra.Command {
	// The pod passes its node name in the environment (downward API); see
	// hostpod.NodeNameEnv for why the agent cannot find it under /host.
	o := &AgentOptions{IOStreams: streams, NodeName: os.Getenv(hostpod.NodeNameEnv)}
	cmd := &cobra.Command{
		Use:    "agent",
		Hidden: true, // run by the plugin inside its pod, not by people
		Short:  "Serve one request inside kubectl-etcd's privileged host pod",
		Long: `Serve one request inside kubectl-etcd's privileged host pod, where the host's /
is mounted at /host. The plugin starts the pod on a node and attaches to it;
the agent reads ONE JSON request from stdin and answers on stdout (results)
and stderr (progress, errors):

  {"verb": "status", "args": {"endpoints": ["https://10.0.0.11:2379"]}}
      the host's state (as "kubectl-etcd status --local -o json") on stdout
  {"verb": "exec", "args": {"argv": ["join", "--endpoints", "https://10.0.0.11:2379", "-o", "json"]}}
      runs that host-local verb here with --host-root=/host

A request carries the plugin's version and commit; the agent serves only
its own build's. Every request it serves also copies this binary to
` + hostpod.HostBinaryPath + ` on the host (atomically, mode 0755), so the
host-local verbs are at hand there when the apiserver, and with it this pod,
cannot be used:
  ` + hostpod.HostBinaryPath + ` status --local`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			// Only for a request of its own build (Validate): an image
			// that is not the plugin's must not leave itself on the host
			// as root's fallback binary. Beside the request, which it
			// does not wait for.
			installed := make(chan error, 1)
			go func() { installed <- installSelf(o.HostRoot) }()
			err := o.Run(cmd)
			if ierr := <-installed; ierr != nil {
				// A convenience for later, not what was asked for: warn.
				fmt.Fprintf(o.ErrOut, "warning: could not leave kubectl-etcd on the host at %s: %v\n", hostpod.HostBinaryPath, ierr)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&o.HostRoot, "host-root", hostpod.HostRoot, "where the host's / is mounted")
	cmd.Flags().StringVar(&o.NodeName, "node-name", o.NodeName, "the host's node name (default: $"+hostpod.NodeNameEnv+")")
	return cmd
}

// Complete reads the request: one JSON document, not necessarily followed by
// the end of stdin (the rest goes to an exec'd verb).
func (o *AgentOptions) Complete() error {
	dec := json.NewDecoder(o.In)
	dec.DisallowUnknownFields() // a typo in a request must not pass silently
	if err := dec.Decode(&o.request); err != nil {
		return fmt.Errorf("reading the agent request (one JSON document) from stdin: %w", err)
	}
	o.input = io.MultiReader(dec.Buffered(), o.In)
	return nil
}

// Validate rejects a request the agent cannot serve, and one from a
// plugin of another build.
func (o *AgentOptions) Validate() error {
	if r := o.request; r.Version != "" && (r.Version != version.Version || r.Commit != version.GitCommit) {
		return fmt.Errorf("this host pod runs kubectl-etcd %s (commit %s), the plugin that sent the request is %s (commit %s); nothing was done. "+
			"Host pods must run the plugin's own build: its image is %s (--image)", version.Version, version.GitCommit, r.Version, r.Commit,
			"ghcr.io/kubectl-etcd/kubectl-etcd:"+r.Version)
	}
	switch o.request.Verb {
	case hostpod.VerbStatus:
		return nil
	case hostpod.VerbExec:
		argv := o.request.Args.Argv
		if len(argv) == 0 {
			return errors.New(`agent request "exec" needs args.argv, the host-local command line (e.g. ["status", "--local"])`)
		}
		if slices.Contains(argv, "--") {
			// Everything after it would be arguments, the appended
			// --host-root included.
			return errors.New(`agent request "exec": "--" is not allowed in args.argv`)
		}
		return nil
	}
	return fmt.Errorf("unknown agent verb %q: the agent serves %q and %q", o.request.Verb, hostpod.VerbStatus, hostpod.VerbExec)
}

// Run serves the request.
func (o *AgentOptions) Run(cmd *cobra.Command) error {
	switch o.request.Verb {
	case hostpod.VerbStatus:
		h := &HostOptions{IOStreams: o.IOStreams, Root: o.HostRoot, NodeName: o.NodeName}
		if err := h.validate(nil); err != nil {
			return err
		}
		if err := h.loadReadOnly(cmd.Context()); err != nil {
			return err
		}
		st := h.env().ReadState(cmd.Context(), o.request.Args.Endpoints)
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	default:
		return o.exec(cmd)
	}
}

// exec runs a host-local verb in this process, on a fresh command tree, as
// if "kubectl-etcd ARGV --host-root=/host" had been typed on the host.
func (o *AgentOptions) exec(cmd *cobra.Command) error {
	argv := o.request.Args.Argv
	root := NewCmdRoot(genericiooptions.IOStreams{In: o.input, Out: o.Out, ErrOut: o.ErrOut})
	target, _, err := root.Find(argv)
	if err != nil || target == root || target.Name() == cmd.Name() || target.Flags().Lookup("host-root") == nil {
		return fmt.Errorf("agent request \"exec\" runs the host-local verbs (init, join, leave, status --local); %q is not one", strings.Join(argv, " "))
	}
	// Last, so it wins over a --host-root in argv: the host is at HostRoot.
	args := append(slices.Clone(argv), "--host-root="+o.HostRoot)
	if o.NodeName != "" && !slices.ContainsFunc(argv, func(a string) bool { return strings.HasPrefix(a, "--node-name") }) {
		args = append(args, "--node-name="+o.NodeName)
	}
	root.SetArgs(args)
	return root.ExecuteContext(cmd.Context())
}

// installSelf copies the running binary to HostBinaryPath on the host,
// atomically (a half-written binary there would be worse than none), unless
// an identical copy is there already.
func installSelf(hostRoot string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary: %w", err)
	}
	dst := staticpod.NewHost(hostRoot).Path(hostpod.HostBinaryPath)
	if same, err := sameContent(self, dst); err != nil {
		return err
	} else if same {
		return nil
	}
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	src, err := os.Open(self)
	if err != nil {
		return err
	}
	defer src.Close()
	// Durable too: the copy is for when the host is in trouble, possibly
	// after a power cut.
	if err := atomicfile.Write(dst, src, 0o755); err != nil {
		return fmt.Errorf("copying %s: %w", self, err)
	}
	return nil
}

// sameContent reports whether b exists with exactly a's bytes. Reading both
// is cheaper than rewriting and syncing a large binary on every run.
func sameContent(a, b string) (bool, error) {
	fb, err := os.Stat(b)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	if os.SameFile(fa, fb) {
		return true, nil
	}
	if fa.Size() != fb.Size() {
		return false, nil
	}
	ra, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer ra.Close()
	rb, err := os.Open(b)
	if err != nil {
		return false, nil // unreadable: replace it
	}
	defer rb.Close()
	bufA, bufB := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, errA := io.ReadFull(ra, bufA)
		nb, errB := io.ReadFull(rb, bufB)
		if na != nb || !bytes.Equal(bufA[:na], bufB[:nb]) {
			return false, nil
		}
		if errA == io.EOF || errA == io.ErrUnexpectedEOF {
			return errB == io.EOF || errB == io.ErrUnexpectedEOF, nil
		}
		if errA != nil {
			return false, errA
		}
		if errB != nil {
			return false, nil
		}
	}
}
