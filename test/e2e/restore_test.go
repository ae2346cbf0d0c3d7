//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// storyRestoreTotalLoss: a snapshot taken earlier; every data dir destroyed
// (h1's) or gone with its host (h2, h3 powered off); restore on h1 brings the
// keys of the snapshot back, a Kubernetes watch from before gets "expired"
// and an informer relists and keeps working; h2 and h3 come back with data
// of the old cluster, and join moves it aside. Damaged snapshots and a
// restore beside a healthy cluster are refused, changing nothing.
func storyRestoreTotalLoss(t *testing.T, b *testbed.Bed) {
	h1, h2, h3 := b.Host("h1"), b.Host("h2"), b.Host("h3")
	leftBefore := pathsNow(t, h1, "/etc/kubernetes/kubectl-etcd/recovery.json /var/lib/etcd/.kubectl-etcd-*")
	ctx := context.Background()
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	ns := "e2e-restore"
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
	for i := range 10 {
		mk(fmt.Sprintf("before-%d", i))
	}
	// An informer, as controllers use, and the resource version of now.
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().ConfigMaps().Informer()
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		t.Fatal("informer never synced")
	}
	list, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldRV := list.ResourceVersion

	// The snapshot (with etcdctl, as an operator's backup would be).
	snap := "/var/lib/kt-backup/snap.db"
	if out, err := h1.Exec(ctx, "mkdir", "-p", "/var/lib/kt-backup"); err != nil {
		t.Fatal(err, string(out))
	}
	if out, err := etcdctl(ctx, h1, "snapshot", "save", snap); err != nil {
		t.Fatal(err, string(out))
	}
	for i := range 5 {
		mk(fmt.Sprintf("after-%d", i)) // lost by the restore: written after the snapshot
	}

	// Bad input: truncated and corrupted files; a healthy cluster; snapshots
	// of other clusters.
	if out, err := h1.Exec(ctx, "sh", "-c", "head -c 65536 "+snap+" > /var/lib/kt-backup/truncated.db && cp "+snap+" /var/lib/kt-backup/corrupt.db && "+
		"printf 'XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX' | dd of=/var/lib/kt-backup/corrupt.db bs=1 seek=40000 conv=notrunc 2>/dev/null"); err != nil {
		t.Fatal(err, string(out))
	}
	// Snapshots of other clusters, from a plain etcd server on h1's loopback:
	// one with no Kubernetes data, one whose kube-root-ca.crt holds another
	// CA (the front-proxy CA: a real CA, not this cluster's).
	other := "d=$(mktemp -d /var/tmp/other-cluster-XXXXXX) && E='etcdctl --endpoints=http://127.0.0.1:12379' && " +
		"{ etcd-scratch --name other --data-dir $d/data --listen-client-urls http://127.0.0.1:12379 --advertise-client-urls http://127.0.0.1:12379 " +
		"--listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 --initial-cluster other=http://127.0.0.1:12380 >$d/log 2>&1 & } && " +
		"until $E endpoint health >/dev/null 2>&1; do sleep 0.2; done && $E put /registry/pods/x y >/dev/null && " +
		"$E snapshot save /var/lib/kt-backup/not-kubernetes.db >/dev/null && " +
		"$E put /registry/configmaps/kube-system/kube-root-ca.crt < /etc/kubernetes/pki/front-proxy-ca.crt >/dev/null && " +
		"$E snapshot save /var/lib/kt-backup/other-cluster.db >/dev/null && pkill -x etcd-scratch && rm -rf $d"
	if out, err := h1.Exec(ctx, "sh", "-c", other); err != nil {
		t.Fatal(err, string(out))
	}
	manifestBefore, _ := h1.ReadFile("/etc/kubernetes/manifests/etcd.yaml")
	for file, want := range map[string]string{"/var/lib/kt-backup/truncated.db": "truncated", "/var/lib/kt-backup/corrupt.db": "corrupted", snap: "has a quorum", "/var/lib/kt-backup/missing.db": "no such file",
		"/var/lib/kt-backup/other-cluster.db": "is of another Kubernetes cluster", "/var/lib/kt-backup/not-kubernetes.db": "not a snapshot of a Kubernetes cluster's etcd"} {
		if out, err := kectl(t, h1, "restore", file, "--yes"); err == nil || !strings.Contains(out, want) {
			t.Errorf("restore %s: want %q, got %v\n%s", file, want, err, out)
		}
	}
	if m, _ := h1.ReadFile("/etc/kubernetes/manifests/etcd.yaml"); string(m) != string(manifestBefore) {
		t.Error("a refused restore changed the etcd manifest")
	}
	if p := newPaths(t, h1, "/etc/kubernetes/kubectl-etcd/recovery.json /var/lib/etcd/.kubectl-etcd-*", leftBefore); len(p) > 0 {
		t.Errorf("a refused restore left %s", p)
	}

	// Total loss: every host's data destroyed (kept out of etcd's way, for
	// the test's own check), h2 and h3 then powered off.
	for _, h := range []*testbed.Host{h3, h2, h1} {
		if out, err := h.Exec(ctx, "sh", "-c", "mv /etc/kubernetes/manifests/etcd.yaml /etc/kubernetes/etcd.yaml.parked-by-test && "+
			"while pgrep -x etcd >/dev/null; do sleep 0.5; done && mv /var/lib/etcd/member /var/lib/etcd/.kubectl-etcd-destroyed-by-test"); err != nil {
			t.Fatal(err, string(out))
		}
	}
	for _, h := range []*testbed.Host{h2, h3} {
		if err := h.PowerOff(ctx); err != nil {
			t.Fatal(err)
		}
	}
	out, err := kectl(t, h1, "restore", snap, "--dry-run")
	if err != nil || !strings.Contains(out, "of this cluster") {
		t.Fatalf("restore --dry-run: %v\n%s", err, out)
	}
	start := time.Now()
	out, err = kectl(t, h1, "restore", snap, "--yes")
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	t.Logf("restore took %s", time.Since(start).Round(100*time.Millisecond))
	apiserverReady(t, h1)
	wantVoters(t, b, "h1", "h1")

	got, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	for i := 0; err != nil && i < 60; i++ {
		time.Sleep(time.Second)
		got, err = cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	wantSnapshotState(t, cs, ns, got, oldRV, 10, 5)
	// The informer relists: it drops the lost objects and sees new ones.
	mk("post-restore")
	var mu sync.Mutex
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mu.Lock()
		_, hasNew, _ := inf.GetStore().GetByKey(ns + "/post-restore")
		_, hasLost, _ := inf.GetStore().GetByKey(ns + "/after-0")
		mu.Unlock()
		if hasNew && !hasLost {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("informer did not resync after the restore: post-restore seen %v, lost after-0 still there %v", hasNew, hasLost)
		}
		time.Sleep(time.Second)
	}
	if p := hasPath(t, h1, "/var/lib/etcd/.kubectl-etcd-destroyed-by-test"); p == "" {
		t.Error("the restore deleted data it found in the data dir")
	}

	// h2, h3 come back (without data) and join the restored cluster.
	for _, h := range []*testbed.Host{h2, h3} {
		if err := h.PowerOn(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range []*testbed.Host{h2, h3} {
		if _, err := kectl(t, h, "join", "--endpoints=https://"+h1.Address+":2379"); err != nil {
			t.Fatalf("join on %s: %v", h.Name, err)
		}
		apiserverReady(t, h)
	}
	wantVoters(t, b, "h1", "h1", "h2", "h3")
}

// wantSnapshotState checks a restored namespace: before-0..before-(nBefore-1)
// (in the snapshot) are in got, after-0..after-(nAfter-1) (written after it)
// are not, and a watch from oldRV (before the restore) is told 410 Expired.
func wantSnapshotState(t *testing.T, cs kubernetes.Interface, ns string, got *corev1.ConfigMapList, oldRV string, nBefore, nAfter int) {
	t.Helper()
	names := map[string]bool{}
	for _, cm := range got.Items {
		names[cm.Name] = true
	}
	for i := range nBefore {
		if !names[fmt.Sprintf("before-%d", i)] {
			t.Errorf("before-%d (in the snapshot) is missing after the restore", i)
		}
	}
	for i := range nAfter {
		if names[fmt.Sprintf("after-%d", i)] {
			t.Errorf("after-%d (written after the snapshot) is present: not the snapshot's state", i)
		}
	}
	wi, err := cs.CoreV1().ConfigMaps(ns).Watch(context.Background(), metav1.ListOptions{ResourceVersion: oldRV})
	if err != nil {
		if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
			t.Errorf("watch from before the restore: %v, want 410 Expired", err)
		}
		return
	}
	defer wi.Stop()
	select {
	case ev := <-wi.ResultChan():
		st, ok := ev.Object.(*metav1.Status)
		if ev.Type != watch.Error || !ok || st.Code != 410 {
			t.Errorf("watch from resource version %s before the restore: got %s %#v, want 410 Expired", oldRV, ev.Type, ev.Object)
		}
	case <-time.After(30 * time.Second):
		t.Error("watch from before the restore: no event in 30s, want 410 Expired")
	}
}
