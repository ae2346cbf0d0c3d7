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
	"github.com/kubectl-etcd/kubectl-etcd/pkg/workstation"
)

// NewCmdCerts returns `kubectl etcd certs`.
func NewCmdCerts(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Check the etcd certificates of every control-plane host",
		Long: `kubeadm issues etcd's server, peer and healthcheck-client certificates and
the kube-apiserver's etcd client certificate for one year; when they lapse,
etcd and the apiserver stop talking. The etcd CA (ten years) is not renewed
by kubectl-etcd.`,
	}
	cmd.AddCommand(newCmdCertsCheck(configFlags, streams))
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
