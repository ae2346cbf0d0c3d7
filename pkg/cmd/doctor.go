package cmd

// TEMPORARY (branch hdoctor only): the host-local face of `doctor`, enough
// to run hostlocal.Env.Doctor on the test bed. The lead's command replaces
// this file when merging.

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/doctor"
)

// DoctorOptions: one read-only pass naming each problem and its fix.
type DoctorOptions struct {
	HostOptions
	Local     bool
	Endpoints string

	endpoints []string
}

// NewCmdDoctor returns `kubectl-etcd doctor --local`.
func NewCmdDoctor(streams genericiooptions.IOStreams) *cobra.Command {
	o := &DoctorOptions{HostOptions: HostOptions{IOStreams: streams}}
	cmd := &cobra.Command{
		Use:   "doctor --local",
		Short: "Name each problem of this host's etcd and the cluster, with the command that fixes it (host-local, as root)",
		Args:  cobra.NoArgs,
		RunE:  runE(o),
	}
	o.HostOptions.AddFlags(cmd.Flags(), false)
	cmd.Flags().BoolVar(&o.Local, "local", false, "check from this host (as root), without the apiserver")
	cmd.Flags().StringVar(&o.Endpoints, "endpoints", "", "extra client URLs to reach the cluster by")
	return cmd
}

// Complete splits --endpoints.
func (o *DoctorOptions) Complete(*cobra.Command, []string) error {
	o.endpoints = splitList(o.Endpoints)
	return nil
}

// Validate: only the host-local face here.
func (o *DoctorOptions) Validate() error {
	if !o.Local {
		return errors.New("only doctor --local exists in this branch")
	}
	return o.validate(nil)
}

// Run checks and prints; the verdict is the exit code.
func (o *DoctorOptions) Run(ctx context.Context) error {
	if err := o.loadReadOnly(ctx); err != nil {
		return err
	}
	r := o.env().Doctor(ctx, o.endpoints, time.Now())
	if o.Output == "json" {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		doctor.Print(o.Out, r)
	}
	if !r.Healthy {
		return &ExitError{Code: r.ExitCode()}
	}
	return nil
}
