//go:build e2e

package e2e

import (
	"encoding/json"
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

// storyManifestDrift: h1's etcd manifest edited by hand with a timing
// tuning from a public HA guide (--heartbeat-interval=250,
// --election-timeout=2500). status names the flags kubeadm would not write
// on h1, and the members' disagreement on both timings, in its text and
// -o json; and no member lost the cluster's quota to a recovery earlier
// in the chain. The kubelet mirrors the edited manifest into the API within
// a minute or two; status reads the mirror, so it is polled.
func storyManifestDrift(t *testing.T, b *testbed.Bed) {
	h1 := b.Host("h1")
	mustExec(t, h1, `sed -i 's|^    - --snapshot-count=\(.*\)$|    - --snapshot-count=\1\n    - --heartbeat-interval=250\n    - --election-timeout=2500|' /etc/kubernetes/manifests/etcd.yaml &&
		grep -q -- --heartbeat-interval=250 /etc/kubernetes/manifests/etcd.yaml`)
	var st driftJSON
	var raw []byte
	deadline := time.Now().Add(4 * time.Minute)
	for {
		cmd := workstation(t, b, "status", "-o", "json")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		st = driftJSON{}
		if err == nil && json.Unmarshal(out, &st) == nil && len(disagreeing(st)) >= 2 {
			raw = out
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed h1's hand-set timings within 4 min: %v\n%s", err, out)
		}
		time.Sleep(5 * time.Second)
	}
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
	if hb := d["heartbeat-interval"]; strings.Join(hb["250"], ",") != "h1" || strings.Join(hb["100"], ",") != "h2,h3" {
		t.Errorf("heartbeat-interval disagreement %v, want 250 on h1 and etcd's 100 on h2, h3", hb)
	}
	if et := d["election-timeout"]; strings.Join(et["2500"], ",") != "h1" || strings.Join(et["1000"], ",") != "h2,h3" {
		t.Errorf("election-timeout disagreement %v, want 2500 on h1 and etcd's 1000 on h2, h3", et)
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
	if err != nil || !strings.Contains(out, "Drift: members disagree on --heartbeat-interval: 100 on h2, h3; 250 on h1") ||
		!strings.Contains(out, "Drift: etcd's manifest on h1 differs from what kubeadm writes from kubeadm-config: ") {
		t.Errorf("status' text does not show the drift: %v", err)
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
