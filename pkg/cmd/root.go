// Package cmd holds the cobra command tree of kubectl-etcd, one file per
// verb. The same tree serves both ways the binary is used: as a kubectl
// plugin talking to the cluster through a kubeconfig, and as a host-local
// tool run as root on a kubeadm control-plane host.
package cmd

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

// NewCmdRoot returns the root command. Everything it needs is passed in or
// created here, so tests can build as many independent trees as they like.
func NewCmdRoot(streams genericiooptions.IOStreams) *cobra.Command {
	configFlags := genericclioptions.NewConfigFlags(true)
	// kubeadm always runs etcd in kube-system, so a --namespace flag could
	// only be silently ignored; leaving the pointer nil keeps AddFlags from
	// registering it.
	configFlags.Namespace = nil

	cmd := &cobra.Command{
		// The binary is named kubectl-etcd so kubectl (and krew) find it as
		// a plugin; the display name makes help and usage read the way the
		// user typed it.
		Use:   "kubectl-etcd",
		Short: "Manage the stacked etcd of a kubeadm cluster",
		Long: `Manage the stacked etcd of a kubeadm cluster.

kubectl-etcd works in two ways:
  - as a kubectl plugin ("kubectl etcd ..."), reaching the cluster through
    your kubeconfig;
  - as a host-local tool run as root on a kubeadm control-plane host, for
    when the apiserver itself is down.`,
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl etcd",
		},
		// An error from a reachable command is about the cluster, not about
		// how the command was typed; repeating the usage would bury it.
		SilenceUsage: true,
		// main prints the error once, kubectl style ("error: ..."); cobra
		// printing it too would show it twice.
		SilenceErrors: true,
	}
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	// With usage silenced, point the user at help for mistakes that really
	// are about how the command was typed.
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w\nSee '%s --help' for usage", err, c.CommandPath())
	})

	configFlags.AddFlags(cmd.PersistentFlags())
	// The apiserver's warnings (a Pod Security level that would refuse the
	// host pods, a deprecated API) go to stderr, once each, as kubectl
	// prints them; client-go's default sends them to klog, which main
	// silences.
	configFlags.WrapConfigFn = func(c *rest.Config) *rest.Config {
		c.WarningHandler = rest.NewWarningWriter(streams.ErrOut, rest.WarningWriterOptions{Deduplicate: true})
		return c
	}
	var verbosity int
	cmd.PersistentFlags().IntVarP(&verbosity, "v", "v", 0, "client-go's log (klog) on stderr at this level: 6 shows every API request, 8 their bodies; 0 logs nothing")
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error {
		return klogTo(streams.ErrOut, verbosity)
	}

	cmd.AddCommand(NewCmdVersion(configFlags, streams))
	cmd.AddCommand(NewCmdInit(streams), NewCmdJoin(streams), NewCmdLeave(streams), NewCmdStatus(configFlags, streams), NewCmdScale(configFlags, streams), NewCmdRemove(configFlags, streams), NewCmdReplace(configFlags, streams), NewCmdSignClientCert(streams), NewCmdCAReceive(streams), NewCmdCASend(streams))
	cmd.AddCommand(NewCmdAgent(streams), NewCmdDoctor(streams))
	cmd.AddCommand(NewCmdSnapshot(configFlags, streams), NewCmdBackup(configFlags, streams))
	cmd.AddCommand(NewCmdRecover(configFlags, streams))
	cmd.AddCommand(NewCmdDefrag(configFlags, streams), NewCmdAlarm(configFlags, streams), NewCmdCerts(configFlags, streams), NewCmdReconfigure(configFlags, streams), NewCmdUpgrade(configFlags, streams))
	cmd.AddCommand(NewCmdRestore(configFlags, streams), NewCmdRestoreNode(streams))
	return cmd
}

// options is the shape of every verb, as in kubectl's commands: Complete
// fills in what the arguments, flags and kubeconfig say; Validate rejects bad
// input before anything is contacted or changed; Run does it.
type options interface {
	Complete(cmd *cobra.Command, args []string) error
	Validate() error
	Run(ctx context.Context) error
}

// runE is a verb's cobra RunE: Complete, Validate, Run, stopping at the
// first error.
func runE(o options) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := o.Complete(cmd, args); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return err
		}
		return o.Run(cmd.Context())
	}
}

// klogTo sends klog (client-go's log) to w at level v when v > 0; main
// leaves it silenced otherwise (see there why).
func klogTo(w io.Writer, v int) error {
	if v <= 0 {
		return nil
	}
	var fs flag.FlagSet
	klog.InitFlags(&fs)
	if err := fs.Set("v", strconv.Itoa(v)); err != nil {
		return fmt.Errorf("-v %d: %w", v, err)
	}
	klog.LogToStderr(false)
	klog.SetOutput(w)
	return nil
}

// ExitError ends a command with Code without the command having failed
// (doctor's verdict, for scripts and pager runbooks): main prints Message,
// when there is one, and exits with Code.
type ExitError struct {
	Code    int
	Message string
}

func (e *ExitError) Error() string { return e.Message }
