package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/recover"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/workstation"
)

// RestoreOptions: everything lost, or a roll-back: start again from a
// snapshot, on this host (host-local) or on --node from the workstation.
type RestoreOptions struct {
	HostOptions
	WorkstationOptions
	Local             bool
	Yes               bool
	AllowOtherCluster bool
	ReplaceSoleMember bool
	detachedChild     bool

	// The workstation's (--node).
	Node       string
	Replicas   int
	NoSnapshot bool
	Timeout    time.Duration

	face face
	file string
}

// NewCmdRestore returns `kubectl-etcd restore FILE` (host-local) and
// `kubectl etcd restore FILE --node X` (from the workstation).
func NewCmdRestore(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RestoreOptions{HostOptions: HostOptions{IOStreams: streams}, WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}}
	cmd := &cobra.Command{
		Use:   "restore FILE [--yes] | restore FILE --node NODE [--replicas N]",
		Short: "Restore a snapshot as a new single-member cluster: on this host (everything lost), or on --node from the workstation (roll back)",
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
aside), or kubectl etcd scale. Safe to rerun after a crash. "restore FILE"
is this host-local restore unless --node is given; --local says so
explicitly and is refused with --node.

From the workstation, while the apiserver is up ("kubectl etcd restore FILE
--node NODE", a roll-back of a working cluster): the file on this machine is
verified, uploaded to NODE (/var/lib/kubectl-etcd/restore, sha256 checked)
and checked there to be of this cluster; a verified snapshot of the state of
now is taken on a member host (--no-snapshot skips it); etcd is shrunk to
NODE's member alone as "scale --nodes NODE" does; then the host-local restore
above runs on NODE detached from the host pod (it stops the etcd every
apiserver reads: the apiserver is down for a few minutes). The plugin waits
for it (--timeout), reports it, and with --replicas N grows the cluster back.
Interrupting the wait does not stop the restore; rerunning the command waits
again, and after a finished restore says so.`,
		Example: `  kubectl-etcd restore /var/lib/etcd-backups/snap.db --dry-run
  kubectl-etcd restore /var/lib/etcd-backups/snap.db --yes
  kubectl etcd restore ./snap.db --node cp-1 --dry-run
  kubectl etcd restore ./snap.db --node cp-1 --replicas 3`,
		Args: cobra.MaximumNArgs(1),
		RunE: runE(o),
	}
	o.HostOptions.AddFlags(cmd.Flags(), true)
	o.WorkstationOptions.AddFlags(cmd)
	cmd.Flags().BoolVar(&o.Local, "local", false, "restore on this host (as root): the default without --node, refused with it")
	cmd.Flags().BoolVarP(&o.Yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&o.AllowOtherCluster, "allow-other-cluster", false, "restore a snapshot whose Kubernetes cluster CA is not this host's")
	cmd.Flags().BoolVar(&o.ReplaceSoleMember, "replace-sole-member", false, "host-local: restore over the running cluster when its only member is this host's (a roll-back; its writes after the snapshot are lost)")
	cmd.Flags().BoolVar(&o.detachedChild, "detached-child", false, "")
	_ = cmd.Flags().MarkHidden("detached-child") // set by restore-node start
	cmd.Flags().StringVar(&o.Node, "node", "", "from the workstation: the control-plane node to restore on (its member is kept, the others removed first)")
	cmd.Flags().IntVar(&o.Replicas, "replicas", 0, "from the workstation: grow back to this many members after the restore (default: print the command)")
	cmd.Flags().BoolVar(&o.NoSnapshot, "no-snapshot", false, "from the workstation: skip the verified snapshot of the state of now taken on a member host first")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 10*time.Minute, "from the workstation: how long to wait for the restore on the node")
	return cmd
}

// Complete takes FILE and chooses the face: host-local unless --node.
func (o *RestoreOptions) Complete(_ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return errors.New("restore needs the snapshot FILE to restore")
	}
	f, err := chooseFace(verbRestore, o.Local, o.Node, nil)
	if err != nil {
		return err
	}
	o.face, o.file = f, args[0]
	return nil
}

// Validate rejects bad flags before anything is contacted or changed: with
// --node those of the workstation's restore, else (as root) the host's.
func (o *RestoreOptions) Validate() error {
	if o.face == hostLocalFace {
		return o.validate(nil)
	}
	switch o.Output {
	case "", "json", "yaml", "wide":
	default:
		return fmt.Errorf("unknown output format %q (json, yaml, wide)", o.Output)
	}
	if o.Replicas < 0 {
		return fmt.Errorf("--replicas must be at least 1, got %d", o.Replicas)
	}
	if o.Timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %s", o.Timeout)
	}
	return nil
}

// Run restores on this host, or on --node from the workstation.
func (o *RestoreOptions) Run(ctx context.Context) error {
	if o.face == workstationFace {
		return o.workstation(ctx)
	}
	if o.detachedChild {
		// Started by "restore-node start": read nothing of the host before
		// the starter has moved this process out of its pod (Validate,
		// which only checks flags, root and --host-root, has run).
		if err := recover.WaitGo(o.In); err != nil {
			return err
		}
	}
	if err := o.load(ctx); err != nil {
		return err
	}
	env := o.env()
	r, err := recover.PlanRestore(ctx, env, recover.RestoreOptions{File: o.file, AllowOtherCluster: o.AllowOtherCluster, ReplaceSoleMember: o.ReplaceSoleMember})
	ro := &RecoverOptions{HostOptions: o.HostOptions}
	if err != nil {
		return ro.reportRecovery(r.Res, err)
	}
	if !o.DryRun && !o.Yes {
		if err := confirm(o.In, env.Out, r); err != nil {
			return err
		}
	}
	err = r.Run(ctx)
	return ro.reportRecovery(r.Res, err)
}

// workstation is `kubectl etcd restore FILE --node X`.
func (o *RestoreOptions) workstation(ctx context.Context) error {
	progress := progressWriter(o.IOStreams, o.Output)
	s, err := o.session(progress)
	if err != nil {
		// A restore started by an earlier run takes the apiserver down for
		// a while: wait for it rather than fail.
		fmt.Fprintf(progress, "%v\nIf an earlier run started a restore on %s, the apiserver is back when it ends: waiting up to %s.\n", err, o.Node, o.Timeout)
		ro := &RecoverOptions{WorkstationOptions: o.WorkstationOptions}
		deadline := time.Now().Add(o.Timeout)
		for ro.apiserverReady(ctx) != nil {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("the apiserver did not answer within %s: look at %s (as root: kubectl-etcd status --local; the restore logs in %s)", o.Timeout, o.Node, recover.LogDir)
			}
			time.Sleep(5 * time.Second)
		}
		if s, err = o.session(progress); err != nil {
			return err
		}
	}
	ro := workstation.RestoreOptions{File: o.file, Node: o.Node, Replicas: o.Replicas, DryRun: o.DryRun,
		NoSnapshot: o.NoSnapshot, AllowOtherCluster: o.AllowOtherCluster, Timeout: o.Timeout}
	if !o.Yes {
		ro.Confirm = func() error {
			fmt.Fprint(progress, "Proceed? Type 'yes' to continue: ")
			line, _ := bufio.NewReader(o.In).ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(line)); a != "yes" && a != "y" {
				return errors.New("not confirmed: nothing was changed")
			}
			return nil
		}
	}
	res, err := s.RestoreNode(ctx, ro)
	if err := printResult(o.Out, progress, res, o.Output, err); err != nil {
		return err
	}
	if res.Next != "" {
		fmt.Fprintf(progress, "\nThe cluster runs on fewer etcd members than before the restore. Grow it again:\n  %s\n", res.Next)
	}
	return nil
}
