package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostpod"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/workstation"
)

// WorkstationOptions are what every plugin verb (run from an admin's
// workstation, through the apiserver only) shares.
type WorkstationOptions struct {
	ConfigFlags *genericclioptions.ConfigFlags
	Image       string
	// SSH, when enabled, replaces host pods as the host transport.
	SSH SSHOptions
	// cmd is the verb's command: whether --image was given, and its
	// stderr for the warning about a tag-only one.
	cmd *cobra.Command
}

// AddFlags registers the shared flags.
func (o *WorkstationOptions) AddFlags(cmd *cobra.Command) {
	o.cmd = cmd
	cmd.Flags().StringVar(&o.Image, "image", hostpod.DefaultImage(), "kubectl-etcd image the host pods run (must be this version; name it by digest, @sha256:...)")
	o.SSH.AddFlags(cmd)
}

// warnImage warns, on stderr, of an --image given by tag only (see
// hostpod.TagOnly). The default names the released image's digest in a
// release build; a development build has none to name, and is not warned
// about.
func (o *WorkstationOptions) warnImage() {
	if o.cmd == nil {
		return
	}
	if f := o.cmd.Flags().Lookup("image"); f == nil || !f.Changed {
		return
	}
	if w := hostpod.TagOnly(o.Image); w != "" {
		fmt.Fprintf(o.cmd.ErrOrStderr(), "Warning: %s\n", w)
	}
}

// session connects to the cluster of the kubeconfig.
func (o *WorkstationOptions) session(out io.Writer) (*workstation.Session, error) {
	if err := o.SSH.Validate(); err != nil {
		return nil, err
	}
	rc, err := o.ConfigFlags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	if rc.Timeout == 0 {
		rc.Timeout = 30 * time.Second
	}
	// Each etcd dial lists the etcd pods: client-go's default 5 QPS would
	// throttle a status of a few members into seconds.
	rc.QPS, rc.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		return nil, fmt.Errorf("the apiserver at %s does not answer (%v): if etcd lost quorum, run `kubectl-etcd status --local` as root on a control-plane host, or from here over SSH: `kubectl etcd status --ssh --hosts NAME=ADDRESS,...` and `kubectl etcd recover --ssh --hosts ...`", rc.Host, err)
	}
	// The host API's transport is chosen here, once: SSH when asked for,
	// else host pods.
	if o.SSH.Enabled {
		hosts, err := o.SSH.sshHosts(context.Background(), cs, nil)
		if err != nil {
			return nil, err
		}
		t, err := o.SSH.transport(hosts, out)
		if err != nil {
			return nil, err
		}
		return workstation.NewSession(cs, rc, t, out)
	}
	o.warnImage()
	pods := &hostpod.Runner{Client: cs, Config: rc, Image: o.Image, Log: out}
	return workstation.NewSession(cs, rc, pods, out)
}

// progressWriter is where a verb's progress goes: stderr when stdout
// carries a document for scripts (json, yaml), stdout otherwise.
func progressWriter(streams genericiooptions.IOStreams, output string) io.Writer {
	if output == "json" || output == "yaml" {
		return streams.ErrOut
	}
	return streams.Out
}

// printResult ends a mutating verb: for scripts (json, yaml) the whole
// result, its steps included, also when the verb failed part-way; for
// people, the state it left. runErr is returned.
func printResult(w, progress io.Writer, res *workstation.Result, output string, runErr error) error {
	switch {
	case res == nil:
		return runErr
	case output == "json" || output == "yaml":
		if err := printObject(w, res, output); err != nil {
			return err
		}
		return runErr
	case runErr != nil || res.State == nil || (res.DryRun && output == ""):
		return runErr
	}
	fmt.Fprintln(progress)
	return printClusterStatus(w, res.State, output)
}

func printObject(w io.Writer, v any, output string) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// printClusterStatus writes the status for people or scripts.
func printClusterStatus(w io.Writer, st *workstation.ClusterStatus, output string) error {
	if output == "json" || output == "yaml" {
		return printObject(w, st, output)
	}
	wide := output == "wide"
	now := time.Now()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "HOST\tMEMBER\tID\tROLE\tLEADER\tHEALTH\tDB SIZE\tRAFT INDEX\tREVISION\tVERSION"
	if wide {
		// The expiry costs status a TLS handshake per member through the
		// apiserver (see Session.SkipCertExpiry): only the wide view has it.
		head += "\tCERT EXPIRES\tPEER URL\tRAFT TERM\tDB IN USE\tALARMS"
	}
	fmt.Fprintln(tw, head)
	// A cell says what, in a word; why goes under the table, one line per
	// member, so a long error does not stretch every row.
	var reasons []string
	for _, m := range st.Members {
		role := "voter"
		if m.Learner {
			role = "learner"
		}
		health := "healthy"
		switch {
		case m.Healthy:
		case m.ClientURL == "":
			health = "unstarted" // added, never ran: it has published no client URL
		default:
			health = "DOWN"
		}
		if len(m.Alarms) > 0 {
			health = "ALARM " + strings.Join(m.Alarms, ",") + " (" + health + ")"
		}
		if !m.Healthy && m.Error != "" {
			reasons = append(reasons, fmt.Sprintf("%s %s: %s", health, m.Name, m.Error))
		}
		host := m.Host
		if host == "" {
			host = "(none)"
		}
		leader := ""
		if m.Leader {
			leader = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s", host, m.Name, m.ID, role, leader, health, mib(m.DBSize), m.RaftIndex, m.Revision, m.Version)
		if wide {
			fmt.Fprintf(tw, "\t%s\t%s\t%d\t%s\t%s", expiresIn(m.ServerCertNotAfter, now), m.PeerURL, m.RaftTerm, mib(m.DBSizeInUse), strings.Join(m.Alarms, ","))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	for _, r := range reasons {
		fmt.Fprintln(w, r)
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTROL-PLANE NODE\tREADY\tETCD MEMBER\tAPISERVER READS ETCD AT")
	for _, h := range st.Hosts {
		member := h.Member
		if member == "" {
			member = "-"
		}
		if h.CutOffBy != "" {
			member = "- (cut off by the " + h.CutOffBy + ")"
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\n", h.Node, h.Ready, member, h.APIServerEtcd)
	}
	tw.Flush()
	for _, d := range st.Drift {
		fmt.Fprintf(w, "Drift: %s\n", d.Detail)
	}
	fmt.Fprintf(w, "\n%s\n", st.Summary)
	return nil
}

// expiresIn says how long a certificate has left, loudly when under kubeadm's
// renewal margin of 30 days.
func expiresIn(notAfter *time.Time, now time.Time) string {
	if notAfter == nil {
		return "-"
	}
	left := notAfter.Sub(now)
	switch {
	case left <= 0:
		return "EXPIRED"
	case left < 30*24*time.Hour:
		return fmt.Sprintf("%dd (RENEW)", int(left.Hours()/24))
	}
	return fmt.Sprintf("%dd", int(left.Hours()/24))
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
