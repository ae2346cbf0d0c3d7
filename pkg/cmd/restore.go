package cmd

import (
	"errors"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/recover"
)

// RestoreOptions: everything lost; start again from a snapshot on this host.
type RestoreOptions struct {
	HostOptions
	Yes               bool
	AllowOtherCluster bool
}

// NewCmdRestore returns `kubectl-etcd restore FILE` (host-local).
func NewCmdRestore(streams genericiooptions.IOStreams) *cobra.Command {
	o := &RestoreOptions{HostOptions: HostOptions{IOStreams: streams}}
	cmd := &cobra.Command{
		Use:   "restore FILE [--yes]",
		Short: "Everything lost: restore a snapshot on this host as a new single-member cluster (host-local, as root)",
		Long: `When no member has usable data any more, restore a snapshot on one
control-plane host, as root. restore verifies the file first (sha256 trailer,
complete database, etcd's own status), checks it is a snapshot of this
Kubernetes cluster (its kube-root-ca.crt holds this host's cluster CA; refuse
otherwise unless --allow-other-cluster), refuses while the cluster still has a
quorum, prints the plan and asks (--yes for scripts), then: stops the local
member, moves the data dir aside (never deleted), restores with etcd's own
restore code into a fresh data dir (revisions bumped by 1e9 and older ones
marked compacted, so Kubernetes watches relist instead of missing events),
starts it on a quarantine client port, verifies it, writes kubeadm's normal
single-member manifest and waits for this host's apiserver. Then grow the
cluster again: kubectl-etcd join on each other host (their old data is moved
aside), or kubectl etcd scale. Safe to rerun after a crash.`,
		Example: `  kubectl-etcd restore /var/lib/etcd-backups/snap.db --dry-run
  kubectl-etcd restore /var/lib/etcd-backups/snap.db --yes`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.prepare(cmd, func() error {
				if len(args) != 1 {
					return errors.New("restore needs the snapshot FILE to restore")
				}
				return nil
			}); err != nil {
				return err
			}
			env := o.env()
			r, err := recover.PlanRestore(cmd.Context(), env, recover.RestoreOptions{File: args[0], AllowOtherCluster: o.AllowOtherCluster})
			ro := &RecoverOptions{HostOptions: o.HostOptions}
			if err != nil {
				return ro.reportRecovery(r.Res, err)
			}
			if !o.DryRun && !o.Yes {
				if err := confirm(o.In, env.Out, r); err != nil {
					return err
				}
			}
			err = r.Run(cmd.Context())
			return ro.reportRecovery(r.Res, err)
		},
	}
	o.AddFlags(cmd.Flags(), true)
	cmd.Flags().BoolVarP(&o.Yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&o.AllowOtherCluster, "allow-other-cluster", false, "restore a snapshot whose Kubernetes cluster CA is not this host's")
	return cmd
}
