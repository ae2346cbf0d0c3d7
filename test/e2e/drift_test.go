//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

type driftJSON struct {
	Drift []struct {
		Kind         string `json:"kind"`
		Node         string `json:"node"`
		Detail       string `json:"detail"`
		Differences  []struct{ What, Actual string }
		Disagreement *struct {
			Setting string              `json:"setting"`
			Hosts   map[string][]string `json:"hosts"`
		} `json:"disagreement"`
	} `json:"drift"`
}

// storyManifestDrift: h1's and h2's etcd manifests edited by hand with a
// timing tuning from a public HA guide (--heartbeat-interval=250,
// --election-timeout=2500), h3's left as kubeadm wrote it. status names the
// flags kubeadm would not write on h1, and the members' disagreement on
// both timings, in its text and -o json; and no member lost the cluster's
// quota to a recovery earlier in the chain. The kubelet mirrors the edited
// manifests into the API within a minute or two; status reads the mirrors,
// so it is polled.
//
// Then the policy for new members (docs/plugin.md "Manifest drift"):
// replacing h1's member, whose staying members h2 and h3 disagree, is
// refused, naming the flag and the values, and changes nothing; replacing
// h3's, whose staying members h1 and h2 agree, gives h3's new member their
// timings, which kubeadm-config does not have (h3's manifest on disk is
// checked).
func storyManifestDrift(t *testing.T, b *testbed.Bed) {
	h1, h3 := b.Host("h1"), b.Host("h3")
	tune(t, h1)
	tune(t, b.Host("h2"))
	st, raw := waitDrift(t, b, func(d map[string]map[string][]string) bool {
		return strings.Join(d["heartbeat-interval"]["250"], ",") == "h1,h2" && strings.Join(d["election-timeout"]["2500"], ",") == "h1,h2"
	})
	t.Logf("status -o json's drift after the edit:\n%s", raw)
	var onH1 []string
	for _, d := range st.Drift {
		if d.Kind == "manifest-differs" && d.Node == "h1" {
			for _, x := range d.Differences {
				onH1 = append(onH1, x.What+"="+x.Actual)
			}
		}
	}
	if s := strings.Join(onH1, " "); !strings.Contains(s, "--heartbeat-interval=250") || !strings.Contains(s, "--election-timeout=2500") {
		t.Errorf("h1's manifest-differs lists %q, want both hand-set timings", s)
	}
	d := disagreeing(st)
	if hb := d["heartbeat-interval"]; strings.Join(hb["250"], ",") != "h1,h2" || strings.Join(hb["100"], ",") != "h3" {
		t.Errorf("heartbeat-interval disagreement %v, want 250 on h1, h2 and etcd's 100 on h3", hb)
	}
	if et := d["election-timeout"]; strings.Join(et["2500"], ",") != "h1,h2" || strings.Join(et["1000"], ",") != "h3" {
		t.Errorf("election-timeout disagreement %v, want 2500 on h1, h2 and etcd's 1000 on h3", et)
	}
	// The recoveries earlier in the chain rewrote members' manifests with
	// the apiserver down: they must have kept the cluster's quota
	// (etcd.local.extraArgs), read from the manifests then.
	for _, d := range st.Drift {
		if d.Kind == "members-disagree" && d.Disagreement != nil && d.Disagreement.Setting == "quota-backend-bytes" {
			t.Errorf("the members disagree on their quota: %s", d.Detail)
		}
	}
	out, err := plugin(t, b, "status")
	if err != nil || !strings.Contains(out, "Drift: members disagree on --heartbeat-interval: 100 on h3; 250 on h1, h2") ||
		!strings.Contains(out, "Drift: etcd's manifest on h1 differs from what kubeadm writes from kubeadm-config: ") {
		t.Errorf("status' text does not show the drift: %v", err)
	}

	// Replacing h1's member: h2 and h3, the members that stay, disagree,
	// so there is no value to give h1.
	before, _ := h1.ReadFile("/etc/kubernetes/manifests/etcd.yaml")
	out, err = plugin(t, b, "replace", "h1")
	for _, want := range []string{"a member on h1 would not agree with the members that stay", "--heartbeat-interval: 100 on h3; 250 on h2", "--accept-drift", "nothing was changed"} {
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("replace h1 while h2 and h3 disagree: %v, want a refusal saying %q", err, want)
		}
	}
	if after, _ := h1.ReadFile("/etc/kubernetes/manifests/etcd.yaml"); string(after) != string(before) {
		t.Error("the refused replace changed h1's manifest")
	}

	// Replacing h3's: h1 and h2 agree, and h3's new member carries their
	// timings.
	out, err = plugin(t, b, "replace", "h3")
	if err != nil {
		t.Fatalf("replace h3 while h1 and h2 agree: %v", err)
	}
	if !strings.Contains(out, "h3's member carries the members' --heartbeat-interval=250 --election-timeout=2500") {
		t.Error("the replace's plan does not say what h3's member carries")
	}
	m, err := h3.ReadFile("/etc/kubernetes/manifests/etcd.yaml")
	if err != nil || !strings.Contains(string(m), "- --heartbeat-interval=250") || !strings.Contains(string(m), "- --election-timeout=2500") {
		t.Errorf("h3's new manifest lacks the members' timings (%v):\n%s", err, m)
	}
	if !strings.Contains(string(m), fmt.Sprintf("- --quota-backend-bytes=%d", kubeadmChainQuota)) {
		t.Errorf("h3's new manifest lacks kubeadm-config's quota:\n%s", m)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")
}

// tune edits h's etcd manifest by hand as a public HA guide does.
func tune(t *testing.T, h *testbed.Host) {
	t.Helper()
	mustExec(t, h, `sed -i 's|^    - --snapshot-count=\(.*\)$|    - --snapshot-count=\1\n    - --heartbeat-interval=250\n    - --election-timeout=2500|' /etc/kubernetes/manifests/etcd.yaml &&
		grep -q -- --heartbeat-interval=250 /etc/kubernetes/manifests/etcd.yaml`)
}

// waitDrift polls status -o json until the members' disagreement on the
// timings (see disagreeing) satisfies ok: status reads the mirror pods,
// which follow a manifest edit within a minute or two.
func waitDrift(t *testing.T, b *testbed.Bed, ok func(map[string]map[string][]string) bool) (driftJSON, []byte) {
	t.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	for {
		cmd := workstation(t, b, "status", "-o", "json")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		var st driftJSON
		if err == nil && json.Unmarshal(out, &st) == nil && ok(disagreeing(st)) {
			return st, out
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed the hand-set timings within 4 min: %v\n%s", err, out)
		}
		time.Sleep(5 * time.Second)
	}
}

// disagreeing: the members-disagree entries on the two timings, by setting.
func disagreeing(st driftJSON) map[string]map[string][]string {
	out := map[string]map[string][]string{}
	for _, d := range st.Drift {
		if d.Kind == "members-disagree" && d.Disagreement != nil &&
			(d.Disagreement.Setting == "heartbeat-interval" || d.Disagreement.Setting == "election-timeout") {
			out[d.Disagreement.Setting] = d.Disagreement.Hosts
		}
	}
	return out
}

// storyReconfigure: after ManifestDrift every member runs hand-set timings
// (h1 and h2 by hand, h3 carried). `reconfigure h3` rewrites h3's manifest
// as kubeadm writes it from kubeadm-config while a writer runs: every
// acknowledged write is kept, every member is a voter again, h3's timings
// are gone and kubeadm-config's quota stays; h1's and h2's manifests are
// untouched. A rerun finds nothing to do on h3. (The roll over every
// member, the leader last, is the upgrade story's: the same code.)
func storyReconfigure(t *testing.T, b *testbed.Bed) {
	manifests := func() map[string]string {
		out := map[string]string{}
		for _, h := range b.Hosts {
			m, err := h.ReadFile("/etc/kubernetes/manifests/etcd.yaml")
			if err != nil {
				t.Fatalf("%s: %v", h.Name, err)
			}
			out[h.Name] = string(m)
		}
		return out
	}
	before := manifests()
	for n, m := range before {
		if !strings.Contains(m, "--heartbeat-interval=250") {
			t.Fatalf("%s does not run the hand-set timing this story starts from", n)
		}
	}
	w := startWriter(t, b, "e2e-reconfigure")
	out, err := plugin(t, b, "reconfigure", "h3")
	w.finish(t, b, "e2e-reconfigure")
	if err != nil {
		t.Fatalf("reconfigure h3: %v", err)
	}
	if !strings.Contains(out, "] reconfigure h3: on h3: write /etc/kubernetes/manifests/etcd.yaml as kubeadm writes it (changes: --election-timeout=2500 (kubeadm: not set); --heartbeat-interval=250 (kubeadm: not set))") {
		t.Error("reconfigure h3 does not name h3's changes")
	}
	after := manifests()
	if m := after["h3"]; strings.Contains(m, "--heartbeat-interval") || strings.Contains(m, "--election-timeout") ||
		!strings.Contains(m, fmt.Sprintf("- --quota-backend-bytes=%d", kubeadmChainQuota)) {
		t.Errorf("h3's manifest after reconfigure keeps a hand-set timing or lost kubeadm-config's quota:\n%s", m)
	}
	for _, n := range []string{"h1", "h2"} {
		if after[n] != before[n] {
			t.Errorf("reconfigure h3 changed %s's manifest", n)
		}
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")
	waitHealthy(t, b, 3)
	// h3's kubelet lost its apiserver for the switch: NotReady for a
	// while, and the plugin would send the rerun to the host-local command.
	if err := b.WaitNodesReady(context.Background(), 2*time.Minute); err != nil {
		t.Fatalf("nodes after reconfigure h3: %v", err)
	}
	out, err = plugin(t, b, "reconfigure", "h3")
	if err != nil || strings.Contains(out, "[1/") || !strings.Contains(out, "nothing to do on h3") {
		t.Errorf("a rerun: %v, want nothing to do on h3", err)
	}
	if out, err := plugin(t, b, "reconfigure", "nope"); err == nil || !strings.Contains(out, `"nope" is not a control-plane node`) {
		t.Errorf("reconfigure nope: %v, want a refusal naming it", err)
	}
}
