//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// hostPodSelector selects the plugin's host pods.
const hostPodSelector = "app.kubernetes.io/managed-by=kubectl-etcd"

// watchHostPods records the names of host pods created from now until the
// returned function is called, which returns them.
func watchHostPods(t *testing.T, b *testbed.Bed) func() []string {
	t.Helper()
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := cs.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{LabelSelector: hostPodSelector})
	if err != nil {
		cancel()
		t.Fatalf("watching host pods: %v", err)
	}
	var mu sync.Mutex
	var created []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Added {
				mu.Lock()
				created = append(created, p.Namespace+"/"+p.Name)
				mu.Unlock()
			}
		}
	}()
	return func() []string {
		// Events of a pod made at the very end are on their way: give them a moment.
		time.Sleep(2 * time.Second)
		cancel()
		w.Stop()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return created
	}
}

type statusRows struct {
	Members []struct {
		Host    string `json:"host"`
		Name    string `json:"name"`
		ID      string `json:"id"`
		Healthy bool   `json:"healthy"`
		Learner bool   `json:"learner"`
		Leader  bool   `json:"leader"`
		Error   string `json:"error"`
		// Set when asked for (-o json asks): the exec path reads it through the tunnel.
		ServerCertNotAfter *time.Time `json:"serverCertNotAfter"`
	} `json:"members"`
	Summary string `json:"summary"`
}

// statusRun runs `status -o json` with extra args, stdout and stderr apart.
func statusRun(t *testing.T, b *testbed.Bed, args ...string) (statusRows, string, error) {
	t.Helper()
	cmd := workstation(t, b, append([]string{"status", "-o", "json"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("workstation: kubectl etcd status -o json %s (%s): %v\nstderr:\n%s", strings.Join(args, " "), time.Since(start).Round(10*time.Millisecond), err, stderr.String())
	var st statusRows
	if err == nil {
		if jerr := json.Unmarshal(stdout.Bytes(), &st); jerr != nil {
			t.Fatalf("status -o json is not JSON: %v\n%s", jerr, stdout.String())
		}
	}
	return st, stderr.String(), err
}

// wantStatusRows checks that the rows are the members etcd lists (names and
// IDs, from etcdctl on h1), each healthy on its own host, one leader.
func wantStatusRows(t *testing.T, b *testbed.Bed, st statusRows, what string) {
	t.Helper()
	out, err := etcdctl(context.Background(), b.Host("h1"), "member", "list")
	if err != nil {
		t.Fatalf("etcdctl member list on h1: %v\n%s", err, out)
	}
	var want, got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, ", ")
		want = append(want, f[2]+" "+f[0])
	}
	leaders := 0
	for _, m := range st.Members {
		got = append(got, m.Name+" "+m.ID)
		if !m.Healthy || m.Learner || m.Host != m.Name || m.Error != "" {
			t.Errorf("%s: member row %+v", what, m)
		}
		if m.ServerCertNotAfter == nil || time.Until(*m.ServerCertNotAfter) < 300*24*time.Hour {
			t.Errorf("%s: member %s: serving certificate expiry %v, want kubeadm's year ahead", what, m.Name, m.ServerCertNotAfter)
		}
		if m.Leader {
			leaders++
		}
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") || leaders != 1 {
		t.Errorf("%s: rows %v (%d leaders), want the members %v and one leader", what, got, leaders, want)
	}
}

// checkStatusPaths: status reads etcd with the etcd pods' etcdctl and makes
// no pod; when exec is forbidden it says so in one stderr line and reads
// through a host pod instead, with the same rows; `--via exec` then fails
// and makes nothing. The cluster's members must all be healthy.
func checkStatusPaths(t *testing.T, b *testbed.Bed) {
	t.Helper()
	stop := watchHostPods(t, b)
	st, stderr, err := statusRun(t, b)
	if created := stop(); err != nil || len(created) > 0 || stderr != "" {
		t.Fatalf("status: %v; host pods created: %v; stderr %q (want none)", err, created, stderr)
	}
	wantStatusRows(t, b, st, "status")

	// A user allowed all the host-pod path needs, but not pods/exec.
	const user = "e2e-status-no-exec"
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "pods/attach", "pods/portforward", "pods/log", "nodes", "namespaces", "configmaps", "events"},
			Verbs: []string{"get", "list", "watch", "create", "delete", "deletecollection", "patch", "update"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch"}},
	}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), user, metav1.DeleteOptions{})
		cs.RbacV1().ClusterRoles().Delete(context.Background(), user, metav1.DeleteOptions{})
	})
	// The apiserver's RBAC informer takes a moment to see them.
	time.Sleep(2 * time.Second)

	stop = watchHostPods(t, b)
	st, stderr, err = statusRun(t, b, "--as", user)
	created := stop()
	if err != nil {
		t.Fatalf("status as %s: %v", user, err)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if !strings.HasPrefix(lines[0], "status: etcdctl in the etcd pods did not answer (") || !strings.Contains(lines[0], "forbidden") ||
		!strings.Contains(lines[0], `resource "pods/exec"`) || !strings.HasSuffix(lines[0], "; reading etcd through a host pod instead") {
		t.Errorf("status as %s: first stderr line %q, want the fallback's reason (exec forbidden)", user, lines[0])
	}
	if len(created) == 0 {
		t.Errorf("status as %s fell back but no host pod was seen", user)
	}
	wantStatusRows(t, b, st, "status as "+user)

	stop = watchHostPods(t, b)
	_, stderr, err = statusRun(t, b, "--as", user, "--via", "exec")
	if created := stop(); err == nil || !strings.Contains(stderr, `resource "pods/exec"`) || strings.Contains(stderr, "host pod") || len(created) > 0 {
		t.Errorf("status --via exec as %s: %v, host pods %v, stderr %q; want it to fail on the forbidden exec and make no pod", user, err, created, stderr)
	}
	noHostPodsLeft(t, b)
}
