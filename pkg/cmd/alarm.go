package cmd

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/maintenance"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/workstation"
)

// NewCmdAlarm returns `kubectl etcd alarm list|disarm`.
func NewCmdAlarm(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alarm",
		Short: "List or clear etcd's alarms (NOSPACE, CORRUPT)",
		Long: `etcd raises NOSPACE when a member's database reaches its quota
(--quota-backend-bytes, 2 GiB by default) and CORRUPT when a member's data
differs from the others'. Under either, the whole cluster takes no writes:
Kubernetes keeps running what runs, but nothing can change. status shows an
active alarm and what clears it; scale, remove, replace and restore --node
refuse to change the membership under one.`,
	}
	cmd.AddCommand(newCmdAlarmList(configFlags, streams), newCmdAlarmDisarm(configFlags, streams))
	return cmd
}

// AlarmListOptions: list the active alarms.
type AlarmListOptions struct {
	HostOptions
	WorkstationOptions
	Local     bool
	Endpoints string

	face face
}

func newCmdAlarmList(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &AlarmListOptions{HostOptions: HostOptions{IOStreams: streams}, WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List etcd's active alarms, what each means and what clears it",
		Example: `  kubectl etcd alarm list
  kubectl-etcd alarm list --local      # as root on a control-plane host`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.HostOptions.AddFlags(cmd.Flags(), false)
	o.WorkstationOptions.AddFlags(cmd)
	cmd.Flags().Lookup("output").Usage = "output format: json|yaml"
	cmd.Flags().BoolVar(&o.Local, "local", false, "read from this host (as root), without the apiserver")
	cmd.Flags().StringVar(&o.Endpoints, "endpoints", "", "with --local: extra client URLs to reach the cluster by")
	return cmd
}

// Complete picks the face.
func (o *AlarmListOptions) Complete(*cobra.Command, []string) error {
	f, err := chooseFace(verbAlarm, o.Local, "", nil)
	o.face = f
	return err
}

// Validate checks -o.
func (o *AlarmListOptions) Validate() error {
	if o.face == hostLocalFace {
		return o.validate(nil)
	}
	if o.Output != "" && o.Output != "json" && o.Output != "yaml" {
		return fmt.Errorf("unknown output format %q (json, yaml)", o.Output)
	}
	return nil
}

// Run lists the alarms.
func (o *AlarmListOptions) Run(ctx context.Context) error {
	var rows []maintenance.AlarmRow
	if o.face == hostLocalFace {
		if err := o.loadReadOnly(ctx); err != nil {
			return err
		}
		var err error
		if rows, err = o.env().Alarms(ctx, splitList(o.Endpoints)); err != nil {
			return err
		}
	} else {
		s, err := o.session(o.ErrOut)
		if err != nil {
			return err
		}
		l, err := s.Alarms(ctx)
		if err != nil {
			return err
		}
		rows = l.Alarms
	}
	if o.Output != "" {
		return printObject(o.Out, workstation.AlarmList{Alarms: rows}, o.Output)
	}
	printAlarms(o.Out, rows)
	return nil
}

func printAlarms(w io.Writer, rows []maintenance.AlarmRow) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "No alarm is raised.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ALARM\tMEMBER\tID\tHOST")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Type, orDash(r.Member), r.MemberID, orDash(r.Host))
	}
	tw.Flush()
	for _, r := range rows {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(r.Advice))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// AlarmDisarmOptions: clear the alarms whose cause is gone.
type AlarmDisarmOptions struct {
	HostOptions
	WorkstationOptions
	Local     bool
	Endpoints string

	face face
}

func newCmdAlarmDisarm(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &AlarmDisarmOptions{HostOptions: HostOptions{IOStreams: streams}, WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}}
	cmd := &cobra.Command{
		Use:   "disarm",
		Short: "Clear etcd's alarms once their cause is gone",
		Long: `Clear every active alarm, but only when its cause is gone, and otherwise
clear nothing and say why: NOSPACE when every member's database file is
under its quota again (after "kubectl etcd defrag --all --compact"; etcd
compares the file size, so a compaction alone is not enough), CORRUPT when
the member it names has been removed. Safe to run again.`,
		Example: `  kubectl etcd defrag --all --compact && kubectl etcd alarm disarm
  kubectl-etcd alarm disarm --local      # as root on a control-plane host`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.HostOptions.AddFlags(cmd.Flags(), true)
	o.WorkstationOptions.AddFlags(cmd)
	cmd.Flags().Lookup("output").Usage = "output format: json|yaml (the steps and the final state), wide (the final state); json only with --local"
	cmd.Flags().BoolVar(&o.Local, "local", false, "run on this host (as root), without the apiserver")
	cmd.Flags().StringVar(&o.Endpoints, "endpoints", "", "with --local: extra client URLs to reach the cluster by")
	return cmd
}

// Complete picks the face.
func (o *AlarmDisarmOptions) Complete(*cobra.Command, []string) error {
	f, err := chooseFace(verbAlarm, o.Local, "", nil)
	o.face = f
	return err
}

// Validate checks -o.
func (o *AlarmDisarmOptions) Validate() error {
	if o.face == hostLocalFace {
		return o.validate(nil)
	}
	return validateWorkstationOutput(o.Output)
}

// Run clears the alarms.
func (o *AlarmDisarmOptions) Run(ctx context.Context) error {
	if o.face == hostLocalFace {
		if err := o.load(ctx); err != nil {
			return err
		}
		res, err := o.env().Disarm(ctx, splitList(o.Endpoints))
		return o.report(res, err)
	}
	progress := progressWriter(o.HostOptions.IOStreams, o.Output)
	s, err := o.session(progress)
	if err != nil {
		return err
	}
	res, err := s.Disarm(ctx, o.DryRun)
	return printResult(o.Out, progress, res, o.Output, err)
}
