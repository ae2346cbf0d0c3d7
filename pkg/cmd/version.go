package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiversion "k8s.io/apimachinery/pkg/version"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/version"
)

const (
	// etcdNamespace and etcdPodSelector find the etcd static pods that
	// kubeadm writes to /etc/kubernetes/manifests/etcd.yaml; the kubelet
	// mirrors them into the API with exactly these labels.
	etcdNamespace   = "kube-system"
	etcdPodSelector = "component=etcd,tier=control-plane"
	// etcdContainer is the container name in kubeadm's etcd manifest.
	etcdContainer = "etcd"

	// defaultServerTimeout bounds each request to the apiserver. version is
	// often the first thing run against a sick cluster; it should say that
	// the apiserver is unreachable quickly instead of hanging. An explicit
	// --request-timeout still wins.
	defaultServerTimeout = 10 * time.Second

	// serverHint tells the user what still works when the cluster side of
	// version cannot be read.
	serverHint = `use --client for the client version only, or run "kubectl-etcd status --local" as root on a control-plane host`
)

// Versions is what version prints; with -o json|yaml its field names are an
// interface that scripts may rely on.
type Versions struct {
	ClientVersion version.Info     `json:"clientVersion"`
	ServerVersion *apiversion.Info `json:"serverVersion,omitempty"`
	Etcd          []EtcdPodVersion `json:"etcd,omitempty"`
}

// EtcdPodVersion is the etcd version of one member as the cluster sees it:
// the tag of the image its static pod runs, not a version reported by the
// etcd process itself.
type EtcdPodVersion struct {
	Node    string `json:"node"`
	Pod     string `json:"pod"`
	Image   string `json:"image"`
	Version string `json:"version"`
	Ready   bool   `json:"ready"`
}

// VersionOptions holds everything the version command needs, following the
// kubectl Complete/Validate/Run pattern so each step can be tested alone.
type VersionOptions struct {
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams

	ClientOnly bool
	Output     string

	args []string
	// server is the apiserver URL from the kubeconfig, kept so errors can
	// say which server could not be reached.
	server       string
	noKubeconfig bool
	clientset    kubernetes.Interface
}

// NewVersionOptions returns options that read the cluster through
// configFlags and write to streams.
func NewVersionOptions(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *VersionOptions {
	return &VersionOptions{ConfigFlags: configFlags, IOStreams: streams}
}

// NewCmdVersion returns the version command.
func NewCmdVersion(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewVersionOptions(configFlags, streams)
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client, apiserver and etcd versions",
		Long: `Print the version of kubectl-etcd and, unless --client is given, of the
cluster in the current kubeconfig context: the apiserver version and, for
each etcd member, the version as seen from the cluster.

The etcd version shown is the tag of the image the member's static pod
(kube-system, labels ` + etcdPodSelector + `) runs, e.g.
registry.k8s.io/etcd:3.7.0-0 is shown as 3.7.0-0. It is not read from the
etcd process itself.`,
		Example: `  # Client, apiserver and etcd versions for the current context
  kubectl etcd version

  # Only the version of this binary; needs no cluster
  kubectl etcd version --client

  # Machine-readable
  kubectl etcd version -o json`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	cmd.Flags().BoolVar(&o.ClientOnly, "client", o.ClientOnly, "If true, shows client version only (no server required).")
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, "Output format. One of: (json, yaml).")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// Complete builds the client for the cluster unless only the client
// version is wanted.
func (o *VersionOptions) Complete(_ *cobra.Command, args []string) error {
	o.args = args
	if o.ClientOnly {
		return nil
	}
	restConfig, err := o.ConfigFlags.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	// Without any kubeconfig client-go quietly falls back to
	// http://localhost:8080, and "connection refused" from there hides the
	// real problem. That is the usual state for root on a control-plane
	// host, so remember it to say so if the server cannot be read.
	if raw, err := o.ConfigFlags.ToRawKubeConfigLoader().RawConfig(); err == nil && len(raw.Clusters) == 0 {
		o.noKubeconfig = true
	}
	if restConfig.Timeout == 0 {
		restConfig.Timeout = defaultServerTimeout
	}
	o.server = restConfig.Host
	o.clientset, err = kubernetes.NewForConfig(restConfig)
	if err != nil {
		return fmt.Errorf("creating client for %s: %w", o.server, err)
	}
	return nil
}

// Validate rejects options that Run cannot honour.
func (o *VersionOptions) Validate() error {
	if len(o.args) != 0 {
		return fmt.Errorf("version takes no arguments, got %q", o.args)
	}
	switch o.Output {
	case "", "json", "yaml":
		return nil
	default:
		return fmt.Errorf("--output must be 'json' or 'yaml', got %q", o.Output)
	}
}

// Run prints the versions. Like kubectl version, the client version is
// printed even when the cluster cannot be read, and the error explaining
// why is returned afterwards.
func (o *VersionOptions) Run(ctx context.Context) error {
	v := Versions{ClientVersion: version.Get()}
	var serverErr error
	if !o.ClientOnly {
		serverErr = o.readServer(ctx, &v)
	}

	switch o.Output {
	case "":
		if err := o.printText(v, serverErr == nil); err != nil {
			return err
		}
	case "json":
		out, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding versions as json: %w", err)
		}
		if _, err := fmt.Fprintln(o.Out, string(out)); err != nil {
			return fmt.Errorf("writing versions: %w", err)
		}
	case "yaml":
		out, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("encoding versions as yaml: %w", err)
		}
		if _, err := o.Out.Write(out); err != nil {
			return fmt.Errorf("writing versions: %w", err)
		}
	default:
		// Validate should have rejected this; fail rather than print
		// nothing and exit 0.
		return fmt.Errorf("unsupported --output %q", o.Output)
	}
	return serverErr
}

// readServer fills in what the cluster reports. It stops at the first
// failure so a partial result is never presented as complete.
func (o *VersionOptions) readServer(ctx context.Context, v *Versions) error {
	if o.clientset == nil {
		// Only reachable if Run is called without Complete.
		return errors.New("no client for the cluster: Complete was not called")
	}
	hint := serverHint
	if o.noKubeconfig {
		hint = "no kubeconfig found (on a control-plane host the admin kubeconfig is /etc/kubernetes/admin.conf); " + serverHint
	}
	serverVersion, err := o.clientset.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("reading server version from %s: %w; %s", o.server, err, hint)
	}
	v.ServerVersion = serverVersion

	pods, err := o.clientset.CoreV1().Pods(etcdNamespace).List(ctx, metav1.ListOptions{LabelSelector: etcdPodSelector})
	if err != nil {
		return fmt.Errorf("reading etcd pods from %s: %w; %s", o.server, err, hint)
	}
	v.Etcd = etcdVersions(pods.Items)
	return nil
}

// etcdVersions turns etcd static pods into one entry per pod, sorted by
// node so the output is stable between runs.
func etcdVersions(pods []corev1.Pod) []EtcdPodVersion {
	out := make([]EtcdPodVersion, 0, len(pods))
	for i := range pods {
		p := &pods[i]
		image := etcdImage(p)
		out = append(out, EtcdPodVersion{
			Node:    p.Spec.NodeName,
			Pod:     p.Name,
			Image:   image,
			Version: imageTag(image),
			Ready:   podReady(p),
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].Pod < out[j].Pod
	})
	return out
}

// etcdImage returns the image of the etcd container, falling back to the
// first container for manifests that renamed it.
func etcdImage(p *corev1.Pod) string {
	for _, c := range p.Spec.Containers {
		if c.Name == etcdContainer {
			return c.Image
		}
	}
	if len(p.Spec.Containers) > 0 {
		return p.Spec.Containers[0].Image
	}
	return ""
}

// imageTag returns the tag of an image reference, or "" when it has none
// (e.g. pinned by digest only). A ':' before the last '/' belongs to a
// registry port, not a tag.
func imageTag(image string) string {
	ref, _, _ := strings.Cut(image, "@")
	i := strings.LastIndexByte(ref, ':')
	if i < 0 || i < strings.LastIndexByte(ref, '/') {
		return ""
	}
	return ref[i+1:]
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// printText writes the human-readable form. serverOK says whether the
// cluster part was read; if not, only what was read is printed and the
// caller returns the error.
func (o *VersionOptions) printText(v Versions, serverOK bool) error {
	c := v.ClientVersion
	if _, err := fmt.Fprintf(o.Out, "Client Version: %s (commit %s, %s %s)\n", c.Version, c.GitCommit, c.GoVersion, c.Platform); err != nil {
		return fmt.Errorf("writing versions: %w", err)
	}
	if v.ServerVersion != nil {
		if _, err := fmt.Fprintf(o.Out, "Server Version: %s\n", v.ServerVersion.GitVersion); err != nil {
			return fmt.Errorf("writing versions: %w", err)
		}
	}
	if o.ClientOnly || !serverOK {
		return nil
	}
	if len(v.Etcd) == 0 {
		// Not an error: the cluster may use external etcd or not be built
		// by kubeadm. Saying so beats printing an empty table.
		_, err := fmt.Fprintf(o.Out, "etcd (static pods): none found in %s with labels %s\n", etcdNamespace, etcdPodSelector)
		if err != nil {
			return fmt.Errorf("writing versions: %w", err)
		}
		return nil
	}
	if _, err := fmt.Fprintln(o.Out, "etcd (static pods):"); err != nil {
		return fmt.Errorf("writing versions: %w", err)
	}
	tw := tabwriter.NewWriter(o.Out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tVERSION\tREADY")
	for _, e := range v.Etcd {
		ver := e.Version
		if ver == "" {
			ver = "<untagged>"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%t\n", e.Node, ver, e.Ready)
	}
	// tabwriter buffers; errors writing rows surface here.
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing versions: %w", err)
	}
	return nil
}
