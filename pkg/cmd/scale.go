package cmd

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/backup"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/workstation"
)

// ScaleOptions: make the etcd member set match a count or a list of nodes.
type ScaleOptions struct {
	WorkstationOptions
	genericiooptions.IOStreams
	Replicas    int
	Nodes       string
	DryRun      bool
	NoSnapshot  bool
	AcceptDrift bool
	Output      string

	replicasSet bool
	nodes       []string
}

// NewCmdScale returns `kubectl etcd scale`.
func NewCmdScale(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ScaleOptions{WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "scale --replicas N | --nodes a,b,c",
		Short: "Make the etcd members match a count or a set of control-plane nodes, one safe change at a time",
		Long: `Add or remove stacked etcd members so that there are N of them (on control-plane
nodes chosen deterministically: healthy members stay, new ones go to Ready
nodes in name order) or exactly one on each given node. One change at a time:
a new member joins as a learner, catches up, is promoted, and its host's
kube-apiserver is pointed at it; a member leaves only after its host's
kube-apiserver was pointed at the others and leadership moved away. A change
that could lose quorum is refused. Host work runs in short-lived privileged
pods on the hosts. Safe to run again after a crash.

A new member runs what the members that stay run of the settings every
member must share (heartbeat interval, election timeout, quota, snapshot
count, cipher suites, feature gates) where kubeadm-config would give it
something else, and the plan says so; where the members disagree among
themselves, the addition is refused unless --accept-drift.`,
		Example: `  kubectl etcd scale --replicas 3 --dry-run
  kubectl etcd scale --replicas 3
  kubectl etcd scale --nodes cp-1,cp-2,cp-3`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.AddFlags(cmd)
	cmd.Flags().IntVar(&o.Replicas, "replicas", 0, "number of members")
	cmd.Flags().StringVar(&o.Nodes, "nodes", "", "exact control-plane nodes to run members on")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "print the plan and change nothing")
	cmd.Flags().BoolVar(&o.NoSnapshot, "no-snapshot", false, "skip the verified snapshot taken on a member host (into "+backup.Dir+") before the first change")
	cmd.Flags().BoolVar(&o.AcceptDrift, "accept-drift", false, acceptDriftUsage)
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json|yaml (the steps and the final state), wide (the final state)")
	return cmd
}

// Complete notes whether --replicas was given (0 is a value to refuse, not
// "unset") and splits --nodes.
func (o *ScaleOptions) Complete(cmd *cobra.Command, _ []string) error {
	o.replicasSet = cmd.Flags().Changed("replicas")
	o.nodes = splitList(o.Nodes)
	return nil
}

// Validate rejects bad flags before anything is contacted.
func (o *ScaleOptions) Validate() error {
	if o.replicasSet == (o.Nodes != "") {
		return errors.New("give either --replicas N or --nodes a,b,c")
	}
	if o.replicasSet && o.Replicas < 1 {
		return fmt.Errorf("--replicas must be at least 1, got %d: etcd cannot run without members (to rebuild from nothing, restore a snapshot)", o.Replicas)
	}
	switch o.Output {
	case "", "json", "yaml", "wide":
	default:
		return fmt.Errorf("unknown output format %q (json, yaml, wide)", o.Output)
	}
	return nil
}

// Run makes the change, printing progress and then the state left.
func (o *ScaleOptions) Run(ctx context.Context) error {
	progress := progressWriter(o.IOStreams, o.Output)
	s, err := o.session(progress)
	if err != nil {
		return err
	}
	res, err := s.Scale(ctx, workstation.ScaleOptions{
		Target: workstation.Target{Replicas: o.Replicas, Nodes: o.nodes}, DryRun: o.DryRun, NoSnapshot: o.NoSnapshot, AcceptDrift: o.AcceptDrift})
	return printResult(o.Out, progress, res, o.Output, err)
}
