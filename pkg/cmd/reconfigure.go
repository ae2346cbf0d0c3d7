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

// ReconfigureOptions: rewrite every member's manifest from kubeadm-config,
// one member at a time; or, with --local, this host's.
type ReconfigureOptions struct {
	HostOptions
	WorkstationOptions
	Local      bool
	Endpoints  string
	NoSnapshot bool

	face  face
	nodes []string
}

// NewCmdReconfigure returns `kubectl etcd reconfigure`.
func NewCmdReconfigure(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ReconfigureOptions{HostOptions: HostOptions{IOStreams: streams}, WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}}
	cmd := &cobra.Command{
		Use:   "reconfigure [NODE...]",
		Short: "Apply kubeadm-config's etcd settings to every member, one member at a time",
		Long: `Rewrite each member's etcd manifest as kubeadm writes it from the cluster's
ClusterConfiguration now (kubeadm-config's etcd.local: image, extraArgs,
extraEnvs, resources...; and each host's kubeadm etcd patches), keeping only
the member's bootstrap flags. Hand edits go: this is how a setting every
member must share (a timing, the quota) is changed, after editing
kubeadm-config, since scale and replace carry what the members run.

A verified snapshot first. Then one member at a time, followers first and
the leader last: before each, the other members must hold the quorum without
it; kubelet restarts etcd with the new manifest (the old one is kept under
/etc/kubernetes/kubectl-etcd); after each, every member must be healthy
again before the next. Members already as kubeadm writes them are left
alone, so a rerun after a crash finishes the rest. --dry-run shows, per
host, what changes. Given NODEs, only their members (in the same order).`,
		Example: `  kubectl etcd reconfigure --dry-run
  kubectl etcd reconfigure
  kubectl etcd reconfigure cp-3           # one member: after editing that host's kubeadm patches, say
  kubectl-etcd reconfigure --local        # as root on a host, its own member only`,
		RunE: runE(o),
	}
	o.HostOptions.AddFlags(cmd.Flags(), true)
	o.WorkstationOptions.AddFlags(cmd)
	cmd.Flags().Lookup("output").Usage = "output format: json|yaml (the steps and the final state), wide (the final state); json only with --local"
	cmd.Flags().BoolVar(&o.Local, "local", false, "reconfigure this host's member (as root), without the apiserver")
	cmd.Flags().StringVar(&o.Endpoints, "endpoints", "", "with --local: extra client URLs to reach the cluster by (for the quorum check)")
	cmd.Flags().BoolVar(&o.NoSnapshot, "no-snapshot", false, "skip the verified snapshot taken on a member host before the first change")
	return cmd
}

// Complete picks the face.
func (o *ReconfigureOptions) Complete(_ *cobra.Command, args []string) error {
	f, err := chooseFace(verbReconfigure, o.Local, "", nil)
	o.face, o.nodes = f, args
	return err
}

// Validate rejects bad flags before anything is contacted.
func (o *ReconfigureOptions) Validate() error {
	if o.face == hostLocalFace {
		if o.NoSnapshot {
			return fmt.Errorf("--no-snapshot goes without --local: the host-local reconfigure takes no snapshot (run `kubectl-etcd backup run` first)")
		}
		if len(o.nodes) > 0 {
			return fmt.Errorf("--local reconfigures this host's member only: give no node names")
		}
		return o.validate(nil)
	}
	if o.Endpoints != "" {
		return fmt.Errorf("--endpoints goes with --local")
	}
	return validateWorkstationOutput(o.Output)
}

// Run reconfigures, printing progress and then the state left.
func (o *ReconfigureOptions) Run(ctx context.Context) error {
	if o.face == hostLocalFace {
		if err := o.load(ctx); err != nil {
			return err
		}
		res, err := o.env().Reconfigure(ctx, hostlocal.ReconfigureOptions{Endpoints: splitList(o.Endpoints)})
		return o.report(res, err)
	}
	progress := progressWriter(o.HostOptions.IOStreams, o.Output)
	s, err := o.session(progress)
	if err != nil {
		return err
	}
	res, err := s.Reconfigure(ctx, workstation.ReconfigureOptions{DryRun: o.DryRun, NoSnapshot: o.NoSnapshot, Nodes: o.nodes})
	return printResult(o.Out, progress, res, o.Output, err)
}
