package cmd

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/recover"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// RestoreNodeOptions: the host side of `kubectl etcd restore FILE --node X`,
// run by the plugin in a host pod. Each step answers one JSON document.
type RestoreNodeOptions struct {
	HostOptions
	SHA256            string
	Size              int64
	AllowOtherCluster bool

	// needConfig: the step reads the cluster configuration, not only files.
	needConfig bool
	step       func(o *RestoreNodeOptions) (any, error)
}

// NewCmdRestoreNode returns the hidden `kubectl-etcd restore-node` and its
// steps: receive (the upload, on stdin), check, start (detached), result.
func NewCmdRestoreNode(streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:    "restore-node",
		Hidden: true, // run by the plugin in its host pod
		Short:  "The host side of kubectl etcd restore --node (run by the plugin)",
	}
	newStep := func(use, short string, needConfig bool, step func(o *RestoreNodeOptions) (any, error)) (*cobra.Command, *RestoreNodeOptions) {
		o := &RestoreNodeOptions{HostOptions: HostOptions{IOStreams: streams}, needConfig: needConfig, step: step}
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE:  runE(o),
		}
		o.AddFlags(c.Flags(), false)
		c.Flags().StringVar(&o.SHA256, "sha256", "", "sha256 of the snapshot file")
		return c, o
	}
	receive, ro := newStep("receive", "Write the snapshot on stdin into "+recover.UploadDir+" (.part, fsync, sha256 checked, rename)", false,
		func(o *RestoreNodeOptions) (any, error) {
			path, had, err := recover.Receive(o.host, o.In, o.SHA256, o.Size)
			if err != nil {
				return nil, err
			}
			return &hostapi.Received{Path: path, AlreadyThere: had}, nil
		})
	receive.Flags().Int64Var(&ro.Size, "size", 0, "size of the snapshot file in bytes")
	check, co := newStep("check", "Is the upload there; is it a sound snapshot of this cluster; is a restore of it running or done (changes nothing)", true,
		func(o *RestoreNodeOptions) (any, error) {
			return recover.CheckUpload(o.env(), o.SHA256, o.AllowOtherCluster)
		})
	check.Flags().BoolVar(&co.AllowOtherCluster, "allow-other-cluster", false, "accept a snapshot whose Kubernetes cluster CA is not this host's")
	start, _ := newStep("start", "Start the restore of the upload detached from this pod, and return", true,
		func(o *RestoreNodeOptions) (any, error) {
			run, started, err := recover.StartRestore(o.env(), o.SHA256, hostapi.HostBinaryPath)
			if err != nil {
				return nil, err
			}
			return &hostapi.RestoreStarted{Started: started, Run: run}, nil
		})
	result, _ := newStep("result", "The detached restore of the upload: running, done or failed, with its log's tail", false,
		func(o *RestoreNodeOptions) (any, error) {
			run, err := recover.ReadRun(o.host, o.SHA256)
			if err != nil {
				return nil, err
			}
			return &hostapi.RestoreRun{Run: run}, nil
		})
	cmd.AddCommand(receive, check, start, result)
	return cmd
}

// Complete has nothing to fill in: the steps take flags only.
func (o *RestoreNodeOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate rejects a bad --sha256, then (for the steps that read the
// configuration, after the shared flags) a caller that is not root.
func (o *RestoreNodeOptions) Validate() error {
	if err := recover.CheckSHA256(o.SHA256); err != nil {
		return fmt.Errorf("--sha256: %w", err)
	}
	if o.needConfig {
		return o.validate(nil)
	}
	return o.validateHost()
}

// Run runs the step and prints its answer as one JSON document.
func (o *RestoreNodeOptions) Run(ctx context.Context) error {
	if o.needConfig {
		if err := o.load(ctx); err != nil {
			return err
		}
	} else {
		o.host = staticpod.NewHost(o.Root)
	}
	v, err := o.step(o)
	if err != nil {
		return err
	}
	return json.NewEncoder(o.Out).Encode(v)
}
