package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/workstation"
)

// StatusOptions: what the members (or, with --local, this host's member)
// look like.
type StatusOptions struct {
	HostOptions
	WorkstationOptions
	Local     bool
	Endpoints string
	Via       string

	face      face
	endpoints []string
	via       workstation.StatusVia
}

// NewCmdStatus returns `kubectl etcd status` / `kubectl-etcd status --local`.
func NewCmdStatus(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &StatusOptions{HostOptions: HostOptions{IOStreams: streams}, WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}}
	cmd := &cobra.Command{
		Use:     "status --local",
		Aliases: []string{"members"},
		Short:   "Show the etcd members, their hosts and drift (or, with --local, this host's member)",
		Long: `From a workstation: one row per member (host, ID, leader, voter/learner,
health, DB size, raft index, revision, version, alarms; -o wide adds more),
one row per control-plane node with the etcd its kube-apiserver reads, and
the drift between members and hosts. Members are queried in parallel through
the apiserver; a dead member is a row saying so. By default etcd is read with
the etcdctl of the running etcd static pods (an exec, as kubectl exec does,
with the host's healthcheck-client certificate) and no pod is created; when
that cannot answer, status says why on stderr and uses a host pod instead.

With --local, run as root on a control-plane host: whether etcd runs here, the
local member's identity, raft index and revision (read from the data dir when
etcd is stopped), which etcd this host's kube-apiserver reads, and every
member the host can reach. Works with the apiserver down. Without --local,
status is the workstation's wherever it runs (a control-plane host with a
kubeconfig too).`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.HostOptions.AddFlags(cmd.Flags(), false)
	o.WorkstationOptions.AddFlags(cmd)
	cmd.Flags().BoolVar(&o.Local, "local", false, "report from this host (as root), without the apiserver")
	cmd.Flags().StringVar(&o.Endpoints, "endpoints", "", "extra client URLs to reach the cluster by")
	cmd.Flags().StringVar(&o.Via, "via", string(workstation.StatusAuto), "how to read etcd from the workstation: exec (etcdctl in the etcd pods, no pod created), host-pod (a host pod signs a client certificate; members through port-forward), auto (exec, else host-pod)")
	return cmd
}

// Complete chooses the face (--local) and splits --endpoints.
func (o *StatusOptions) Complete(*cobra.Command, []string) error {
	f, err := chooseFace(verbStatus, o.Local, "", nil)
	if err != nil {
		return err
	}
	o.face, o.endpoints = f, splitList(o.Endpoints)
	return nil
}

// Validate rejects bad flags before anything is asked of the cluster or, with
// --local, a caller that is not root. It keeps the parsed --via for Run.
func (o *StatusOptions) Validate() error {
	if o.face == hostLocalFace {
		return o.validate(nil)
	}
	switch o.Output {
	case "", "json", "yaml", "wide":
	default:
		return fmt.Errorf("unknown output format %q (json, yaml, wide)", o.Output)
	}
	via, err := workstation.ParseStatusVia(o.Via)
	if err != nil {
		return err
	}
	o.via = via
	return nil
}

// Run reads and prints the status.
func (o *StatusOptions) Run(ctx context.Context) error {
	if o.face == hostLocalFace {
		return o.runLocal(ctx)
	}
	if o.SSH.Enabled && (len(o.SSH.Hosts) > 0 || o.SSH.HostsFile != "") {
		if err := o.SSH.Validate(); err != nil {
			return err
		}
		return o.runHostsSSH(ctx)
	}
	s, err := o.session(o.ErrOut)
	if err != nil {
		return err
	}
	// The default table does not show certificate expiry.
	s.StatusVia, s.Warn, s.SkipCertExpiry = o.via, o.ErrOut, o.Output == ""
	st, err := s.Status(ctx)
	if err != nil {
		return err
	}
	return printClusterStatus(o.Out, st, o.Output)
}

func (o *StatusOptions) runLocal(ctx context.Context) error {
	if err := o.loadReadOnly(ctx); err != nil {
		return err
	}
	st := o.env().ReadState(ctx, o.endpoints)
	if o.Output == "json" {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	hostlocal.PrintState(o.Out, st)
	return nil
}

// runHostsSSH is `status --ssh --hosts ...`: each listed host's own view
// (`status --local` there), all asked at once over SSH, for when the
// apiserver cannot be asked (quorum lost): the survey an operator would
// otherwise make host by host.
func (o *StatusOptions) runHostsSSH(ctx context.Context) error {
	hosts, err := o.SSH.inventory()
	if err != nil {
		return err
	}
	t, err := o.SSH.transport(hosts, o.ErrOut)
	if err != nil {
		return err
	}
	defer t.Close()
	client := &hostapi.Client{Transport: t}
	type answer struct {
		Host  string          `json:"host"`
		State json.RawMessage `json:"state,omitempty"`
		Text  string          `json:"-"`
		Error string          `json:"error,omitempty"`
	}
	answers := make([]answer, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() {
			a := answer{Host: h.Name}
			var out bytes.Buffer
			err := client.LocalStatus(ctx, h.Name, &out, o.Output == "json")
			if o.Output == "json" {
				a.State = bytes.TrimSpace(out.Bytes())
			} else {
				a.Text = out.String()
			}
			if err != nil {
				a.Error, a.State = err.Error(), nil
			}
			answers[i] = a
		})
	}
	wg.Wait()
	if o.Output == "json" {
		return printObject(o.Out, answers, "json")
	}
	failed := 0
	for _, a := range answers {
		fmt.Fprintf(o.Out, "== %s ==\n", a.Host)
		if a.Error != "" {
			failed++
			fmt.Fprintf(o.Out, "not answered: %s\n\n", a.Error)
			continue
		}
		fmt.Fprintln(o.Out, strings.TrimRight(a.Text, "\n"))
		fmt.Fprintln(o.Out)
	}
	if failed == len(answers) {
		return fmt.Errorf("no host answered over SSH")
	}
	return nil
}
