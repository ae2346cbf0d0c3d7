package cmd

import (
	"errors"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
)

// JoinOptions: add this host's member to an existing cluster.
type JoinOptions struct {
	HostOptions
	Endpoints       string
	MoveForeignData bool
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
never deleted.`,
		Example: `  kubectl-etcd join --endpoints https://10.0.0.11:2379 --dry-run
  kubectl-etcd join --endpoints https://10.0.0.11:2379,https://10.0.0.12:2379`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.prepare(cmd, func() error {
				if len(splitList(o.Endpoints)) == 0 {
					return errors.New("--endpoints is required: the client URL of at least one current member, e.g. https://10.0.0.11:2379")
				}
				return nil
			}); err != nil {
				return err
			}
			res, err := o.env().Join(cmd.Context(), hostlocal.JoinOptions{Endpoints: splitList(o.Endpoints), MoveForeignData: o.MoveForeignData})
			return o.report(res, err)
		},
	}
	o.AddFlags(cmd.Flags(), true)
	cmd.Flags().StringVar(&o.Endpoints, "endpoints", "", "client URLs of current members (any that answers is used)")
	cmd.Flags().BoolVar(&o.MoveForeignData, "move-aside-foreign-data", false, "move aside (never delete) a data dir that belongs to another etcd cluster instead of refusing")
	return cmd
}
