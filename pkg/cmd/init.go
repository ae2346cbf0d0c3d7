package cmd

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// InitOptions: first member of a new etcd cluster on this host.
type InitOptions struct {
	HostOptions
}

// NewCmdInit returns `kubectl-etcd init`.
func NewCmdInit(streams genericiooptions.IOStreams) *cobra.Command {
	o := &InitOptions{HostOptions: HostOptions{IOStreams: streams}}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the first etcd member on this host (host-local, as root)",
		Long: `Create the first member of a new etcd cluster on this control-plane host:
the etcd CA (only if none exists; never overwritten), the member's
certificates, its data dir and kubeadm's etcd static-pod manifest, then wait
until it serves. Grow the cluster from there with "join" on other hosts (or
"kubectl etcd scale" from a workstation).`,
		Example: `  kubectl-etcd init --dry-run
  kubectl-etcd init --advertise-address 10.0.0.11 --node-name cp-1`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.AddFlags(cmd.Flags(), true)
	return cmd
}

// Complete has nothing to fill in: init takes no arguments.
func (o *InitOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate rejects bad flags, then a caller that is not root.
func (o *InitOptions) Validate() error { return o.validate(nil) }

// Run creates the member.
func (o *InitOptions) Run(ctx context.Context) error {
	if err := o.load(ctx); err != nil {
		return err
	}
	res, err := o.env().Init(ctx)
	return o.report(res, err)
}
