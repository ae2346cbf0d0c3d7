package cmd

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/workstation"
)

// NewCmdCerts returns `kubectl etcd certs`.
func NewCmdCerts(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Check and renew the etcd certificates of every control-plane host",
		Long: `kubeadm issues etcd's server, peer and healthcheck-client certificates and
the kube-apiserver's etcd client certificate for one year; when they lapse,
etcd and the apiserver stop talking. The etcd CA (ten years) is not renewed
by kubectl-etcd.`,
	}
	cmd.AddCommand(newCmdCertsCheck(configFlags, streams), newCmdCertsRenew(configFlags, streams))
	return cmd
}

// CertsCheckOptions: report each host's etcd certificates.
type CertsCheckOptions struct {
	HostOptions
	WorkstationOptions
	Local bool

	face face
}

func newCmdCertsCheck(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &CertsCheckOptions{HostOptions: HostOptions{IOStreams: streams}, WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Show each control-plane host's etcd certificates: names, issuer, expiry, and whether kubeadm would issue them so",
		Long: `For every control-plane host: the etcd CA, etcd's server, peer and
healthcheck-client certificates and the kube-apiserver's etcd client
certificate, with subject, names (SANs), issuer and expiry, and whether each
is what kubeadm would issue for that host now (signed by the host's etcd CA,
its key matching, every name present). STATUS is ok, renew (under 30 days
left: a warning), mismatch (a warning, with the reason), expired or missing
(errors: the command then exits non-zero). Reads the hosts through short-lived
host pods (no key leaves a host); with --local, as root on a control-plane
host, this host only.`,
		Example: `  kubectl etcd certs check
  kubectl etcd certs check -o json
  kubectl-etcd certs check --local      # as root on a control-plane host`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.HostOptions.AddFlags(cmd.Flags(), false)
	o.WorkstationOptions.AddFlags(cmd)
	cmd.Flags().Lookup("output").Usage = "output format: json|yaml (json only with --local)"
	cmd.Flags().BoolVar(&o.Local, "local", false, "check this host (as root), without the apiserver")
	return cmd
}

// Complete picks the face.
func (o *CertsCheckOptions) Complete(*cobra.Command, []string) error {
	f, err := chooseFace(verbCerts, o.Local, "", nil)
	o.face = f
	return err
}

// Validate checks -o.
func (o *CertsCheckOptions) Validate() error {
	if o.face == hostLocalFace {
		return o.validate(nil)
	}
	if o.Output != "" && o.Output != "json" && o.Output != "yaml" {
		return fmt.Errorf("unknown output format %q (json, yaml)", o.Output)
	}
	return nil
}

// Run reads and prints the certificates; expired or missing ones are an error.
func (o *CertsCheckOptions) Run(ctx context.Context) error {
	var res *workstation.CertsCheck
	if o.face == hostLocalFace {
		if err := o.load(ctx); err != nil {
			return err
		}
		certs, err := o.host.CheckCerts(o.config, time.Now())
		if err != nil {
			return err
		}
		if o.Output == "json" {
			if err := printObject(o.Out, hostapi.CertsReport{Node: o.config.NodeName(), Certs: certs}, "json"); err != nil {
				return err
			}
			return nil // the caller (a workstation, or a script) judges
		}
		res = &workstation.CertsCheck{Hosts: []workstation.HostCerts{{Node: o.config.NodeName(), Certs: certs}}}
	} else {
		s, err := o.session(o.ErrOut)
		if err != nil {
			return err
		}
		if res, err = s.CheckCerts(ctx); err != nil {
			return err
		}
		if o.Output != "" {
			if err := printObject(o.Out, res, o.Output); err != nil {
				return err
			}
			return certsVerdict(res)
		}
	}
	printCerts(o.Out, res)
	return certsVerdict(res)
}

// certsVerdict is an error naming every expired or missing certificate and
// every host that could not be read.
func certsVerdict(res *workstation.CertsCheck) error {
	var bad []string
	for _, h := range res.Hosts {
		if h.Error != "" {
			bad = append(bad, h.Node+": not read")
		}
		for _, c := range h.Certs {
			if c.Status == hostapi.CertExpired || c.Status == hostapi.CertMissing {
				bad = append(bad, fmt.Sprintf("%s: %s %s", h.Node, c.Name, c.Status))
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("etcd certificates need attention: %s", strings.Join(bad, "; "))
	}
	return nil
}

func printCerts(w io.Writer, res *workstation.CertsCheck) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tCERTIFICATE\tSTATUS\tEXPIRES\tDAYS LEFT\tNAMES\tREASON")
	for _, h := range res.Hosts {
		if h.Error != "" {
			fmt.Fprintf(tw, "%s\t-\tUNREAD\t-\t-\t-\t%s\n", h.Node, h.Error)
			continue
		}
		for _, c := range h.Certs {
			expires, days := "-", "-"
			if !c.NotAfter.IsZero() {
				expires, days = c.NotAfter.Format("2006-01-02"), fmt.Sprint(c.DaysLeft)
			}
			names := strings.Join(append(append([]string{}, c.DNSNames...), c.IPs...), ",")
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Node, c.Name, strings.ToUpper(c.Status), expires, days, orDash(names), c.Reason)
		}
	}
	tw.Flush()
}

// CertsRenewOptions: renew etcd certificates, one host at a time.
type CertsRenewOptions struct {
	HostOptions
	WorkstationOptions
	All       bool
	Before    string
	Local     bool
	Endpoints string

	face   face
	nodes  []string
	before time.Duration
}

func newCmdCertsRenew(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &CertsRenewOptions{HostOptions: HostOptions{IOStreams: streams}, WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}}
	cmd := &cobra.Command{
		Use:   "renew (--all | NODE...) [--before 30d]",
		Short: "Renew etcd certificates that expire soon, one host at a time, restarting etcd and kube-apiserver",
		Long: `Reissue, on each control-plane host in turn, the etcd certificates (server,
peer, healthcheck-client) and kube-apiserver's etcd client certificate that
have less than --before left (or are missing, or not what kubeadm would issue
for the host now), with kubeadm's own certificate specs (one year) and the
host's etcd CA: no key leaves its host, new keys are 0600, old files are
moved aside under /var/lib/kubectl-etcd/replaced-certs. Then restart what
still holds old certificates: etcd when its server or peer certificate is
newer than the process, kube-apiserver when its etcd client certificate is
(kubelet starts each again in the same pod). This also finishes what
"kubeadm certs renew" leaves to the operator.

One host at a time, the leader's host last. Before each host, the other
members must hold the quorum without its member; after each, every member
must be healthy again before the next. A host that cannot run a pod (its
apiserver down, e.g. because its certificates already expired) is named with
the host-local command: run "kubectl-etcd certs renew --local" on it as root
first. Safe to run again: a rerun renews nothing twice and restarts only
what still runs with old certificates.

The etcd CA itself is not renewed (out of scope: every member's certificates
and every client's trust change with it).`,
		Example: `  kubectl etcd certs renew --all --dry-run
  kubectl etcd certs renew --all                 # what has less than 30 days left
  kubectl etcd certs renew cp-2 --before 90d
  kubectl-etcd certs renew --local               # as root on a host whose certificates expired`,
		RunE: runE(o),
	}
	o.HostOptions.AddFlags(cmd.Flags(), true)
	o.WorkstationOptions.AddFlags(cmd)
	cmd.Flags().Lookup("output").Usage = "output format: json|yaml (the steps and the final state), wide (the final state); json only with --local"
	cmd.Flags().BoolVar(&o.All, "all", false, "every control-plane host")
	cmd.Flags().StringVar(&o.Before, "before", "30d", "renew certificates with less than this left: days (30d) or a duration (720h); 0 renews only expired, missing or mismatched ones")
	cmd.Flags().BoolVar(&o.Local, "local", false, "renew on this host (as root), without the apiserver")
	cmd.Flags().StringVar(&o.Endpoints, "endpoints", "", "with --local: extra client URLs to reach the cluster by (for the quorum check)")
	return cmd
}

// Complete picks the face and takes the nodes.
func (o *CertsRenewOptions) Complete(_ *cobra.Command, args []string) error {
	f, err := chooseFace(verbCerts, o.Local, "", nil)
	if err != nil {
		return err
	}
	o.face, o.nodes = f, args
	return nil
}

// Validate rejects bad flags before anything is contacted.
func (o *CertsRenewOptions) Validate() error {
	d, err := staticpod.ParseBefore(o.Before)
	if err != nil {
		return err
	}
	o.before = d
	if o.face == hostLocalFace {
		if o.All || len(o.nodes) > 0 {
			return fmt.Errorf("--local renews this host only: give no --all and no node names")
		}
		return o.validate(nil)
	}
	switch {
	case o.All && len(o.nodes) > 0:
		return fmt.Errorf("give --all or the nodes whose certificates to renew, not both")
	case !o.All && len(o.nodes) == 0:
		return fmt.Errorf("give --all or the nodes whose certificates to renew")
	}
	return validateWorkstationOutput(o.Output)
}

// Run renews, printing progress and then the state left.
func (o *CertsRenewOptions) Run(ctx context.Context) error {
	if o.face == hostLocalFace {
		if err := o.load(ctx); err != nil {
			return err
		}
		res, err := o.env().RenewCerts(ctx, hostlocal.RenewCertsOptions{Before: o.before, Endpoints: splitList(o.Endpoints)})
		return o.report(res, err)
	}
	progress := progressWriter(o.HostOptions.IOStreams, o.Output)
	s, err := o.session(progress)
	if err != nil {
		return err
	}
	res, err := s.RenewCerts(ctx, workstation.RenewCertsOptions{Nodes: o.nodes, All: o.All, Before: staticpod.FormatDays(o.before), DryRun: o.DryRun})
	return printResult(o.Out, progress, res, o.Output, err)
}
