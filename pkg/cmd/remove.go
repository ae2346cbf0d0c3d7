package cmd

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/backup"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/workstation"
)

// MemberOptions: remove or replace one member, named by node, member name
// or member ID.
type MemberOptions struct {
	WorkstationOptions
	genericiooptions.IOStreams
	Target     string
	DryRun     bool
	NoSnapshot bool
	DeleteNode bool
	// AcceptDrift: replace only.
	AcceptDrift bool
	Output      string

	run func(s *workstation.Session, ctx context.Context, o workstation.MemberOptions) (*workstation.Result, error)
}

// RemoveOptions: remove one member; from the workstation by node, member
// name or ID, or with --local on a control-plane host by member name or ID.
type RemoveOptions struct {
	HostOptions
	WorkstationOptions
	Target     string
	NoSnapshot bool
	DeleteNode bool
	Local      bool
	Endpoints  string

	face face
}

// NewCmdRemove returns `kubectl etcd remove`.
func NewCmdRemove(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RemoveOptions{HostOptions: HostOptions{IOStreams: streams}, WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}}
	cmd := &cobra.Command{
		Use:   "remove NODE|MEMBER",
		Short: "Remove one etcd member, even when its host is dead or gone",
		Long: `Remove the etcd member of a control-plane node, or a member named by its
name or hex ID (as status shows it; a member whose node is gone has only
those). Refused if it is the last member or if the removal could lose quorum.

When the node can run a pod, the host leaves cleanly (as "kubectl-etcd leave"):
its kube-apiserver is pointed at the other members first, leadership moves
away, the member is removed, etcd stopped and the data dir moved aside (never
deleted). A dead or gone host's member is removed through etcd alone; if the
host comes back, run "kubectl-etcd leave" (or "join") on it. Afterwards,
member-less hosts whose kube-apiserver still lists the removed member are
pointed at the members left.

After a quorum loss, "kubectl-etcd recover" (or "restore") already cut the
other members off: they are not in the member list any more, but their
hosts' Node objects and mirror pods remain. Naming such a host (or its old
member) says so, has nothing to remove in etcd and exits 0, however often it
is run. With --delete-node it also deletes the Node object and its
control-plane mirror pods of a host that is gone for good (refused for a
host that is up: its kubelet still renews its node lease); without it, it
prints the "kubectl delete node" to run: deleting a node is the operator's
decision (kubeadm upgrade refuses while a control-plane node is NotReady).

With --local, run as root on a control-plane host whose member is healthy,
for when the apiserver is down: it removes another, dead member (named by
member name or hex ID) through etcd alone, with the same quorum and alarm
checks, and points this host's kube-apiserver off it if it listed it. This
host's own member is refused: "kubectl-etcd leave" removes it. Nothing is
done on the removed member's host.`,
		Example: `  kubectl etcd remove cp-3 --dry-run
  kubectl etcd remove cp-3
  kubectl etcd remove 8e9e05c52164694d
  kubectl etcd remove cp-3 --delete-node     # the host is gone for good
  kubectl-etcd remove --local cp-3           # as root on cp-1, the apiserver down`,
		Args:              exactlyOne("remove", "NODE|MEMBER"),
		ValidArgsFunction: completeControlPlaneNodes(configFlags),
		RunE:              runE(o),
	}
	o.HostOptions.AddFlags(cmd.Flags(), true)
	o.WorkstationOptions.AddFlags(cmd)
	cmd.Flags().Lookup("output").Usage = "output format: json|yaml (the steps and the final state), wide (the final state); json only with --local"
	cmd.Flags().BoolVar(&o.NoSnapshot, "no-snapshot", false, "skip the verified snapshot taken on a member host (into "+backup.Dir+") before the change")
	cmd.Flags().BoolVar(&o.DeleteNode, "delete-node", false, "also delete the node's Node object and control-plane mirror pods (a host gone for good; refused while its kubelet renews its node lease)")
	cmd.Flags().BoolVar(&o.Local, "local", false, "run on this host (as root), without the apiserver: remove another, dead member by name or ID")
	cmd.Flags().StringVar(&o.Endpoints, "endpoints", "", "with --local: extra client URLs to reach the cluster by")
	return cmd
}

// Complete takes the member or node named and picks the face.
func (o *RemoveOptions) Complete(_ *cobra.Command, args []string) error {
	f, err := chooseFace(verbRemove, o.Local, "", nil)
	if err != nil {
		return err
	}
	o.face, o.Target = f, args[0]
	return nil
}

// Validate rejects bad flags before anything is contacted.
func (o *RemoveOptions) Validate() error {
	if o.Target == "" {
		return fmt.Errorf("name a node or member")
	}
	if o.face == hostLocalFace {
		return o.validate(func() error {
			if o.DeleteNode {
				return fmt.Errorf("--delete-node deletes a Node object through the apiserver; --local works without it: run \"kubectl delete node\" once the apiserver answers")
			}
			return nil
		})
	}
	return validateWorkstationOutput(o.Output)
}

// Run does it, printing progress and then the state left.
func (o *RemoveOptions) Run(ctx context.Context) error {
	if o.face == hostLocalFace {
		if err := o.load(ctx); err != nil {
			return err
		}
		ro := hostlocal.RemoveOptions{Target: o.Target, Endpoints: splitList(o.Endpoints)}
		if !o.NoSnapshot {
			ro.Snapshot = o.preRemoveSnapshot
		}
		res, err := o.env().Remove(ctx, ro)
		return o.report(res, err)
	}
	progress := progressWriter(o.HostOptions.IOStreams, o.Output)
	s, err := o.session(progress)
	if err != nil {
		return err
	}
	res, err := s.Remove(ctx, workstation.MemberOptions{Target: o.Target, DryRun: o.DryRun, NoSnapshot: o.NoSnapshot, DeleteNode: o.DeleteNode})
	return printResult(o.Out, progress, res, o.Output, err)
}

// NewCmdReplace returns `kubectl etcd replace`.
func NewCmdReplace(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &MemberOptions{WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}, IOStreams: streams, run: (*workstation.Session).Replace}
	cmd := &cobra.Command{
		Use:   "replace NODE",
		Short: "Start a node's etcd member over: remove it, move its data aside, add it back fresh",
		Long: `For a member whose host lost its data or whose member is broken: on the node,
etcd is stopped, its data dir moved aside (never deleted), the member removed
and added back as a learner that copies the data from the others, promoted
once caught up, and the node's kube-apiserver pointed at it. Refused when the
removal could lose quorum.

It runs "kubectl-etcd join --replace-member ID" on the node in a host pod. A
node whose member is down usually has its kube-apiserver, and so its kubelet,
down too: then this says so at once and prints that command to run on the
node as root; running it completes the replace.`,
		Example: `  kubectl etcd replace cp-2 --dry-run
  kubectl etcd replace cp-2`,
		Args:              exactlyOne("replace", "NODE"),
		ValidArgsFunction: completeControlPlaneNodes(configFlags),
		RunE:              runE(o),
	}
	o.addFlags(cmd)
	cmd.Flags().BoolVar(&o.AcceptDrift, "accept-drift", false, acceptDriftUsage)
	return cmd
}

// acceptDriftUsage is --accept-drift of the verbs that add a member.
const acceptDriftUsage = "add the member even where the members that stay disagree on a setting every member must share (heartbeat, election timeout, quota...): it gets kubeadm-config's value. Without it that is refused; settings the members agree on are carried to the new member either way"

func (o *MemberOptions) addFlags(cmd *cobra.Command) {
	o.AddFlags(cmd)
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "print the plan and change nothing")
	cmd.Flags().BoolVar(&o.NoSnapshot, "no-snapshot", false, "skip the verified snapshot taken on a member host (into "+backup.Dir+") before the change")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format of the final state: json|yaml|wide")
}

// Complete takes the member or node named.
func (o *MemberOptions) Complete(_ *cobra.Command, args []string) error {
	o.Target = args[0]
	return nil
}

// Validate rejects bad flags before anything is contacted.
func (o *MemberOptions) Validate() error {
	if o.Target == "" {
		return fmt.Errorf("name a node or member")
	}
	switch o.Output {
	case "", "json", "yaml", "wide":
	default:
		return fmt.Errorf("unknown output format %q (json, yaml, wide)", o.Output)
	}
	return nil
}

// Run does it, printing progress and then the state left.
func (o *MemberOptions) Run(ctx context.Context) error {
	progress := progressWriter(o.IOStreams, o.Output)
	s, err := o.session(progress)
	if err != nil {
		return err
	}
	res, err := o.run(s, ctx, workstation.MemberOptions{Target: o.Target, DryRun: o.DryRun, NoSnapshot: o.NoSnapshot, DeleteNode: o.DeleteNode, AcceptDrift: o.AcceptDrift})
	return printResult(o.Out, progress, res, o.Output, err)
}

// preRemoveSnapshot is `backup run --reason pre-remove` of this host's
// member, as the plugin's remove takes through a host pod.
func (o *RemoveOptions) preRemoveSnapshot(ctx context.Context) (string, error) {
	src, done, err := localSource(o.host, o.config, staticpod.LocalEtcdServer(o.config))
	if err != nil {
		return "", err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	res, err := backup.Run(ctx, src, backup.RunOptions{Dir: o.host.Path(backup.Dir), Reason: "pre-remove", Node: o.config.NodeName()})
	if err != nil {
		return "", err
	}
	return o.host.HostPathOf(res.File), nil
}

// exactlyOne wants one argument and says which.
func exactlyOne(verb, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("%s needs exactly one %s, got %d arguments", verb, what, len(args))
		}
		return nil
	}
}

// completeControlPlaneNodes completes the first argument with the cluster's
// control-plane node names (one list call; etcd is not contacted).
func completeControlPlaneNodes(configFlags *genericclioptions.ConfigFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cs, err := configFlags.ToRESTConfig()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		client, err := kubernetes.NewForConfig(cs)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		nodes, err := client.CoreV1().Nodes().List(cmd.Context(), metav1.ListOptions{LabelSelector: workstation.ControlPlaneLabel})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, n := range nodes.Items {
			if strings.HasPrefix(n.Name, toComplete) {
				out = append(out, n.Name)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
