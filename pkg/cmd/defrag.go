package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/workstation"
)

// DefragOptions: defragment etcd members one at a time.
type DefragOptions struct {
	HostOptions
	WorkstationOptions
	All       bool
	Compact   bool
	Local     bool
	Endpoints string

	face  face
	nodes []string
}

// NewCmdDefrag returns `kubectl etcd defrag`.
func NewCmdDefrag(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &DefragOptions{HostOptions: HostOptions{IOStreams: streams}, WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}}
	cmd := &cobra.Command{
		Use:   "defrag (--all | NODE...)",
		Short: "Defragment etcd members one at a time, followers first and the leader last",
		Long: `Give the free pages of etcd's database files back to the filesystem, one
member at a time: a defragmenting member answers nothing until it is done, so
the others keep the quorum meanwhile. Followers (and learners) go first, in
node order, then the leader, which is not moved away first: a leader change
disturbs every client of the cluster, a leader's defragmentation only holds
writes for the seconds it takes. Before each member every member must be
healthy (it stops otherwise, changing nothing more); after each it waits
until the member answers again and reports the size before and after.
Refused while a member is down, naming it.

--compact first compacts the key history to the current revision (older
revisions are dropped, current values stay), so there is something to give
back. This, then "kubectl etcd alarm disarm", is the way out of etcd's NOSPACE
alarm, under which the cluster takes no writes.

With --local, run as root on a control-plane host: the same steps, through
this host's etcd CA instead of the apiserver. Safe to run again.`,
		Example: `  kubectl etcd defrag --all --compact --dry-run
  kubectl etcd defrag --all --compact
  kubectl etcd defrag cp-2
  kubectl-etcd defrag --local --all      # as root on a control-plane host`,
		RunE: runE(o),
	}
	o.HostOptions.AddFlags(cmd.Flags(), true)
	o.WorkstationOptions.AddFlags(cmd)
	cmd.Flags().Lookup("output").Usage = "output format: json|yaml (the steps and the final state), wide (the final state); json only with --local"
	cmd.Flags().BoolVar(&o.All, "all", false, "every member")
	cmd.Flags().BoolVar(&o.Compact, "compact", false, "compact the key history to the current revision first")
	cmd.Flags().BoolVar(&o.Local, "local", false, "run on this host (as root), without the apiserver")
	cmd.Flags().StringVar(&o.Endpoints, "endpoints", "", "with --local: extra client URLs to reach the cluster by")
	return cmd
}

// Complete picks the face and takes the nodes.
func (o *DefragOptions) Complete(_ *cobra.Command, args []string) error {
	f, err := chooseFace(verbDefrag, o.Local, "", nil)
	if err != nil {
		return err
	}
	o.face, o.nodes = f, args
	return nil
}

// Validate rejects bad flags before anything is contacted.
func (o *DefragOptions) Validate() error {
	if err := validateAllOrNodes(o.All, o.nodes, "defragment"); err != nil {
		return err
	}
	if o.face == hostLocalFace {
		return o.validate(nil)
	}
	return validateWorkstationOutput(o.Output)
}

// Run defragments, printing progress and then the state left.
func (o *DefragOptions) Run(ctx context.Context) error {
	if o.face == hostLocalFace {
		if err := o.load(ctx); err != nil {
			return err
		}
		res, err := o.env().Defrag(ctx, hostlocal.DefragOptions{Endpoints: splitList(o.Endpoints), Hosts: o.nodes, All: o.All, Compact: o.Compact})
		return o.report(res, err)
	}
	progress := progressWriter(o.HostOptions.IOStreams, o.Output)
	s, err := o.session(progress)
	if err != nil {
		return err
	}
	res, err := s.Defrag(ctx, workstation.DefragOptions{Nodes: o.nodes, All: o.All, Compact: o.Compact, DryRun: o.DryRun})
	return printResult(o.Out, progress, res, o.Output, err)
}

// validateAllOrNodes: a verb over members takes --all or node names.
func validateAllOrNodes(all bool, nodes []string, what string) error {
	switch {
	case all && len(nodes) > 0:
		return fmt.Errorf("give --all or the nodes whose members to %s, not both", what)
	case !all && len(nodes) == 0:
		return fmt.Errorf("give --all or the nodes whose members to %s", what)
	}
	return nil
}

// validateWorkstationOutput checks -o for a workstation verb.
func validateWorkstationOutput(output string) error {
	switch output {
	case "", "json", "yaml", "wide":
		return nil
	}
	return fmt.Errorf("unknown output format %q (json, yaml, wide)", output)
}
