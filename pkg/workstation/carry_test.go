package workstation

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/drift"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// carryObserved: three control-plane nodes with members h1, h2 (voters)
// and h3 (a learner), whose etcd pods run kubeadm's rendering plus extra.
func carryObserved(t *testing.T, extra map[string][]string) *observed {
	t.Helper()
	cc, err := staticpod.ParseClusterConfiguration([]byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.2\n"))
	if err != nil {
		t.Fatal(err)
	}
	obs := &observed{manifests: manifests{cc: cc, pods: map[string]*corev1.Pod{}}}
	for i, n := range []string{"h1", "h2", "h3", "h4"} {
		addr := "10.0.0.1" + string(rune('1'+i))
		obs.nodes = append(obs.nodes, Node{Name: n, Address: addr, Ready: true})
		if n == "h4" {
			continue // no member yet
		}
		obs.members = append(obs.members, etcdcluster.Member{ID: uint64(i + 1), Name: n, PeerURLs: []string{"https://" + addr + ":2380"}, IsLearner: n == "h3"})
		p := drift.Render(cc, n, addr)
		p.Spec.Containers[0].Command = append(p.Spec.Containers[0].Command, extra[n]...)
		obs.manifests.pods[n] = p
	}
	return obs
}

func TestCarryForTakesTheMembersThatStay(t *testing.T) {
	tuned := []string{"--heartbeat-interval=250", "--election-timeout=2500"}
	obs := carryObserved(t, map[string][]string{"h1": tuned, "h2": tuned, "h3": {"--heartbeat-interval=999"}})
	c, err := obs.carryFor("h4")
	if err != nil {
		t.Fatal(err)
	}
	// h3 is a learner: not one of the members whose settings count.
	args, note, err := checkCarry(c, "h4", false)
	if err != nil || strings.Join(args, " ") != "heartbeat-interval=250 election-timeout=2500" {
		t.Fatalf("carried %v (%v), want the voters' timings", args, err)
	}
	if !strings.Contains(note, "h4's member carries the members' --heartbeat-interval=250 --election-timeout=2500") || !strings.Contains(note, "etcd.local.extraArgs") {
		t.Errorf("note %q", note)
	}

	// h2 runs kubeadm's timings: adding h4 is refused, unless h2 leaves in
	// the same scale, or --accept-drift.
	obs = carryObserved(t, map[string][]string{"h1": tuned})
	c, _ = obs.carryFor("h4")
	_, _, err = checkCarry(c, "h4", false)
	for _, want := range []string{"a member on h4 would not agree with the members that stay", "--heartbeat-interval: 100 on h2; 250 on h1", "--accept-drift", "nothing was changed"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %v lacks %q", err, want)
		}
	}
	args, note, err = checkCarry(c, "h4", true)
	if err != nil || len(args) != 0 || !strings.Contains(note, "gets kubeadm-config's value where the members disagree") {
		t.Errorf("--accept-drift: %v, %v, %q", args, err, note)
	}
	c, _ = obs.carryFor("h4", "h2")
	if args, _, err := checkCarry(c, "h4", false); err != nil || len(args) != 2 {
		t.Errorf("with h2 leaving: %v, %v; want h1's timings carried", args, err)
	}
	// Replacing h2's member: h1 alone stays.
	c, _ = obs.carryFor("h2")
	if args, _, err := checkCarry(c, "h2", false); err != nil || len(args) != 2 {
		t.Errorf("replacing h2: %v, %v; want h1's timings carried", args, err)
	}

	// Members as kubeadm renders them: nothing carried, nothing said.
	obs = carryObserved(t, nil)
	c, _ = obs.carryFor("h4")
	if args, note, err := checkCarry(c, "h4", false); err != nil || len(args) != 0 || note != "" {
		t.Errorf("plain members: %v, %q, %v", args, note, err)
	}
}
