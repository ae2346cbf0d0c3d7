package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/snapshot"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// NewCmdSnapshot returns `kubectl etcd snapshot` (save, status).
func NewCmdSnapshot(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Save an etcd snapshot to a file, or check one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fmt.Errorf("snapshot needs a subcommand: save or status\nSee '%s --help' for usage", cmd.CommandPath())
		},
	}
	cmd.AddCommand(NewCmdSnapshotSave(configFlags, streams), NewCmdSnapshotStatus(streams))
	return cmd
}

// SnapshotSaveOptions: stream a snapshot of one member to a file.
type SnapshotSaveOptions struct {
	HostOptions
	WorkstationOptions
	Local    bool
	Endpoint string
	Force    bool
	Timeout  time.Duration

	face face
	path string
}

// NewCmdSnapshotSave returns `snapshot save FILE [--local]`.
func NewCmdSnapshotSave(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &SnapshotSaveOptions{HostOptions: HostOptions{IOStreams: streams}, WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}}
	cmd := &cobra.Command{
		Use:   "save FILE [--local]",
		Short: "Stream a verified snapshot of a healthy member to FILE",
		Long: `Stream a point-in-time snapshot of one etcd member to FILE.

From a workstation the snapshot comes from the most advanced healthy member
(highest revision, the leader on a tie) through the apiserver, and FILE is
written on this machine. With --local, run as root on a control-plane host:
the snapshot comes from this host's member (https://127.0.0.1:2379, or
--endpoint), with a client certificate signed in memory by the host's etcd CA;
this works without a quorum and with the apiserver down. Without --local,
save is the workstation's wherever it runs.

The file is written as a new FILE.<random>.part (created exclusively, so
nothing planted in the directory is followed), synced, verified (the sha256 etcd appends
to every snapshot, then bolt's integrity check, revision and key count as
"etcdutl snapshot status" reads them), and only then renamed to FILE (mode
0600: a snapshot holds every Secret). A snapshot that fails verification is
removed and FILE is not written. An existing FILE is an error unless --force,
which replaces it only once the new snapshot is verified.`,
		Example: `  kubectl etcd snapshot save ./etcd-before-upgrade.db
  kubectl-etcd snapshot save /root/etcd.db --local      # as root on a control-plane host`,
		Args: cobra.ExactArgs(1),
		RunE: runE(o),
	}
	o.HostOptions.AddFlags(cmd.Flags(), true)
	o.WorkstationOptions.AddFlags(cmd)
	cmd.Flags().BoolVar(&o.Local, "local", false, "snapshot this host's member (as root on a control-plane host), without the apiserver")
	cmd.Flags().StringVar(&o.Endpoint, "endpoint", "", "with --local: the member's client URL (default: this host's member on loopback)")
	cmd.Flags().BoolVar(&o.Force, "force", false, "replace an existing FILE (once the new snapshot is verified)")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 15*time.Minute, "give up if the snapshot has not been written and verified by then")
	return cmd
}

// Complete takes FILE and chooses the face (--local).
func (o *SnapshotSaveOptions) Complete(_ *cobra.Command, args []string) error {
	f, err := chooseFace(verbSnapshotSave, o.Local, "", nil)
	if err != nil {
		return err
	}
	o.face, o.path = f, args[0]
	return nil
}

// Validate rejects bad flags and FILE names before anything is contacted
// or, with --local, a caller that is not root.
func (o *SnapshotSaveOptions) Validate() error {
	if o.face == hostLocalFace {
		return o.validate(o.validateSave)
	}
	if err := o.validateFlags(); err != nil {
		return err
	}
	return o.validateSave()
}

// validateSave checks what both faces share, after the shared flags.
func (o *SnapshotSaveOptions) validateSave() error {
	if o.Timeout <= 0 {
		return fmt.Errorf("--timeout %s must be positive", o.Timeout)
	}
	if o.Endpoint != "" && o.face != hostLocalFace {
		return errors.New("--endpoint goes with --local; from a workstation the member is chosen for you")
	}
	if strings.HasSuffix(o.path, snapshot.PartSuffix) {
		return fmt.Errorf("%s: names ending in %s are for snapshots being written", o.path, snapshot.PartSuffix)
	}
	return nil
}

// Run takes, writes and verifies the snapshot.
func (o *SnapshotSaveOptions) Run(ctx context.Context) error {
	if o.face == hostLocalFace {
		return o.runLocal(ctx)
	}
	return o.runWorkstation(ctx)
}

func (o *SnapshotSaveOptions) runWorkstation(ctx context.Context) error {
	path, err := filepath.Abs(o.path)
	if err != nil {
		return err
	}
	s, err := o.session(o.ErrOut)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	src, info, err := s.Snapshot(ctx, path, snapshot.SaveOptions{Force: o.Force}, o.DryRun)
	if err != nil {
		return err
	}
	if o.DryRun {
		return o.printDryRun(src.Endpoint, fmt.Sprintf("member %s on %s, revision %d", src.Member, src.Node, src.Revision), path)
	}
	return printSnapshotInfo(o.Out, o.Output, "Snapshot saved to", info)
}

func (o *SnapshotSaveOptions) runLocal(ctx context.Context) error {
	if err := o.loadReadOnly(ctx); err != nil {
		return err
	}
	path, err := hostFilePath(o.host, o.path)
	if err != nil {
		return err
	}
	endpoint := o.Endpoint
	if endpoint == "" {
		endpoint = staticpod.LocalEtcdServer(o.config)
	}
	if o.DryRun {
		return o.printDryRun(endpoint, "this host's member", o.path)
	}
	info, err := saveLocal(ctx, o.host, o.config, endpoint, path, o.Timeout, snapshot.SaveOptions{Force: o.Force})
	if err != nil {
		return err
	}
	info.Path = o.path
	return printSnapshotInfo(o.Out, o.Output, "Snapshot saved to", info)
}

func (o *SnapshotSaveOptions) printDryRun(endpoint, what, path string) error {
	if o.Output == "json" {
		return printJSON(o.Out, map[string]any{"dryRun": true, "endpoint": endpoint, "path": path}, true)
	}
	fmt.Fprintf(o.Out, "(dry run) would stream a snapshot from %s (%s) to a new %s.<random>.part, verify it and rename it to %s\n", endpoint, what, path, path)
	return nil
}

// localSource connects to the member at endpoint with a client certificate
// signed in memory by the host's etcd CA, or, where the CA key is not
// there (the backup CronJob's pods are given only kubeadm's client
// certificate), kubeadm's healthcheck-client certificate. No quorum is
// needed: the member serves its own snapshot.
func localSource(host *staticpod.Host, cfg *staticpod.Config, endpoint string) (snapshot.Member, func(), error) {
	tlsCfg, err := host.LocalClientTLS(cfg)
	if err != nil {
		return snapshot.Member{}, nil, err
	}
	c, err := etcdcluster.New(etcdcluster.Config{Endpoints: []string{endpoint}, TLS: tlsCfg, DialTimeout: 3 * time.Second})
	if err != nil {
		return snapshot.Member{}, nil, err
	}
	return snapshot.Member{Client: c, Endpoint: endpoint}, func() { c.Close() }, nil
}

func saveLocal(ctx context.Context, host *staticpod.Host, cfg *staticpod.Config, endpoint, path string, timeout time.Duration, opts snapshot.SaveOptions) (*snapshot.Info, error) {
	src, done, err := localSource(host, cfg, endpoint)
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	info, err := snapshot.Save(ctx, src, path, opts)
	if err != nil {
		return nil, err
	}
	info.Node = cfg.NodeName()
	return info, nil
}

// hostFilePath maps a path typed on the host to this process's view: as
// given (made absolute) when the host is /, under the host root otherwise,
// where only absolute paths mean anything.
func hostFilePath(h *staticpod.Host, p string) (string, error) {
	if h.Root == "/" || h.Root == "" {
		return filepath.Abs(p)
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("%s: give an absolute path on the host (this runs with --host-root %s)", p, h.Root)
	}
	return h.Path(p), nil
}

// SnapshotStatusOptions: the facts of a snapshot file.
type SnapshotStatusOptions struct {
	genericiooptions.IOStreams
	Output string

	path string
}

// NewCmdSnapshotStatus returns `snapshot status FILE`.
func NewCmdSnapshotStatus(streams genericiooptions.IOStreams) *cobra.Command {
	o := &SnapshotStatusOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "status FILE",
		Short: "Verify a snapshot file and print its revision, key count, size and sha256",
		Long: `Verify a snapshot file and print its facts: revision, key count, size,
sha256 of the file, etcdutl's content hash and storage version. Needs no
cluster and no root. A file cut short is reported as truncated, one whose
bytes changed as corrupted (the sha256 etcd appended when it was taken no
longer matches, or bolt's integrity check fails), and the command fails.`,
		Args: cobra.ExactArgs(1),
		RunE: runE(o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json")
	return cmd
}

// Complete takes FILE.
func (o *SnapshotStatusOptions) Complete(_ *cobra.Command, args []string) error {
	o.path = args[0]
	return nil
}

// Validate rejects an output format other than json.
func (o *SnapshotStatusOptions) Validate() error {
	if o.Output != "" && o.Output != "json" {
		return fmt.Errorf("unknown output format %q: only json is supported", o.Output)
	}
	return nil
}

// Run reads, verifies and prints the file's facts.
func (o *SnapshotStatusOptions) Run(context.Context) error {
	info, err := snapshot.Status(o.path)
	if err != nil {
		return err
	}
	return printSnapshotInfo(o.Out, o.Output, "Snapshot", info)
}

func printSnapshotInfo(w io.Writer, output, title string, info *snapshot.Info) error {
	if output == "json" {
		return printJSON(w, info, true)
	}
	fmt.Fprintf(w, "%s %s\n", title, info.Path)
	if info.Endpoint != "" {
		from := "member " + info.MemberID
		if info.Member != "" {
			from = "member " + info.Member + " (" + info.MemberID + ")"
		}
		if info.Node != "" {
			from += " on " + info.Node
		}
		fmt.Fprintf(w, "  from:       %s at %s, cluster %s\n", from, info.Endpoint, info.ClusterID)
	}
	fmt.Fprintf(w, "  revision:   %d\n", info.Revision)
	fmt.Fprintf(w, "  keys:       %d\n", info.TotalKeys)
	fmt.Fprintf(w, "  size:       %s (%d bytes)\n", mib(info.Size), info.Size)
	fmt.Fprintf(w, "  sha256:     %s\n", info.SHA256)
	fmt.Fprintf(w, "  hash:       %d (etcdutl's content hash)\n", info.Hash)
	if info.Version != "" {
		fmt.Fprintf(w, "  version:    %s (storage)\n", info.Version)
	}
	verified := "sha256 trailer and bolt integrity check"
	if !info.IntegrityHash {
		verified = "bolt integrity check only: no sha256 trailer (a bare database file, not from etcd's snapshot API; restore needs --skip-hash-check)"
	}
	if info.Duration != "" {
		verified += ", in " + info.Duration
	}
	fmt.Fprintf(w, "  verified:   %s\n", verified)
	return nil
}

// writeJSON writes v indented, or on one line (for callers that read the
// last JSON line of the output).
func printJSON(w io.Writer, v any, indent bool) error {
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}
