//go:build e2e

package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// TestPluginMembers: five control-plane hosts (three with members, two
// without) under a writer: doctor, clean, then naming a failed join's
// unstarted member on h4 and another cluster's data on h5, whose fixes make
// five members; scale 5 → 3; replace a member whose data dir
// was destroyed (its apiserver and so its kubelet are down: the plugin says
// so at once and prints the host-local command, which completes it); remove
// the member of a powered-off host; the host comes back and `leave` there
// points its apiserver at the members; scale back to 3. No acknowledged
// write is lost and no host pod is left.
func TestPluginMembers(t *testing.T) {
	b := upBed(t, "e2emembers", "10.99.12", testbed.RoleInit, testbed.RoleControlPlane, testbed.RoleControlPlane,
		testbed.RoleControlPlaneNoEtcd, testbed.RoleControlPlaneNoEtcd)
	ctx := context.Background()
	w := startWriter(t, b, "e2e-members-writer")

	// doctor on the fresh bed, then two half-done states and the fixes it
	// names, which leave five members.
	t.Run("Doctor", func(t *testing.T) { storyDoctor(t, b) })

	// 3 → 5 (the doctor story did it: a rerun changes nothing) → 3.
	if _, err := plugin(t, b, "scale", "--replicas", "5"); err != nil {
		t.Fatalf("scale --replicas 5: %v", err)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3", "h4", "h5")
	if _, err := plugin(t, b, "scale", "--replicas", "3"); err != nil {
		t.Fatalf("scale --replicas 3: %v", err)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")
	for _, h := range pluginStatus(t, b).Hosts {
		if (h.Node == "h4" || h.Node == "h5") && (h.Member != "" || strings.Contains(h.APIServerEtcd, "127.0.0.1") ||
			strings.Contains(h.APIServerEtcd, ".14:") || strings.Contains(h.APIServerEtcd, ".15:")) {
			t.Errorf("after 5 → 3, %s: member %q, apiserver reads %s; want no member and only the remaining members", h.Node, h.Member, h.APIServerEtcd)
		}
	}

	// Replace: h2's data dir destroyed (etcd stopped, contents removed,
	// started again on the empty dir, as after a disk swap).
	h2 := b.Host("h2")
	mustExec(t, h2, "mv /etc/kubernetes/manifests/etcd.yaml /etc/kubernetes/etcd.yaml.test && sleep 1")
	waitFor(t, 90*time.Second, "h2's etcd to stop", func() bool {
		out, _ := h2.Exec(ctx, "sh", "-c", "pgrep -x etcd || true")
		return strings.TrimSpace(string(out)) == ""
	})
	mustExec(t, h2, "rm -rf /var/lib/etcd/member && mv /etc/kubernetes/etcd.yaml.test /etc/kubernetes/manifests/etcd.yaml")
	start := time.Now()
	out, err := plugin(t, b, "replace", "h2")
	took := time.Since(start)
	if err == nil || !strings.Contains(out, "the kubelet on node h2 cannot start pods") {
		t.Fatalf("replace of h2 with its data destroyed: want the kubelet-down explanation, got %v", err)
	}
	if took > 90*time.Second {
		t.Errorf("replace took %s to see that h2 cannot run pods", took)
	}
	m := regexp.MustCompile(`(?m)^\s*(/var/lib/kubectl-etcd/kubectl-etcd join [^\n]*--replace-member [0-9a-f]+)\s*$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no host-local command in the output")
	}
	hostCmd := m[1]
	if _, err := h2.Exec(ctx, "test", "-x", "/var/lib/kubectl-etcd/kubectl-etcd"); err != nil {
		// No host pod ran on h2 before: the bed's own copy is the same build.
		hostCmd = strings.Replace(hostCmd, "/var/lib/kubectl-etcd/kubectl-etcd", "kubectl-etcd", 1)
	}
	noHostPodsLeft(t, b)
	if out, err := h2.Exec(ctx, "sh", "-c", hostCmd); err != nil {
		t.Fatalf("h2: %s: %v\n%s", hostCmd, err, out)
	} else {
		t.Logf("h2: %s\n%s", hostCmd, out)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")
	apiserverReady(t, h2)
	// Running it again converges: nothing to do.
	if out, err := h2.Exec(ctx, "sh", "-c", hostCmd); err != nil || !strings.Contains(string(out), "already a voting member") {
		t.Errorf("rerun of %s: %v\n%s", hostCmd, err, out)
	}
	if out, err := h2.Exec(ctx, "sh", "-c", "ls -a /var/lib/etcd"); err != nil || !strings.Contains(string(out), "replaced") {
		t.Errorf("h2's old data dir is not kept aside: %v\n%s", err, out)
	}

	// Remove the member of a powered-off host.
	h3 := b.Host("h3")
	if err := h3.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := plugin(t, b, "remove", "h3", "--dry-run"); err != nil || !strings.Contains(out, "dry run") {
		t.Errorf("remove --dry-run: %v", err)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")
	if _, err := plugin(t, b, "remove", "h3"); err != nil {
		t.Fatalf("remove h3 (powered off): %v", err)
	}
	wantVoters(t, b, "h1", "h1", "h2")
	noHostPodsLeft(t, b)
	// h3 returns: its member was removed, so its etcd stops and its
	// apiserver has nothing to read; `leave` there tidies up and points the
	// apiserver at the members.
	if err := h3.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := kectl(t, h3, "leave"); err != nil {
		t.Fatalf("leave on h3 after its member was removed: %v\n%s", err, out)
	}
	apiserverReady(t, h3)
	// h3 has no etcd data now: recover there has nothing to work from.
	if out, err := kectl(t, h3, "recover", "--yes"); err == nil || !strings.Contains(out, "no etcd data") {
		t.Errorf("recover without data: %v\n%s", err, out)
	}
	if err := b.WaitNodesReady(ctx, 2*time.Minute); err != nil {
		t.Fatalf("nodes after h3 came back: %v", err)
	}
	if _, err := plugin(t, b, "scale", "--replicas", "3"); err != nil {
		t.Fatalf("scale --replicas 3 after the removal: %v", err)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")
	noHostPodsLeft(t, b)
	w.finish(t, b, "e2e-members-writer")
}

func mustExec(t *testing.T, h *testbed.Host, script string) {
	t.Helper()
	if out, err := h.Exec(context.Background(), "sh", "-c", script); err != nil {
		t.Fatalf("%s: %s: %v\n%s", h.Name, script, err, out)
	}
}
