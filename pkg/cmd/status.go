package cmd

import (
	"encoding/json"
	"errors"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
)

// StatusOptions: what this host's member and the cluster look like.
type StatusOptions struct {
	HostOptions
	Local     bool
	Endpoints string
}

// NewCmdStatus returns `kubectl-etcd status`.
func NewCmdStatus(streams genericiooptions.IOStreams) *cobra.Command {
	o := &StatusOptions{HostOptions: HostOptions{IOStreams: streams}}
	cmd := &cobra.Command{
		Use:     "status --local",
		Aliases: []string{"members"},
		Short:   "Show this host's etcd member and the cluster it can see (--local, as root)",
		Long: `With --local, run as root on a control-plane host: whether etcd runs here, the
local member's identity, raft index and revision (read from the data dir when
etcd is stopped), which etcd this host's kube-apiserver reads, and every
member the host can reach. Works with the apiserver down.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.prepare(cmd, func() error {
				if !o.Local {
					return errors.New("the workstation view of status is not available yet: run \"kubectl-etcd status --local\" as root on a control-plane host")
				}
				return nil
			}); err != nil {
				return err
			}
			st := o.env().ReadState(cmd.Context(), splitList(o.Endpoints))
			if o.Output == "json" {
				enc := json.NewEncoder(o.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			hostlocal.PrintState(o.Out, st)
			return nil
		},
	}
	o.AddFlags(cmd.Flags(), false)
	cmd.Flags().BoolVar(&o.Local, "local", false, "report from this host (as root), without the apiserver")
	cmd.Flags().StringVar(&o.Endpoints, "endpoints", "", "extra client URLs to reach the cluster by")
	return cmd
}
