package drift

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

func clusterConfig(t *testing.T, extra string) *corev1.Pod {
	t.Helper()
	cc, err := staticpod.ParseClusterConfiguration([]byte(`apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
` + extra))
	if err != nil {
		t.Fatal(err)
	}
	return Render(cc, "h1", "10.0.0.11")
}

func TestCompareSameRendering(t *testing.T) {
	want := clusterConfig(t, "")
	actual := want.DeepCopy()
	c := &actual.Spec.Containers[0]
	// Order does not count, nor the bootstrap flags of a joined member.
	slicesReverse(c.Command[1:])
	c.Command = append(c.Command, "--initial-cluster-state=existing", "--initial-cluster=h0=https://10.0.0.10:2380,h1=https://10.0.0.11:2380")
	if d := Compare(actual, want); len(d) != 0 {
		t.Errorf("differences between kubeadm's rendering and itself reordered: %v", d)
	}
}

func slicesReverse(s []string) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

func TestCompareHandEdits(t *testing.T) {
	want := clusterConfig(t, "etcd:\n  local:\n    extraArgs:\n    - name: quota-backend-bytes\n      value: \"8589934592\"\n")
	if f := PodFlags(want); f["quota-backend-bytes"] != "8589934592" || f["snapshot-count"] != "10000" {
		t.Fatalf("kubeadm's rendering lacks the extraArgs or its defaults: %v", f)
	}
	actual := want.DeepCopy()
	c := &actual.Spec.Containers[0]
	var cmd []string
	for _, a := range c.Command {
		switch {
		case strings.HasPrefix(a, "--quota-backend-bytes="):
			continue // dropped
		case strings.HasPrefix(a, "--snapshot-count="):
			a = "--snapshot-count=5000"
		}
		cmd = append(cmd, a)
	}
	c.Command = append(cmd, "--heartbeat-interval=250", "--election-timeout", "2500")
	c.Image = "registry.k8s.io/etcd:3.6.5-0"
	c.Resources.Requests[corev1.ResourceMemory] = resource.MustParse("1Gi")
	var got []string
	for _, d := range Compare(actual, want) {
		got = append(got, d.String())
	}
	wantDiffs := []string{
		"image registry.k8s.io/etcd:3.6.5-0 (kubeadm: " + want.Spec.Containers[0].Image + ")",
		"--election-timeout=2500 (kubeadm: not set)",
		"--heartbeat-interval=250 (kubeadm: not set)",
		"--quota-backend-bytes not set (kubeadm: 8589934592)",
		"--snapshot-count=5000 (kubeadm: 10000)",
		"requests.memory 1Gi (kubeadm: 100Mi)",
	}
	if strings.Join(got, "\n") != strings.Join(wantDiffs, "\n") {
		t.Errorf("differences:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantDiffs, "\n"))
	}
}

func TestDisagreements(t *testing.T) {
	base := clusterConfig(t, "")
	pod := func(extra ...string) *corev1.Pod {
		p := base.DeepCopy()
		p.Spec.Containers[0].Command = append(p.Spec.Containers[0].Command, extra...)
		return p
	}
	pods := map[string]*corev1.Pod{
		"h1": pod("--heartbeat-interval=250", "--election-timeout=2500"),
		"h2": pod(),
		"h3": pod("--heartbeat-interval=100"), // etcd's default, set explicitly: no disagreement
		"h4": pod("--cipher-suites=TLS_AES_128_GCM_SHA256"),
	}
	var got []string
	for _, d := range Disagreements(pods) {
		got = append(got, d.String())
	}
	want := []string{
		"members disagree on --heartbeat-interval: 100 on h2, h3, h4; 250 on h1 (etcd's timings must match on every member)",
		"members disagree on --election-timeout: 1000 on h2, h3, h4; 2500 on h1 (etcd's timings must match on every member)",
		"members disagree on --cipher-suites: TLS_AES_128_GCM_SHA256 on h4; not set on h1, h2, h3 (members must accept each other's TLS)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("disagreements:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := Disagreements(map[string]*corev1.Pod{"h1": pod(), "h2": pod()}); len(d) != 0 {
		t.Errorf("identical members disagree: %v", d)
	}
}

func TestCarryFor(t *testing.T) {
	plain := clusterConfig(t, "")
	withQuota := clusterConfig(t, "etcd:\n  local:\n    extraArgs:\n    - name: quota-backend-bytes\n      value: \"8589934592\"\n    - name: cipher-suites\n      value: TLS_AES_128_GCM_SHA256\n")
	pod := func(base *corev1.Pod, extra ...string) *corev1.Pod {
		p := base.DeepCopy()
		p.Spec.Containers[0].Command = append(p.Spec.Containers[0].Command, extra...)
		return p
	}
	for _, c := range []struct {
		name      string
		staying   map[string]*corev1.Pod
		rendered  *corev1.Pod
		args      string
		conflicts []string
	}{
		{name: "members as kubeadm renders them", staying: map[string]*corev1.Pod{"h1": pod(plain), "h2": pod(plain)}, rendered: plain},
		{name: "no member known", staying: map[string]*corev1.Pod{}, rendered: plain},
		{name: "timings tuned by hand on every member",
			staying:  map[string]*corev1.Pod{"h1": pod(plain, "--heartbeat-interval=250", "--election-timeout=2500"), "h2": pod(plain, "--election-timeout", "2500", "--heartbeat-interval=250")},
			rendered: plain, args: "--heartbeat-interval=250 --election-timeout=2500"},
		{name: "the members disagree",
			staying:   map[string]*corev1.Pod{"h1": pod(plain, "--heartbeat-interval=250"), "h2": pod(plain)},
			rendered:  plain,
			conflicts: []string{"members disagree on --heartbeat-interval: 100 on h2; 250 on h1 (etcd's timings must match on every member); kubeadm-config gives --heartbeat-interval=100"}},
		{name: "kubeadm-config changed since the members were written",
			staying:  map[string]*corev1.Pod{"h1": pod(plain)},
			rendered: withQuota, args: "--quota-backend-bytes=0",
			conflicts: []string{"the members (h1) run without --cipher-suites, which kubeadm-config sets to TLS_AES_128_GCM_SHA256, and etcd has no value that means unset"}},
	} {
		got := CarryFor(c.staying, c.rendered)
		if got.String() != c.args || strings.Join(got.Conflicts, "\n") != strings.Join(c.conflicts, "\n") {
			t.Errorf("%s: carried %q, conflicts %q; want %q, %q", c.name, got.String(), got.Conflicts, c.args, c.conflicts)
		}
	}
}
