package cmd

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// JoinOptions: add this host's member to an existing cluster.
type JoinOptions struct {
	HostOptions
	Endpoints       string
	MoveForeignData bool
	ReplaceMember   string
	EtcdArgs        []string

	endpoints []string
	replace   uint64           // --replace-member, parsed
	etcdArgs  []kubeadmapi.Arg // --etcd-arg, parsed
}

// NewCmdJoin returns `kubectl-etcd join`.
func NewCmdJoin(streams genericiooptions.IOStreams) *cobra.Command {
	o := &JoinOptions{HostOptions: HostOptions{IOStreams: streams}}
	cmd := &cobra.Command{
		Use:   "join --endpoints URL[,URL...]",
		Short: "Add this host as an etcd member: learner, catch up, promote (host-local, as root)",
		Long: `Add this control-plane host to an existing etcd cluster the safe way: add it
as a learner (non-voting), write its certificates and kubeadm's etcd manifest
with initial-cluster-state=existing, wait until it has started and caught up,
promote it to a voting member, wait for a healthy quorum, and point this
host's kube-apiserver at the local member.

Needs the cluster's etcd CA on this host (kubeadm join --control-plane brings
it). Safe to run again after a crash or Ctrl-C: it finds its own learner or
voter and carries on. Stale data of an earlier membership is moved aside,
never deleted. With --replace-member ID, this host's member ID (broken, or
with bad data) is replaced by a fresh one; rerunning after it was replaced
is a normal join.

--etcd-arg NAME=VALUE gives the member a flag on top of the
ClusterConfiguration's etcd.local.extraArgs: a setting the other members run
that kubeadm-config does not give (a timing tuned by hand, say), which every
member must share. ` + "`kubectl etcd scale` and `replace`" + ` pass the ones they find.`,
		Example: `  kubectl-etcd join --endpoints https://10.0.0.11:2379 --dry-run
  kubectl-etcd join --endpoints https://10.0.0.11:2379,https://10.0.0.12:2379
  kubectl-etcd join --endpoints https://10.0.0.11:2379 --replace-member 8e9e05c52164694d
  kubectl-etcd join --endpoints https://10.0.0.11:2379 --etcd-arg heartbeat-interval=250 --etcd-arg election-timeout=2500`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.AddFlags(cmd.Flags(), true)
	cmd.Flags().StringVar(&o.Endpoints, "endpoints", "", "client URLs of current members (any that answers is used)")
	cmd.Flags().StringVar(&o.ReplaceMember, "replace-member", "", "ID (hex) of this host's member to replace with a fresh one: it is stopped, its data moved aside, removed and added back as a learner (what `kubectl etcd replace` runs)")
	cmd.Flags().StringArrayVar(&o.EtcdArgs, "etcd-arg", nil, "etcd flag NAME=VALUE for this member's manifest, on top of etcd.local.extraArgs (repeatable): a setting the other members run that kubeadm-config does not give")
	cmd.Flags().BoolVar(&o.MoveForeignData, "move-aside-foreign-data", false, "move aside (never delete) a data dir that belongs to another etcd cluster instead of refusing")
	return cmd
}

// Complete splits --endpoints.
func (o *JoinOptions) Complete(*cobra.Command, []string) error {
	o.endpoints = splitList(o.Endpoints)
	return nil
}

// Validate rejects bad flags, then a caller that is not root. It keeps the
// parsed --replace-member for Run.
func (o *JoinOptions) Validate() error {
	return o.validate(func() error {
		if len(o.endpoints) == 0 {
			return errors.New("--endpoints is required: the client URL of at least one current member, e.g. https://10.0.0.11:2379")
		}
		o.replace = 0
		if o.ReplaceMember != "" {
			id, err := strconv.ParseUint(o.ReplaceMember, 16, 64)
			if err != nil || id == 0 {
				return fmt.Errorf("--replace-member %q is not a member ID (hex, as status shows it)", o.ReplaceMember)
			}
			o.replace = id
		}
		args, err := staticpod.ParseEtcdArgs(o.EtcdArgs)
		if err != nil {
			return err
		}
		o.etcdArgs = args
		return nil
	})
}

// Run adds the member.
func (o *JoinOptions) Run(ctx context.Context) error {
	if err := o.load(ctx); err != nil {
		return err
	}
	o.config.SetEtcdArgs(o.etcdArgs, "--etcd-arg: what the other members run")
	// The plugin's host pods run with --host-root /host and pass the
	// members' settings; an operator's run is on / and may not.
	byHand := o.Root == "/" && len(o.etcdArgs) == 0
	res, err := o.env().Join(ctx, hostlocal.JoinOptions{Endpoints: o.endpoints, MoveForeignData: o.MoveForeignData, ReplaceMember: o.replace, ByHand: byHand})
	return o.report(res, err)
}
