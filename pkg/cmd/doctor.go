package cmd

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/doctor"
)

// DoctorOptions: one read-only pass that names each problem and its fix.
type DoctorOptions struct {
	HostOptions
	WorkstationOptions
	Local     bool
	Endpoints string

	face      face
	endpoints []string
}

// NewCmdDoctor returns `kubectl etcd doctor` / `kubectl-etcd doctor --local`.
func NewCmdDoctor(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &DoctorOptions{HostOptions: HostOptions{IOStreams: streams}, WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}}
	cmd := &cobra.Command{
		Use:   "doctor [--local]",
		Short: "Name every problem of etcd and its hosts, each with the command that fixes it (read-only)",
		Long: `The first thing to run when paged. One read-only pass over the cluster that
names each problem it finds, worst first, with the exact command that fixes it
(and where to run it, when that is a control-plane host):

  members down, unstarted (a failed join) or left as learners; quorum lost or
  an even count; etcd alarms (NOSPACE, CORRUPT); a member without a host, a
  host running an etcd that is no member (stale or another cluster's data);
  a kube-apiserver reading a removed member; hosts a recover or restore cut
  off and that have not rejoined; manifest drift from kubeadm-config;
  certificates expired or expiring within 30 days, missing or not what
  kubeadm would issue; backups not scheduled, failing or late; host pods left
  by killed runs.

From a workstation it reads etcd as status does and each control-plane host's
certificates through a read-only host pod. When the apiserver does not
answer (quorum lost), it says so and points at the host-local pass.

With --local, as root on a control-plane host and without the apiserver: this
host's etcd, its data dir (a cluster ID other than the cluster's), its
kube-apiserver's etcd servers, its certificates and backups, and every member
the host can reach.

Exit code: 0 healthy (notes allowed), 2 a problem found, 1 doctor itself could
not run.`,
		Example: `  kubectl etcd doctor
  kubectl etcd doctor -o json
  kubectl-etcd doctor --local          # as root on a control-plane host, apiserver down`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.HostOptions.AddFlags(cmd.Flags(), false)
	o.WorkstationOptions.AddFlags(cmd)
	cmd.Flags().BoolVar(&o.Local, "local", false, "check this host (as root) and the members it reaches, without the apiserver")
	cmd.Flags().StringVar(&o.Endpoints, "endpoints", "", "with --local: extra client URLs to reach the cluster by")
	return cmd
}

// Complete chooses the face.
func (o *DoctorOptions) Complete(*cobra.Command, []string) error {
	f, err := chooseFace(verbDoctor, o.Local, "", nil)
	if err != nil {
		return err
	}
	o.face, o.endpoints = f, splitList(o.Endpoints)
	return nil
}

// Validate checks -o (and, with --local, that this runs as root).
func (o *DoctorOptions) Validate() error {
	if o.face == hostLocalFace {
		return o.validate(nil)
	}
	switch o.Output {
	case "", "json", "yaml":
		return nil
	}
	return fmt.Errorf("unknown output format %q (json, yaml)", o.Output)
}

// Run makes the pass and prints it; a report with problems ends in exit
// code 2.
func (o *DoctorOptions) Run(ctx context.Context) error {
	var r *doctor.Report
	if o.face == hostLocalFace {
		if err := o.loadReadOnly(ctx); err != nil {
			return err
		}
		r = o.env().Doctor(ctx, o.endpoints, time.Now())
	} else {
		s, err := o.session(o.ErrOut)
		if err != nil {
			// No apiserver is the first problem, not a failure of the
			// pass: say it as one, with where to go on.
			r = &doctor.Report{Face: "workstation", Checked: []string{"apiserver"}, Findings: []doctor.Finding{{
				Check: "apiserver-down", Severity: doctor.Critical, Problem: err.Error(),
				Fix: "as root on each control-plane host: `kubectl-etcd doctor --local`"}}}
			r.Finish()
		} else {
			s.Warn = o.ErrOut
			r = s.Doctor(ctx)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if o.Output != "" {
		if err := printObject(o.Out, r, o.Output); err != nil {
			return err
		}
	} else {
		doctor.Print(o.Out, r)
	}
	if code := r.ExitCode(); code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}
