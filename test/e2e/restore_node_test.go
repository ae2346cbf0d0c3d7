//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-etcd/kubectl-etcd/internal/etcdtest"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/recover"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// storyPluginRestoreNode: `kubectl etcd restore FILE --node h1` from the
// workstation while the apiserver is up rolls the cluster back to a snapshot
// taken with `kubectl etcd snapshot save`: what was written before it is
// there, what came after is gone, a watch from before is told to relist, h1's
// old data is moved aside. The plugin is interrupted while it waits for the
// restore (which goes on), and the rerun converges and grows back to three
// members. A truncated, a corrupted and another cluster's snapshot, a wrong
// node and a dry run change nothing. The shrink to one member and the growth
// back to three are `scale`'s (the round trip 3 → 1 → 3 on a kubeadm-made
// cluster): every apiserver serves afterwards, each from its own member.
func storyPluginRestoreNode(t *testing.T, b *testbed.Bed) {
	h1 := b.Host("h1")
	ctx := context.Background()
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	ns := "e2e-restore-node"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mk := func(name string) {
		t.Helper()
		for i := 0; ; i++ {
			_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			if err == nil || apierrors.IsAlreadyExists(err) {
				return
			}
			if i > 60 {
				t.Fatalf("creating %s: %v", name, err)
			}
			time.Sleep(time.Second)
		}
	}
	for i := range 5 {
		mk(fmt.Sprintf("before-%d", i))
	}
	dir := t.TempDir()
	snap := filepath.Join(dir, "snap.db")
	if out, err := plugin(t, b, "snapshot", "save", snap); err != nil {
		t.Fatalf("snapshot save: %v\n%s", err, out)
	}
	for i := range 3 {
		mk(fmt.Sprintf("after-%d", i)) // lost by the restore
	}
	list, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldRV := list.ResourceVersion

	// Bad input, made on the workstation: a cut copy, a damaged copy, and a
	// sound snapshot of another cluster (a plain etcd whose kube-root-ca.crt
	// holds another CA).
	raw, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	truncated, corrupt, other := filepath.Join(dir, "truncated.db"), filepath.Join(dir, "corrupt.db"), filepath.Join(dir, "other.db")
	if err := os.WriteFile(truncated, raw[:65536], 0o600); err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), raw...)
	copy(bad[40000:], "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX")
	if err := os.WriteFile(corrupt, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	otherSnapshot(t, other)

	state := func() string {
		t.Helper()
		var sb strings.Builder
		for _, h := range b.Hosts {
			for _, f := range []string{"/etc/kubernetes/manifests/etcd.yaml", "/etc/kubernetes/manifests/kube-apiserver.yaml"} {
				m, _ := h.ReadFile(f)
				fmt.Fprintf(&sb, "%s:%s %x\n", h.Name, f, m)
			}
		}
		names, learners := voters(t, b, "h1")
		fmt.Fprintf(&sb, "voters %v learners %d\n", names, learners)
		return sb.String()
	}
	before := state()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{truncated, "--node", "h1"}, "truncated"},
		{[]string{corrupt, "--node", "h1"}, "corrupted"},
		{[]string{filepath.Join(dir, "missing.db"), "--node", "h1"}, "no such file"},
		{[]string{snap, "--node", "nope"}, `"nope" is not a control-plane node`},
		{[]string{other, "--node", "h1"}, "is of another Kubernetes cluster"},
	} {
		out, err := plugin(t, b, append([]string{"restore", "--yes"}, c.args...)...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("restore %v: want an error with %q, got %v", c.args, c.want, err)
		}
		if !strings.Contains(out, "nothing was changed") && c.want != `"nope" is not a control-plane node` {
			t.Errorf("restore %v: the error does not say nothing was changed", c.args)
		}
	}
	if out, err := plugin(t, b, "scale", "--replicas", "1", "--dry-run"); err != nil || !strings.Contains(out, "dry run") {
		t.Errorf("scale --replicas 1 --dry-run: %v", err)
	}
	out, err := plugin(t, b, "restore", snap, "--node", "h1", "--dry-run")
	if err != nil {
		t.Fatalf("restore --dry-run: %v", err)
	}
	for _, want := range []string{"dry run", "after the snapshot is lost", "pre-restore", "shrink etcd to h1's member alone", "remove member h3", "remove member h2"} {
		if !strings.Contains(out, want) {
			t.Errorf("the dry run does not say %q", want)
		}
	}
	if after := state(); after != before {
		t.Errorf("a refused restore or a dry run changed the hosts or the members:\nbefore %s\nafter %s", before, after)
	}

	// The restore, interrupted while the plugin waits for it, then rerun.
	start := time.Now()
	out = interruptPlugin(t, b, syscall.SIGINT, "] wait: waiting", "restore", snap, "--node", "h1", "--yes")
	if !strings.Contains(out, "] wait: waiting") {
		t.Fatalf("the restore never got to waiting for the host")
	}
	out, err = plugin(t, b, "restore", snap, "--node", "h1", "--yes", "--replicas", "3")
	if err != nil {
		t.Fatalf("restore rerun: %v", err)
	}
	t.Logf("restore --node h1 (interrupted, rerun, grown back to 3) took %s", time.Since(start).Round(100*time.Millisecond))
	if !strings.Contains(out, "running on h1") && !strings.Contains(out, "restored on h1 already") && !strings.Contains(out, "waiting up to") {
		t.Errorf("the rerun did not find the restore the interrupted run started")
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")
	// Grown back as `scale --replicas 3` grows: every apiserver serves, each
	// from its own member again, and the kubelets stayed with them.
	for _, h := range b.Hosts {
		apiserverReady(t, h)
	}
	for _, h := range pluginStatus(t, b).Hosts {
		if h.APIServerEtcd != "https://127.0.0.1:2379" {
			t.Errorf("%s's apiserver reads %s, want its local member", h.Node, h.APIServerEtcd)
		}
	}
	if err := b.WaitNodesReady(ctx, time.Minute); err != nil {
		t.Errorf("kubelets after the restore and the growth back to 3: %v", err)
	}
	noHostPodsLeft(t, b)

	got, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantSnapshotState(t, cs, ns, got, oldRV, 5, 3)
	if p := hasPath(t, h1, "/var/lib/etcd/.kubectl-etcd-before-restore-* /var/lib/etcd.before-restore-*"); p == "" {
		t.Error("h1's old data dir was not moved aside")
	}
	pre := ""
	for _, h := range b.Hosts {
		pre += hasPath(t, h, "/var/lib/kubectl-etcd/backups/*pre-restore*.db")
	}
	if pre == "" {
		t.Error("no pre-restore snapshot on any host")
	}
	// A third run finds the restore done and changes nothing.
	out, err = plugin(t, b, "restore", snap, "--node", "h1", "--yes")
	if err != nil || !strings.Contains(out, "restored on h1 already") {
		t.Errorf("a rerun after the restore: %v, want it to say the snapshot was restored already", err)
	}
	if strings.Contains(out, "Grow it again") {
		t.Error("a rerun with three members asks to grow the cluster again")
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")
}

// otherSnapshot writes a sound snapshot of a plain etcd (not this cluster's)
// whose kube-system/kube-root-ca.crt holds another CA.
func otherSnapshot(t *testing.T, path string) {
	t.Helper()
	c := etcdtest.StartCluster(t, 1)
	cli := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, recover.ClusterCAKey, "ca.crt: -----BEGIN CERTIFICATE-----\nMIIBothercluster\n-----END CERTIFICATE-----\n"); err != nil {
		t.Fatal(err)
	}
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
