// Package drift compares the etcd static pod each control-plane host runs
// with what kubeadm would write for that host from the cluster's
// ClusterConfiguration (kubeadm's own GetEtcdPodSpec), and the members'
// settings with each other: a flag set by hand on one host (a timing tuned
// from a guide, say) is lost the next time kubeadm or kubectl-etcd writes
// that member's manifest, and some settings must be the same on every
// member.
//
// Only what the manifest's author chose is compared: the image, the etcd
// flags (in any order), and the resource requests. The member's bootstrap
// flags (--initial-cluster, --initial-cluster-state) differ by design
// between a first member and a joined one, and fields the apiserver
// defaults in a mirror pod (probe thresholds, pull policy) are not choices.
package drift

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	etcdphase "k8s.io/kubernetes/cmd/kubeadm/app/phases/etcd"
)

// bootstrap flags: how the member first joined, not how it runs.
var bootstrap = map[string]bool{"initial-cluster": true, "initial-cluster-state": true, "force-new-cluster": true}

// Difference is one way a host's etcd differs from kubeadm's rendering.
type Difference struct {
	// What differs: "image", "requests.cpu", or a flag ("--snapshot-count").
	What string `json:"what"`
	// Actual and Want are the values; "" with the matching Set false when
	// the flag is absent.
	Actual    string `json:"actual"`
	Want      string `json:"kubeadm"`
	ActualSet bool   `json:"actualSet"`
	WantSet   bool   `json:"kubeadmSet"`
}

func (d Difference) String() string {
	actual, want := d.What+"="+d.Actual, d.Want
	if !d.ActualSet {
		actual = d.What + " not set"
	}
	if !d.WantSet {
		want = "not set"
	}
	if !strings.HasPrefix(d.What, "--") {
		actual = d.What + " " + d.Actual
	}
	return fmt.Sprintf("%s (kubeadm: %s)", actual, want)
}

// Render is the etcd pod kubeadm would write for node, which advertises
// advertise, from cc: kubeadm's GetEtcdPodSpec.
func Render(cc *kubeadmapi.ClusterConfiguration, node, advertise string) *corev1.Pod {
	endpoint := &kubeadmapi.APIEndpoint{AdvertiseAddress: advertise, BindPort: kubeadmconstants.KubeAPIServerPort}
	pod := etcdphase.GetEtcdPodSpec(cc, endpoint, node, nil)
	return &pod
}

// Flags parses an etcd command line (the container's command and args)
// into flag -> value: "--k=v" and "--k v"; a bare "--k" is "true". A flag
// given twice keeps both values, joined by a comma, as etcd reads a
// repeated list flag.
func Flags(argv []string) map[string]string {
	out := map[string]string{}
	add := func(k, v string) {
		if old, ok := out[k]; ok {
			v = old + "," + v
		}
		out[k] = v
	}
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if !strings.HasPrefix(a, "-") {
			continue // "etcd", or a stray word
		}
		k := strings.TrimLeft(a, "-")
		if name, v, ok := strings.Cut(k, "="); ok {
			add(name, v)
			continue
		}
		if i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "-") {
			add(k, argv[i+1])
			i++
			continue
		}
		add(k, "true")
	}
	return out
}

// etcdContainer finds kubeadm's etcd container.
func etcdContainer(p *corev1.Pod) *corev1.Container {
	for i := range p.Spec.Containers {
		if p.Spec.Containers[i].Name == kubeadmconstants.Etcd {
			return &p.Spec.Containers[i]
		}
	}
	return nil
}

// PodFlags are the flags of p's etcd container; nil without one.
func PodFlags(p *corev1.Pod) map[string]string {
	c := etcdContainer(p)
	if c == nil {
		return nil
	}
	return Flags(append(slices.Clone(c.Command), c.Args...))
}

// Compare lists how actual (a host's etcd pod) differs from want (Render's):
// image, flags but the bootstrap ones, and resource requests; sorted.
func Compare(actual, want *corev1.Pod) []Difference {
	a, w := etcdContainer(actual), etcdContainer(want)
	if a == nil || w == nil {
		return []Difference{{What: "container etcd", ActualSet: a != nil, WantSet: w != nil, Actual: "present", Want: "present"}}
	}
	var out []Difference
	if a.Image != w.Image {
		out = append(out, Difference{What: "image", Actual: a.Image, Want: w.Image, ActualSet: true, WantSet: true})
	}
	af, wf := PodFlags(actual), PodFlags(want)
	keys := slices.Sorted(maps.Keys(af))
	for k := range wf {
		if _, ok := af[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if bootstrap[k] {
			continue
		}
		av, aok := af[k]
		wv, wok := wf[k]
		if aok == wok && av == wv {
			continue
		}
		out = append(out, Difference{What: "--" + k, Actual: av, Want: wv, ActualSet: aok, WantSet: wok})
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		aq, aok := a.Resources.Requests[r]
		wq, wok := w.Resources.Requests[r]
		if aok == wok && aq.Cmp(wq) == 0 {
			continue
		}
		out = append(out, Difference{What: "requests." + string(r), Actual: aq.String(), Want: wq.String(), ActualSet: aok, WantSet: wok})
	}
	return out
}

// Setting is one setting every member must share. A member whose manifest
// does not set it runs etcd's default, Default ("" where that is no single
// value: the member is then compared as "not set").
type Setting struct {
	Flag    string // without "--"; "image" for the image
	Default string
	Why     string
}

// MustAgree are the settings whose values must be the same on every member
// (etcd's tuning guide for the timings; the others change what a member
// accepts or how it stores data, or its version).
var MustAgree = []Setting{
	{Flag: "heartbeat-interval", Default: "100", Why: "etcd's timings must match on every member"},
	{Flag: "election-timeout", Default: "1000", Why: "etcd's timings must match on every member"},
	{Flag: "quota-backend-bytes", Default: "0", Why: "a member with a smaller quota raises NOSPACE for the whole cluster"},
	{Flag: "snapshot-count", Default: "10000"},
	{Flag: "cipher-suites", Why: "members must accept each other's TLS"},
	{Flag: "feature-gates"},
	{Flag: "image", Why: "members should run one etcd version, except while an upgrade rolls"},
}

// Disagreement is a MustAgree setting with more than one value among the
// members.
type Disagreement struct {
	Setting string `json:"setting"`
	// Hosts by the value they run (etcd's default where their manifest
	// does not set it; "" when that is not a single value).
	Hosts map[string][]string `json:"hosts"`
	Why   string              `json:"why,omitempty"`
}

func (d Disagreement) String() string {
	var parts []string
	values := slices.Sorted(maps.Keys(d.Hosts))
	if len(values) > 0 && values[0] == "" {
		values = append(values[1:], "") // "not set" last
	}
	for _, v := range values {
		shown := v
		if v == "" {
			shown = "not set"
		}
		parts = append(parts, fmt.Sprintf("%s on %s", shown, strings.Join(d.Hosts[v], ", ")))
	}
	name := "--" + d.Setting
	if d.Setting == "image" {
		name = "the image"
	}
	s := fmt.Sprintf("members disagree on %s: %s", name, strings.Join(parts, "; "))
	if d.Why != "" {
		s += " (" + d.Why + ")"
	}
	return s
}

// Disagreements compares the MustAgree settings of the hosts' etcd pods.
func Disagreements(pods map[string]*corev1.Pod) []Disagreement {
	var out []Disagreement
	for _, s := range MustAgree {
		hosts := map[string][]string{}
		for _, h := range slices.Sorted(maps.Keys(pods)) {
			c := etcdContainer(pods[h])
			if c == nil {
				continue
			}
			v, set := c.Image, true
			if s.Flag != "image" {
				v, set = PodFlags(pods[h])[s.Flag]
			}
			if !set {
				v = s.Default
			}
			hosts[v] = append(hosts[v], h)
		}
		if len(hosts) > 1 {
			out = append(out, Disagreement{Setting: s.Flag, Hosts: hosts, Why: s.Why})
		}
	}
	return out
}

// Carried is what a member added or rebuilt must run, of the MustAgree
// settings, to agree with the members that stay, where kubeadm's rendering
// from the ClusterConfiguration would give it something else (a timing
// tuned by hand on every member, say). Conflicts are the settings no value
// can be carried for: the members that stay disagree among themselves, or
// run without a flag that kubeadm's rendering sets and that has no single
// default to write instead.
type Carried struct {
	// Args are etcd flags (name without dashes) for the new member's
	// manifest, on top of etcd.local.extraArgs.
	Args []kubeadmapi.Arg `json:"args,omitempty"`
	// Conflicts say, per setting, why nothing can be carried.
	Conflicts []string `json:"conflicts,omitempty"`
}

// String is the flags as they go on etcd's command line.
func (c Carried) String() string {
	var s []string
	for _, a := range c.Args {
		s = append(s, "--"+a.Name+"="+a.Value)
	}
	return strings.Join(s, " ")
}

// CarryFor compares the MustAgree settings of staying (the etcd pods of
// the members that stay, by host) with rendered (kubeadm's rendering for
// the new member). The image is left out: members run two versions while
// an upgrade rolls, and kubeadm-config's image is the one an upgrade
// records.
func CarryFor(staying map[string]*corev1.Pod, rendered *corev1.Pod) Carried {
	var out Carried
	want := PodFlags(rendered)
	for _, s := range MustAgree {
		if s.Flag == "image" {
			continue
		}
		hosts := map[string][]string{}
		for _, h := range slices.Sorted(maps.Keys(staying)) {
			f := PodFlags(staying[h])
			if f == nil {
				continue
			}
			v, set := f[s.Flag]
			if !set {
				v = s.Default
			}
			hosts[v] = append(hosts[v], h)
		}
		r, set := want[s.Flag]
		if !set {
			r = s.Default
		}
		switch {
		case len(hosts) == 0:
		case len(hosts) > 1:
			d := Disagreement{Setting: s.Flag, Hosts: hosts, Why: s.Why}
			out.Conflicts = append(out.Conflicts, fmt.Sprintf("%s; kubeadm-config gives --%s=%s", d, s.Flag, r))
		default:
			v := slices.Collect(maps.Keys(hosts))[0]
			switch {
			case v == r:
			case v == "":
				out.Conflicts = append(out.Conflicts, fmt.Sprintf("the members (%s) run without --%s, which kubeadm-config sets to %s, and etcd has no value that means unset",
					strings.Join(hosts[v], ", "), s.Flag, r))
			default:
				out.Args = append(out.Args, kubeadmapi.Arg{Name: s.Flag, Value: v})
			}
		}
	}
	return out
}
