package staticpod

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	kubeadmscheme "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme"
	kubeadmv1beta4 "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/v1beta4"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	etcdphase "k8s.io/kubernetes/cmd/kubeadm/app/phases/etcd"
	kubeadmutil "k8s.io/kubernetes/cmd/kubeadm/app/util"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// Config is everything needed to write this host's etcd certificates and
// manifest: the cluster's kubeadm ClusterConfiguration (so a user's image,
// data dir, extra args, SANs and resources are kept) and this host's identity.
type Config struct {
	// Init carries the ClusterConfiguration plus NodeRegistration.Name and
	// LocalAPIEndpoint, the shape kubeadm's cert and manifest functions take.
	Init *kubeadmapi.InitConfiguration
	// Source says where the ClusterConfiguration came from, for the plan.
	Source string
	// Warning says why the cluster's own ClusterConfiguration was not used,
	// when a read-only load (ConfigOptions.ReadOnly) went on without it.
	Warning string
	// Patches is the host's kubeadm patches directory (host path) whose
	// etcd patches every manifest written gets, as kubeadm's own
	// (--patches); "" for none.
	Patches string
	// patchesPath is Patches in this process's filesystem (under the
	// host root).
	patchesPath string
}

// DefaultPatchesDir is where kubeadm's documentation keeps the patches
// given to kubeadm init, join and upgrade with --patches: used when it
// holds an etcd patch and no other directory is given.
const DefaultPatchesDir = "/etc/kubernetes/patches"

// NodeName is this host's node (and etcd member) name.
func (c *Config) NodeName() string { return c.Init.NodeRegistration.Name }

// AdvertiseAddress is the address the member advertises.
func (c *Config) AdvertiseAddress() string { return c.Init.LocalAPIEndpoint.AdvertiseAddress }

// PeerURL is the member's peer URL, its identity in etcd's member list (as for kubeadm).
func (c *Config) PeerURL() string {
	return "https://" + net.JoinHostPort(c.AdvertiseAddress(), fmt.Sprint(kubeadmconstants.EtcdListenPeerPort))
}

// ClientURL is the member's advertised client URL.
func (c *Config) ClientURL() string {
	return "https://" + net.JoinHostPort(c.AdvertiseAddress(), fmt.Sprint(kubeadmconstants.EtcdListenClientPort))
}

// DataDir is the member's data dir (host path).
func (c *Config) DataDir() string { return c.Init.Etcd.Local.DataDir }

// CertDir is kubeadm's certificates dir (host path).
func (c *Config) CertDir() string { return c.Init.CertificatesDir }

// ConfigOptions says where to look for the cluster's configuration and the
// host's identity. Empty fields are discovered.
type ConfigOptions struct {
	// ConfigFile is a kubeadm config file (any documents; the
	// ClusterConfiguration one is used), as on the workstation or host.
	ConfigFile string
	// ClusterConfigYAML is a ClusterConfiguration already fetched (e.g. from the
	// kubeadm-config ConfigMap by the plugin).
	ClusterConfigYAML []byte
	// NodeName and AdvertiseAddress override discovery; they are checked
	// against the host either way.
	NodeName         string
	AdvertiseAddress string
	// LookupTimeout bounds the attempt to read kubeadm-config through the
	// host's admin.conf (the apiserver may be down: that is when this runs).
	LookupTimeout time.Duration
	// SkipLookup does not read kubeadm-config through admin.conf at all:
	// the caller found it unreadable a moment ago (a cross-host recovery's
	// survey of this host), and it would only be waited for again.
	SkipLookup bool
	// GiveUpWhenEtcdDown ends the kubeadm-config read as soon as the
	// apiserver says its etcd is down (/livez/etcd fails, which it answers
	// from its own recent checks, at once) instead of waiting LookupTimeout
	// for a read that cannot succeed. For verbs that run because etcd lost
	// its quorum (recover), and those that only read: without a quorum no
	// apiserver can read kubeadm-config, and they go on from the host's own
	// manifests either way.
	GiveUpWhenEtcdDown bool
	// ReadOnly is for verbs that only read (status, snapshot save, alarm
	// list, certs check): they need the host's identity and paths, not the
	// cluster's settings, so a kubeadm-config that is there but cannot be
	// parsed (a hand-edited or emptied ClusterConfiguration) does not stop
	// them. They go on as without one, and Config.Warning says why. A
	// verb that writes manifests or certificates must not: it would write
	// kubeadm's defaults over the cluster's settings.
	ReadOnly bool
	// PatchesDir is the host's kubeadm patches directory (host path), as
	// given to kubeadm's --patches; "" looks for etcd patches in
	// DefaultPatchesDir.
	PatchesDir string
}

// LoadConfig builds the Config for this host. The ClusterConfiguration comes,
// in order, from: an explicit file; YAML handed in; the kubeadm-config
// ConfigMap through the host's admin.conf; the host's existing manifests
// (image repository, Kubernetes version, data dir); kubeadm's defaults.
func (h *Host) LoadConfig(ctx context.Context, o ConfigOptions) (*Config, error) {
	cc, source, warning, err := h.clusterConfiguration(ctx, o)
	if err != nil {
		return nil, err
	}
	if cc.Etcd.External != nil {
		return nil, errors.New("this cluster uses external etcd (ClusterConfiguration.etcd.external): kubectl-etcd manages kubeadm's stacked (local) etcd only")
	}
	init := &kubeadmapi.InitConfiguration{ClusterConfiguration: *cc}
	name, err := h.nodeName(o.NodeName)
	if err != nil {
		return nil, err
	}
	addr, err := h.advertiseAddress(o.AdvertiseAddress)
	if err != nil {
		return nil, err
	}
	init.NodeRegistration.Name = name
	init.LocalAPIEndpoint = kubeadmapi.APIEndpoint{AdvertiseAddress: addr, BindPort: kubeadmconstants.KubeAPIServerPort}
	cfg := &Config{Init: init, Source: source, Warning: warning}
	if err := h.findPatches(cfg, o.PatchesDir); err != nil {
		return nil, err
	}
	return cfg, nil
}

// findPatches sets cfg's patches directory: the one given (which must
// exist), else DefaultPatchesDir when it holds an etcd patch (kubeadm
// names a patch file after its target: etcd+strategic.yaml, etcd0+json.json).
func (h *Host) findPatches(cfg *Config, given string) error {
	dir := given
	if dir == "" {
		entries, err := os.ReadDir(h.Path(DefaultPatchesDir))
		if err != nil {
			return nil
		}
		if !slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), kubeadmconstants.Etcd) }) {
			return nil
		}
		dir = DefaultPatchesDir
	} else if fi, err := os.Stat(h.Path(dir)); err != nil || !fi.IsDir() {
		return fmt.Errorf("--patches %s: not a directory on this host", dir)
	}
	cfg.Patches, cfg.patchesPath = dir, h.Path(dir)
	cfg.Source += "; kubeadm patches from " + dir
	return nil
}

func (h *Host) clusterConfiguration(ctx context.Context, o ConfigOptions) (cc *kubeadmapi.ClusterConfiguration, source, warning string, err error) {
	if o.ConfigFile != "" {
		raw, err := os.ReadFile(o.ConfigFile)
		if err != nil {
			return nil, "", "", fmt.Errorf("reading kubeadm config %s: %w", o.ConfigFile, err)
		}
		cc, err := ParseClusterConfiguration(raw)
		if err != nil {
			return nil, "", "", fmt.Errorf("kubeadm config %s: %w", o.ConfigFile, err)
		}
		return cc, "file " + o.ConfigFile, "", nil
	}
	// The cluster's own, handed in or read through admin.conf: unparsable,
	// it stops a verb that writes, and is warned about by one that reads.
	const configMap = hostapi.KubeadmConfigSource
	raw, via, found := o.ClusterConfigYAML, " (as the plugin read it)", len(o.ClusterConfigYAML) > 0
	if !found && !o.SkipLookup {
		if fetched, err := h.fetchKubeadmConfig(ctx, o.LookupTimeout, o.GiveUpWhenEtcdDown); err == nil {
			raw, via, found = fetched, " (via "+h.KubernetesDir+"/admin.conf)", true
		}
	}
	if found {
		cc, err := ParseClusterConfiguration(raw)
		switch {
		case err == nil:
			return cc, configMap + via, "", nil
		case !o.ReadOnly:
			return nil, "", "", fmt.Errorf("%s: %w", configMap, err)
		}
		warning = fmt.Sprintf("%s: %v; this verb only reads, so it goes on with what the host's own files say (fix the ConfigMap before any verb that writes)", configMap, err)
	}
	cc, err = DefaultClusterConfiguration()
	if err != nil {
		return nil, "", "", err
	}
	source = "kubeadm defaults"
	if inferred, err := h.inferFromManifests(cc); err != nil {
		return nil, "", "", err
	} else if inferred {
		source = "the host's existing static-pod manifests and kubeadm defaults"
		if args := cc.Etcd.Local.ExtraArgs; len(args) > 0 {
			var kept []string
			for _, a := range args {
				kept = append(kept, "--"+a.Name+"="+a.Value)
			}
			source += "; etcd's own flags kept from its manifest: " + strings.Join(kept, " ")
		}
	}
	return cc, source, warning, nil
}

// ParseClusterConfiguration decodes a kubeadm ClusterConfiguration (v1beta4 or
// v1, alone or among other documents), applies kubeadm's defaults, and
// converts it to kubeadm's internal type, as kubeadm itself does.
func ParseClusterConfiguration(raw []byte) (*kubeadmapi.ClusterConfiguration, error) {
	for _, doc := range bytes.Split(raw, []byte("\n---")) {
		if !bytes.Contains(doc, []byte("ClusterConfiguration")) {
			continue
		}
		obj, gvk, err := kubeadmscheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("decoding ClusterConfiguration: %w", err)
		}
		if gvk.Kind != "ClusterConfiguration" {
			continue
		}
		return toInternal(obj)
	}
	return nil, errors.New("no ClusterConfiguration document found")
}

func toInternal(obj runtime.Object) (*kubeadmapi.ClusterConfiguration, error) {
	kubeadmscheme.Scheme.Default(obj)
	cc := &kubeadmapi.ClusterConfiguration{}
	if err := kubeadmscheme.Scheme.Convert(obj, cc, nil); err != nil {
		return nil, fmt.Errorf("converting ClusterConfiguration: %w", err)
	}
	return cc, nil
}

// DefaultClusterConfiguration is kubeadm's defaults: what a host writes
// when it can read no ClusterConfiguration.
func DefaultClusterConfiguration() (*kubeadmapi.ClusterConfiguration, error) {
	v := &kubeadmv1beta4.ClusterConfiguration{}
	cc, err := toInternal(v)
	if err != nil {
		return nil, err
	}
	// kubeadm linked into another binary does not know its own version (its
	// placeholder would pick the etcd image by a "nearest version" guess): use
	// the version kubeadm 1.37's tables are built for until the host says otherwise.
	cc.KubernetesVersion = "v1.37.0"
	return cc, nil
}

// fetchKubeadmConfig reads kube-system/kubeadm-config through the host's admin
// kubeconfigs, quickly: when this runs the apiserver is often down, or up
// without a quorum, taking requests and answering none. Both kubeconfigs are
// tried at once, so such an apiserver costs one timeout, not two.
func (h *Host) fetchKubeadmConfig(ctx context.Context, timeout time.Duration, giveUp bool) ([]byte, error) {
	if timeout == 0 {
		timeout = 3 * time.Second // a ConfigMap read from a working apiserver takes milliseconds
	}
	names := []string{"admin.conf", "super-admin.conf"}
	type answer struct {
		raw []byte
		err error
	}
	answers := make(chan answer, len(names))
	tried := 0
	for _, name := range names {
		p := h.Path(h.KubernetesDir + "/" + name)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		tried++
		go func() {
			raw, err := readKubeadmConfig(ctx, p, timeout, giveUp)
			answers <- answer{raw, err}
		}()
	}
	if tried == 0 {
		return nil, errors.New("no admin kubeconfig on the host")
	}
	var errs []error
	for range tried {
		a := <-answers
		if a.err == nil {
			return a.raw, nil
		}
		errs = append(errs, a.err)
	}
	return nil, errors.Join(errs...)
}

// readKubeadmConfig reads the ClusterConfiguration of kubeadm-config with
// the kubeconfig at path.
func readKubeadmConfig(ctx context.Context, path string, timeout time.Duration, giveUp bool) ([]byte, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, err
	}
	rc.Timeout = timeout
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	gctx, giveUpNow := context.WithCancelCause(cctx)
	defer giveUpNow(nil)
	if giveUp {
		go func() {
			if err := etcdDown(gctx, cs); err != nil {
				giveUpNow(err)
			}
		}()
	}
	cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(gctx, kubeadmconstants.KubeadmConfigConfigMap, metav1.GetOptions{})
	if err != nil {
		if cause := context.Cause(gctx); cause != nil && cctx.Err() == nil {
			return nil, cause
		}
		return nil, err
	}
	if s, ok := cm.Data[kubeadmconstants.ClusterConfigurationConfigMapKey]; ok {
		return []byte(s), nil
	}
	return nil, errors.New("kubeadm-config has no ClusterConfiguration")
}

// etcdDown is an error when the apiserver answers that its etcd is down:
// /livez/etcd fails with a status the apiserver itself sent. Any other
// outcome (ok, no answer, a transport error) is nil: the kubeadm-config
// read decides then.
func etcdDown(ctx context.Context, cs kubernetes.Interface) error {
	_, err := cs.Discovery().RESTClient().Get().AbsPath("/livez/etcd").DoRaw(ctx)
	var status apierrors.APIStatus
	if err == nil || !errors.As(err, &status) || ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("the apiserver reports its etcd down (/livez/etcd: %s)", strings.TrimSpace(status.Status().Message))
}

// inferFromManifests fills what the host's own manifests say: the apiserver's
// image gives the repository and Kubernetes version, its --etcd-cafile the
// certificates dir; an existing etcd manifest gives the data dir and image.
func (h *Host) inferFromManifests(cc *kubeadmapi.ClusterConfiguration) (bool, error) {
	inferred := false
	if m := h.apiServerManifestToRead(); h.exists(m) {
		pod, err := h.ReadManifest(m)
		if err != nil {
			return false, err
		}
		if c := container(pod, kubeadmconstants.KubeAPIServer); c != nil {
			if repo, tag, ok := splitImage(c.Image); ok {
				cc.ImageRepository, cc.KubernetesVersion = repo, tag
				inferred = true
			}
			if ca := FlagValue(c.Command, "etcd-cafile"); strings.HasSuffix(ca, "/etcd/ca.crt") {
				cc.CertificatesDir = strings.TrimSuffix(ca, "/etcd/ca.crt")
			}
		}
	}
	// The member's manifest, or where a stop step of an interrupted run
	// parked it.
	for _, m := range []string{h.EtcdManifest(), h.stoppedManifest()} {
		if !h.exists(m) {
			continue
		}
		pod, err := h.ReadManifest(m)
		if err != nil {
			return false, err
		}
		if c := container(pod, kubeadmconstants.Etcd); c != nil {
			if d := FlagValue(c.Command, "data-dir"); d != "" {
				cc.Etcd.Local.DataDir = d
			}
			if repo, tag, ok := splitImage(c.Image); ok {
				cc.Etcd.Local.ImageRepository, cc.Etcd.Local.ImageTag = repo, tag
			}
			cc.Etcd.Local.ExtraArgs = carriedArgs(cc, c.Command)
			inferred = true
		}
		break
	}
	return inferred, nil
}

// notCarried are the etcd flags kubeadm derives from the host (name,
// addresses, paths) or the member's bootstrap: a rendering for this host
// sets them itself, so an existing manifest's values are not settings to
// keep.
var notCarried = map[string]bool{
	"name": true, "listen-client-urls": true, "advertise-client-urls": true, "listen-peer-urls": true,
	"initial-advertise-peer-urls": true, "initial-cluster": true, "initial-cluster-state": true,
	"force-new-cluster": true, "data-dir": true, "cert-file": true, "key-file": true, "trusted-ca-file": true,
	"peer-cert-file": true, "peer-key-file": true, "peer-trusted-ca-file": true, "listen-metrics-urls": true,
}

// carriedArgs are the flags of an existing etcd manifest's command that
// kubeadm's rendering from cc would not write as they are: the cluster's
// etcd.local.extraArgs and hand edits. Without the cluster's
// ClusterConfiguration (its apiserver down), they are the only record of
// those settings, and a member rewritten without them would silently lose
// its quota or timings (and disagree with the other members).
func carriedArgs(cc *kubeadmapi.ClusterConfiguration, command []string) []kubeadmapi.Arg {
	rendered := etcdphase.GetEtcdPodSpec(cc, &kubeadmapi.APIEndpoint{AdvertiseAddress: "127.0.0.1"}, "carry", nil)
	defaults := map[string]string{}
	for _, a := range kubeadmutil.ArgumentsFromCommand(rendered.Spec.Containers[0].Command) {
		defaults[a.Name] = a.Value
	}
	var out []kubeadmapi.Arg
	for _, a := range kubeadmutil.ArgumentsFromCommand(command) {
		if notCarried[a.Name] {
			continue
		}
		if v, ok := defaults[a.Name]; ok && v == a.Value {
			continue
		}
		out = append(out, a)
	}
	return out
}

// ParseEtcdArgs parses `--etcd-arg` values, NAME=VALUE (NAME without
// dashes, as in etcd.local.extraArgs). The flags kubeadm derives from the
// host are refused: a value given for them would not be this host's.
func ParseEtcdArgs(values []string) ([]kubeadmapi.Arg, error) {
	var out []kubeadmapi.Arg
	for _, v := range values {
		name, value, ok := strings.Cut(strings.TrimLeft(v, "-"), "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--etcd-arg %q: want NAME=VALUE, e.g. heartbeat-interval=250", v)
		}
		if notCarried[name] {
			return nil, fmt.Errorf("--etcd-arg %q: kubeadm sets --%s for the host itself", v, name)
		}
		out = append(out, kubeadmapi.Arg{Name: name, Value: value})
	}
	return out, nil
}

// SetEtcdArgs gives the member's manifest args on top of the
// ClusterConfiguration's etcd.local.extraArgs (a flag already there takes
// the value given here), and says so in Source, which the plan shows.
func (c *Config) SetEtcdArgs(args []kubeadmapi.Arg, why string) {
	if len(args) == 0 {
		return
	}
	if c.Init.Etcd.Local == nil {
		c.Init.Etcd.Local = &kubeadmapi.LocalEtcd{}
	}
	local := c.Init.Etcd.Local
	var shown []string
	for _, a := range args {
		local.ExtraArgs = slices.DeleteFunc(local.ExtraArgs, func(x kubeadmapi.Arg) bool { return x.Name == a.Name })
		local.ExtraArgs = append(local.ExtraArgs, a)
		shown = append(shown, "--"+a.Name+"="+a.Value)
	}
	c.Source += fmt.Sprintf("; with %s (%s)", strings.Join(shown, " "), why)
}

func splitImage(image string) (repo, tag string, ok bool) {
	i := strings.LastIndex(image, ":")
	j := strings.LastIndex(image, "/")
	if i < 0 || i < j || j < 0 {
		return "", "", false
	}
	return image[:j], image[i+1:], true
}

// nodeName is the given name or the kubelet's node identity on this host
// (the CN of its client certificate, system:node:<name>), falling back to
// the hostname. A given name that differs from the kubelet's is refused.
func (h *Host) nodeName(given string) (string, error) {
	kubelet := h.kubeletNodeName()
	switch {
	case given != "" && kubelet != "" && given != kubelet:
		return "", fmt.Errorf("node name %q does not match this host: its kubelet is node %q", given, kubelet)
	case given != "":
		return given, nil
	case kubelet != "":
		return kubelet, nil
	}
	hn, err := os.ReadFile(h.Path("/etc/hostname"))
	if err != nil || strings.TrimSpace(string(hn)) == "" {
		name, herr := os.Hostname()
		if herr != nil {
			return "", fmt.Errorf("cannot tell this host's node name (no kubelet identity, no hostname): give --node-name")
		}
		return strings.ToLower(name), nil
	}
	return strings.ToLower(strings.TrimSpace(string(hn))), nil
}

func (h *Host) kubeletNodeName() string {
	for _, p := range []string{"/var/lib/kubelet/pki/kubelet-client-current.pem"} {
		// kubelet makes this an absolute symlink, which points outside the
		// host root when the host is mounted elsewhere: resolve it under Root.
		if target, err := os.Readlink(h.Path(p)); err == nil && filepath.IsAbs(target) {
			p = target
		}
		raw, err := os.ReadFile(h.Path(p))
		if err != nil {
			continue
		}
		for {
			var blk *pem.Block
			blk, raw = pem.Decode(raw)
			if blk == nil {
				break
			}
			if blk.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err == nil && strings.HasPrefix(c.Subject.CommonName, "system:node:") {
				return strings.TrimPrefix(c.Subject.CommonName, "system:node:")
			}
		}
	}
	return ""
}

// advertiseAddress is the given address or the one kubeadm recorded for this
// host's apiserver; either way it must be an address of this host.
func (h *Host) advertiseAddress(given string) (string, error) {
	addr := given
	if addr == "" {
		addr = h.recordedAdvertiseAddress()
	}
	if addr == "" {
		return "", errors.New("cannot tell this host's advertise address (no kube-apiserver or etcd manifest records one): give --advertise-address")
	}
	ip := net.ParseIP(addr)
	if ip == nil {
		return "", fmt.Errorf("advertise address %q is not an IP address", addr)
	}
	local, err := localAddresses()
	if err != nil {
		return "", err
	}
	if !local[ip.String()] {
		return "", fmt.Errorf("advertise address %s does not belong to this host (its addresses: %s)", addr, strings.Join(sortedKeys(local), ", "))
	}
	return ip.String(), nil
}

func (h *Host) recordedAdvertiseAddress() string {
	if pod, err := h.ReadManifest(h.apiServerManifestToRead()); err == nil {
		if ep, ok := pod.Annotations[kubeadmconstants.KubeAPIServerAdvertiseAddressEndpointAnnotationKey]; ok {
			if host, _, err := net.SplitHostPort(ep); err == nil {
				return host
			}
		}
	}
	if pod, err := h.ReadManifest(h.EtcdManifest()); err == nil {
		if u, ok := pod.Annotations[kubeadmconstants.EtcdAdvertiseClientUrlsAnnotationKey]; ok {
			u = strings.TrimPrefix(u, "https://")
			if host, _, err := net.SplitHostPort(u); err == nil {
				return host
			}
		}
	}
	return ""
}

// localAddresses lists this network namespace's addresses; the binary runs
// on the host or in a hostNetwork pod, so these are the host's.
func localAddresses() (map[string]bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing this host's addresses: %w", err)
	}
	out := map[string]bool{}
	for _, a := range addrs {
		if ip, _, err := net.ParseCIDR(a.String()); err == nil {
			out[ip.String()] = true
		}
	}
	return out, nil
}
