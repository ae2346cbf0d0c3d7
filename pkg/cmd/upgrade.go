package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/backup"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdversion"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/workstation"
)

// UpgradeOptions: roll every member to another etcd release; or, with
// --local, move this host's member.
type UpgradeOptions struct {
	HostOptions
	WorkstationOptions
	Version    string
	NoSnapshot bool
	Local      bool
	Endpoints  string

	face face
}

// NewCmdUpgrade returns `kubectl etcd upgrade`.
func NewCmdUpgrade(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &UpgradeOptions{HostOptions: HostOptions{IOStreams: streams}, WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}}
	cmd := &cobra.Command{
		Use:   "upgrade --version 3.x.y",
		Short: "Roll every etcd member to another etcd release, one member at a time",
		Long: `Move every member to etcd --version, the image kubeadm tags for it (3.7.0-0)
in the cluster's image repository. Refused, changing nothing, when etcd does
not support the step: more than one minor version at once, a downgrade, or
mixed versions left by an earlier upgrade unless it is being continued (the
same --version); and when a member does not answer (its version is unknown).

A verified snapshot first. The new tag is recorded in kubeadm-config
(etcd.local.imageTag), so that kubeadm join and upgrade and kubectl etcd
scale and replace use it. Then every member's manifest is rewritten from it as
"kubectl etcd reconfigure" does: one member at a time, followers first, the
leader last, the other members holding the quorum meanwhile, every member
healthy before the next. Last, every member must report the new version.
Safe to run again after a crash: it goes on from where the cluster is.

With --local (as root on a control-plane host the plugin cannot reach): the
same version check against every member, then this host's member only, as
"kubectl-etcd reconfigure --local" with the new image tag; kubeadm-config
is not written (the plan says so).`,
		Example: `  kubectl etcd upgrade --version 3.7.0 --dry-run
  kubectl etcd upgrade --version 3.7.0
  kubectl-etcd upgrade --local --version 3.7.0   # as root on a host, its own member only`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.HostOptions.AddFlags(cmd.Flags(), true)
	o.WorkstationOptions.AddFlags(cmd)
	cmd.Flags().Lookup("output").Usage = "output format: json|yaml (the steps and the final state), wide (the final state); json only with --local"
	cmd.Flags().StringVar(&o.Version, "version", "", "etcd release to move every member to, e.g. 3.7.0")
	cmd.Flags().BoolVar(&o.NoSnapshot, "no-snapshot", false, "skip the verified snapshot taken on a member host (into "+backup.Dir+") before the first change")
	cmd.Flags().BoolVar(&o.Local, "local", false, "upgrade this host's member (as root), without the apiserver")
	cmd.Flags().StringVar(&o.Endpoints, "endpoints", "", "with --local: extra client URLs to reach the cluster by")
	return cmd
}

// Complete picks the face.
func (o *UpgradeOptions) Complete(*cobra.Command, []string) error {
	f, err := chooseFace(verbUpgrade, o.Local, "", nil)
	o.face = f
	return err
}

// Validate rejects bad flags before anything is contacted.
func (o *UpgradeOptions) Validate() error {
	if o.Version == "" {
		return fmt.Errorf("--version is required: the etcd release to move every member to, e.g. 3.7.0")
	}
	if _, err := etcdversion.Parse(o.Version); err != nil {
		return err
	}
	if o.face == hostLocalFace {
		if o.NoSnapshot {
			return fmt.Errorf("--no-snapshot goes without --local: the host-local upgrade takes no snapshot (run `kubectl-etcd backup run` first)")
		}
		return o.validate(nil)
	}
	if o.Endpoints != "" {
		return fmt.Errorf("--endpoints goes with --local")
	}
	return validateWorkstationOutput(o.Output)
}

// Run upgrades, printing progress and then the state left.
func (o *UpgradeOptions) Run(ctx context.Context) error {
	if o.face == hostLocalFace {
		if err := o.load(ctx); err != nil {
			return err
		}
		res, err := o.env().Upgrade(ctx, hostlocal.UpgradeOptions{Version: o.Version, Endpoints: splitList(o.Endpoints)})
		return o.report(res, err)
	}
	progress := progressWriter(o.HostOptions.IOStreams, o.Output)
	s, err := o.session(progress)
	if err != nil {
		return err
	}
	res, err := s.Upgrade(ctx, workstation.UpgradeOptions{Version: o.Version, DryRun: o.DryRun, NoSnapshot: o.NoSnapshot})
	return printResult(o.Out, progress, res, o.Output, err)
}
