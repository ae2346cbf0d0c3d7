package cmd

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
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
	// ClusterConfigB64 is the ClusterConfiguration the plugin read,
	// handed to its host pods (hostapi.Call.ClusterConfig).
	ClusterConfigB64 string
	// SkipKubeadmConfig: kubeadm-config is not read through admin.conf
	// (hostapi.SkipKubeadmConfigFlag; recover only).
	SkipKubeadmConfig bool
	PatchesDir        string

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
	fs.StringVar(&o.PatchesDir, "patches", "", "kubeadm patches directory (as given to kubeadm's --patches) whose etcd patches the etcd manifest gets (default: "+staticpod.DefaultPatchesDir+" when it holds one)")
	fs.StringVar(&o.ClusterConfigB64, hostapi.ClusterConfigFlag, "", "the cluster's ClusterConfiguration, base64 (the plugin hands its own read to its host pods)")
	_ = fs.MarkHidden(hostapi.ClusterConfigFlag)
	if mutating {
		fs.BoolVar(&o.DryRun, "dry-run", false, "print the plan (every step, file and member change) and change nothing")
		fs.BoolVar(&o.RestartKubelet, "restart-kubelet", true, "when this host's kubelet holds etcd or the apiserver in crash-loop back-off (apiserver down), restart it with systemctl (running containers keep running); false: wait for the back-off instead")
	}
}

// validate runs the checks of a host verb's Validate, in the order that
// reports a mistake in how the command was typed as such even when not run
// as root: the shared flags, then the verb's own (extra, may be nil), then
// root and --host-root. It reads and changes nothing on the host.
func (o *HostOptions) validate(extra func() error) error {
	if err := o.validateFlags(); err != nil {
		return err
	}
	if extra != nil {
		if err := extra(); err != nil {
			return err
		}
	}
	return o.validateHost()
}

// validateFlags checks the shared flag values; it needs no host.
func (o *HostOptions) validateFlags() error {
	if o.Output != "" && o.Output != "json" {
		return fmt.Errorf("unknown output format %q: only json is supported", o.Output)
	}
	if _, err := base64.StdEncoding.DecodeString(o.ClusterConfigB64); err != nil {
		return fmt.Errorf("--%s: %w", hostapi.ClusterConfigFlag, err)
	}
	return nil
}

// validateHost rejects what cannot work here before anything is touched.
func (o *HostOptions) validateHost() error {
	if os.Geteuid() != 0 {
		return errors.New("this command runs as root on a control-plane host: it reads the etcd CA and writes static-pod manifests under /etc/kubernetes")
	}
	if fi, err := os.Stat(o.Root); err != nil || !fi.IsDir() {
		return fmt.Errorf("--host-root %s is not a directory", o.Root)
	}
	return nil
}

// load reads the host and its kubeadm configuration. Host verbs call it
// first thing in Run, not in Complete: the files are root's and the
// configuration may be asked of the apiserver, so Validate comes first.
func (o *HostOptions) load(ctx context.Context) error {
	return o.loadConfig(ctx, false, false)
}

// loadWithoutQuorum is load for recover, which only goes ahead when etcd
// has no quorum, and then no apiserver can read kubeadm-config: the read
// gives up as soon as the apiserver says its etcd is down, rather than
// after its timeout (see staticpod.ConfigOptions.GiveUpWhenEtcdDown).
func (o *HostOptions) loadWithoutQuorum(ctx context.Context) error {
	return o.loadConfig(ctx, false, true)
}

// loadReadOnly is load for verbs that only read (status, snapshot save,
// backup run, alarm list): a cluster ClusterConfiguration that cannot be
// parsed does not stop them; they say so once on stderr and go on with the
// host's own files (see staticpod.ConfigOptions.ReadOnly).
func (o *HostOptions) loadReadOnly(ctx context.Context) error {
	return o.loadConfig(ctx, true, true)
}

func (o *HostOptions) loadConfig(ctx context.Context, readOnly, giveUpWhenEtcdDown bool) error {
	o.host = staticpod.NewHost(o.Root)
	handed, _ := base64.StdEncoding.DecodeString(o.ClusterConfigB64) // checked by Validate
	cfg, err := o.host.LoadConfig(ctx, staticpod.ConfigOptions{
		ConfigFile: o.ConfigFile, ClusterConfigYAML: handed, PatchesDir: o.PatchesDir, NodeName: o.NodeName, AdvertiseAddress: o.AdvertiseAddress, ReadOnly: readOnly,
		GiveUpWhenEtcdDown: giveUpWhenEtcdDown, SkipLookup: o.SkipKubeadmConfig,
	})
	if err != nil {
		return err
	}
	if cfg.Warning != "" {
		fmt.Fprintf(o.ErrOut, "warning: %s\n", cfg.Warning)
	}
	o.config = cfg
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
