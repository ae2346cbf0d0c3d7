package cmd

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
)

// LeaveOptions: remove this host's member.
type LeaveOptions struct {
	HostOptions
	Endpoints string

	endpoints []string
}

// NewCmdLeave returns `kubectl-etcd leave`.
func NewCmdLeave(streams genericiooptions.IOStreams) *cobra.Command {
	o := &LeaveOptions{HostOptions: HostOptions{IOStreams: streams}}
	cmd := &cobra.Command{
		Use:   "leave",
		Short: "Remove this host's etcd member safely (host-local, as root)",
		Long: `Remove this host's etcd member: refused if it is the last member or if the
removal could lose quorum. This host's kube-apiserver reads only its local
member in kubeadm's stacked layout, so it is first pointed at the remaining
members and must serve from them; leadership is handed over if this member
leads; then the member is removed, its static pod stopped and its data dir
moved aside (never deleted). "join" brings it back.`,
		Example: `  kubectl-etcd leave --dry-run
  kubectl-etcd leave -o json`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.AddFlags(cmd.Flags(), true)
	cmd.Flags().StringVar(&o.Endpoints, "endpoints", "", "extra client URLs to reach the cluster by (the local member and its manifest's peers are always tried)")
	return cmd
}

// Complete splits --endpoints.
func (o *LeaveOptions) Complete(*cobra.Command, []string) error {
	o.endpoints = splitList(o.Endpoints)
	return nil
}

// Validate rejects bad flags, then a caller that is not root.
func (o *LeaveOptions) Validate() error { return o.validate(nil) }

// Run removes the member.
func (o *LeaveOptions) Run(ctx context.Context) error {
	if err := o.load(ctx); err != nil {
		return err
	}
	res, err := o.env().Leave(ctx, hostlocal.LeaveOptions{Endpoints: o.endpoints})
	return o.report(res, err)
}
