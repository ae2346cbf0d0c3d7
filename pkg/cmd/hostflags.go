package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// HostOptions are the flags every host-local verb shares. These verbs run as
// root on a control-plane host and work on its files directly, so they keep
// working when the apiserver is down.
type HostOptions struct {
	genericiooptions.IOStreams

	Root             string
	ConfigFile       string
	NodeName         string
	AdvertiseAddress string
	DryRun           bool
	Output           string
	RestartKubelet   bool

	host   *staticpod.Host
	config *staticpod.Config
}

// AddFlags registers the shared flags.
func (o *HostOptions) AddFlags(fs *pflag.FlagSet, mutating bool) {
	fs.StringVar(&o.Root, "host-root", "/", "where this host's / is mounted (\"/host\" inside a privileged pod)")
	fs.StringVar(&o.ConfigFile, "config", "", "kubeadm config file with the ClusterConfiguration (default: the kubeadm-config ConfigMap if the apiserver answers, else this host's manifests)")
	fs.StringVar(&o.NodeName, "node-name", "", "this host's node name (default: the kubelet's node identity)")
	fs.StringVar(&o.AdvertiseAddress, "advertise-address", "", "this host's etcd advertise address (default: the address kubeadm recorded for its apiserver)")
	fs.StringVarP(&o.Output, "output", "o", "", "output format: json (progress then goes to stderr)")
	if mutating {
		fs.BoolVar(&o.DryRun, "dry-run", false, "print the plan (every step, file and member change) and change nothing")
		fs.BoolVar(&o.RestartKubelet, "restart-kubelet", true, "when this host's kubelet holds etcd or the apiserver in crash-loop back-off (apiserver down), restart it with systemctl (running containers keep running); false: wait for the back-off instead")
	}
}

// Complete loads the host and its configuration.
func (o *HostOptions) Complete(cmd *cobra.Command) error {
	o.host = staticpod.NewHost(o.Root)
	cfg, err := o.host.LoadConfig(cmd.Context(), staticpod.ConfigOptions{
		ConfigFile: o.ConfigFile, NodeName: o.NodeName, AdvertiseAddress: o.AdvertiseAddress,
	})
	if err != nil {
		return err
	}
	o.config = cfg
	return nil
}

// Validate rejects what cannot work before anything is touched.
func (o *HostOptions) Validate() error {
	if os.Geteuid() != 0 {
		return errors.New("this command runs as root on a control-plane host: it reads the etcd CA and writes static-pod manifests under /etc/kubernetes")
	}
	if fi, err := os.Stat(o.Root); err != nil || !fi.IsDir() {
		return fmt.Errorf("--host-root %s is not a directory", o.Root)
	}
	return nil
}

// prepare runs the checks and loads the host, in the order that touches
// nothing until the input is known good: flags, then root and host root,
// then the configuration.
func (o *HostOptions) prepare(cmd *cobra.Command, extra func() error) error {
	if err := o.ValidateBasic(); err != nil {
		return err
	}
	if extra != nil {
		if err := extra(); err != nil {
			return err
		}
	}
	if err := o.Validate(); err != nil {
		return err
	}
	return o.Complete(cmd)
}

// ValidateBasic runs the checks that need no host (flag values).
func (o *HostOptions) ValidateBasic() error {
	if o.Output != "" && o.Output != "json" {
		return fmt.Errorf("unknown output format %q: only json is supported", o.Output)
	}
	return nil
}

// env is the hostlocal environment; progress goes to stderr under -o json so
// stdout stays one JSON document.
func (o *HostOptions) env() *hostlocal.Env {
	out := o.Out
	if o.Output == "json" {
		out = o.ErrOut
	}
	return &hostlocal.Env{Host: o.host, Config: o.config, Out: out, DryRun: o.DryRun, Timeouts: hostlocal.DefaultTimeouts(), NoKubeletRestart: !o.RestartKubelet}
}

// report prints a verb's result: the final state for people, or JSON.
func (o *HostOptions) report(res *hostlocal.Result, runErr error) error {
	if o.Output == "json" {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
		return runErr
	}
	for _, n := range res.Notes {
		fmt.Fprintln(o.Out, n)
	}
	if res.State != nil && !res.DryRun {
		fmt.Fprintln(o.Out)
		hostlocal.PrintState(o.Out, res.State)
	}
	return runErr
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
