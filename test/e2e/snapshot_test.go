//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/backup"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/snapshot"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// pluginJSON runs the plugin and decodes its stdout (progress goes to stderr).
func pluginJSON(t *testing.T, b *testbed.Bed, v any, args ...string) {
	t.Helper()
	start := time.Now()
	cmd := workstation(t, b, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("workstation: kubectl etcd %s (%s)\n%s%s", strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond), stderr.String(), out)
	if err != nil {
		t.Fatalf("kubectl etcd %s: %v", strings.Join(args, " "), err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("kubectl etcd %s: output is not JSON: %v", strings.Join(args, " "), err)
	}
}

// lastJSONLine decodes the last line of out that is a JSON object.
func lastJSONLine(t *testing.T, out string, v any) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "{") {
			if err := json.Unmarshal([]byte(lines[i]), v); err != nil {
				t.Fatalf("last JSON line: %v\n%s", err, lines[i])
			}
			return
		}
	}
	t.Fatalf("no JSON line in:\n%s", out)
}

// jsonFrom decodes the JSON document that starts at the first line of out
// beginning with "{" (progress lines come before it).
func jsonFrom(t *testing.T, out string, v any) {
	t.Helper()
	i := strings.Index(out, "\n{")
	if strings.HasPrefix(out, "{") {
		i = -1
	} else if i < 0 {
		t.Fatalf("no JSON in:\n%s", out)
	}
	if err := json.NewDecoder(strings.NewReader(out[i+1:])).Decode(v); err != nil {
		t.Fatalf("decoding JSON: %v\n%s", err, out)
	}
}

// storySnapshotAndBackups: snapshots from the workstation and on the host,
// checked by status; scheduled backups through the CronJob keep the newest
// two; damaged files are reported as such; unschedule removes the CronJob.
func storySnapshotAndBackups(t *testing.T, b *testbed.Bed) {
	h1 := b.Host("h1")
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Right after kubeadm init the token controller may not have made
	// kube-system's default service account yet, and pods (the host pods
	// too) cannot be created without it.
	waitFor(t, time.Minute, "the kube-system/default service account", func() bool {
		_, err := cs.CoreV1().ServiceAccounts("kube-system").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	// Something of our own in the snapshot.
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "snap-marker"},
		Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Workstation: streamed through the apiserver, verified, facts agree
	// with a fresh read of the file.
	// A FILE.part planted in the directory, a link to a file the
	// cluster's Secrets must not reach, is not followed (#15).
	dir := t.TempDir()
	path := filepath.Join(dir, "ws.db")
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("not yours"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, path+".part"); err != nil {
		t.Fatal(err)
	}
	var saved snapshot.Info
	pluginJSON(t, b, &saved, "snapshot", "save", path, "-o", "json")
	if b, _ := os.ReadFile(victim); string(b) != "not yours" {
		t.Errorf("the planted ws.db.part link was followed: its target holds %d bytes", len(b))
	}
	if saved.Revision == 0 || saved.TotalKeys < 100 || !saved.IntegrityHash || saved.Node != "h1" || saved.Endpoint != "https://"+h1.Address+":2379" {
		t.Errorf("workstation snapshot facts: %+v", saved)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != saved.Size || fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file: %v %v", fi, err)
	}
	if left, _ := filepath.Glob(path + ".*.part"); len(left) != 0 {
		t.Errorf("part files left: %v", left)
	}
	var st snapshot.Info
	pluginJSON(t, b, &st, "snapshot", "status", path, "-o", "json")
	if st.Revision != saved.Revision || st.TotalKeys != saved.TotalKeys || st.SHA256 != saved.SHA256 || st.Size != saved.Size || st.Hash != saved.Hash {
		t.Errorf("status %+v differs from save %+v", st, saved)
	}
	if out, err := plugin(t, b, "snapshot", "status", path); err != nil || !strings.Contains(out, fmt.Sprintf("revision:   %d", saved.Revision)) || !strings.Contains(out, saved.SHA256) {
		t.Errorf("status text: %v", err)
	}
	if out, err := plugin(t, b, "snapshot", "save", path); err == nil || !strings.Contains(out, "file exists") || !strings.Contains(out, "--force") {
		t.Errorf("saving over an existing file: %v", err)
	}
	if after, _ := os.Stat(path); after.ModTime() != fi.ModTime() {
		t.Errorf("the existing file was touched")
	}

	// Damaged copies: clear errors, nonzero exit.
	raw, _ := os.ReadFile(path)
	trunc := filepath.Join(dir, "truncated.db")
	os.WriteFile(trunc, raw[:len(raw)/2], 0o600)
	if out, err := plugin(t, b, "snapshot", "status", trunc); err == nil || !strings.Contains(out, "is truncated") {
		t.Errorf("truncated file: %v", err)
	}
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)/2] ^= 0xff
	corrupt := filepath.Join(dir, "corrupt.db")
	os.WriteFile(corrupt, flipped, 0o600)
	if out, err := plugin(t, b, "snapshot", "status", corrupt); err == nil || !strings.Contains(out, "is corrupted") {
		t.Errorf("corrupted file: %v", err)
	}

	// On the host, from the local member, with the host's certificates.
	// The bed host's /var/tmp is the machine's: a name of this run only,
	// removed afterwards, so an earlier run's file cannot get in the way.
	localDB := fmt.Sprintf("/var/tmp/e2esnap-local-%d.db", time.Now().UnixNano())
	t.Cleanup(func() { _, _ = h1.Exec(context.Background(), "rm", "-f", localDB) })
	out, err := kectl(t, h1, "snapshot", "save", localDB, "--local", "-o", "json")
	if err != nil {
		t.Fatalf("snapshot save --local: %v", err)
	}
	var local snapshot.Info
	jsonFrom(t, out, &local)
	if local.Revision < saved.Revision || local.Node != "h1" || local.Endpoint != "https://127.0.0.1:2379" || !local.IntegrityHash {
		t.Errorf("local snapshot facts: %+v", local)
	}
	if out, err := kectl(t, h1, "snapshot", "status", localDB); err != nil || !strings.Contains(out, local.SHA256) {
		t.Errorf("status on the host: %v", err)
	}
	hostRaw, err := h1.ReadFile(localDB)
	if err != nil {
		t.Fatal(err)
	}
	if err := h1.WriteFile("/var/tmp/cut.db", hostRaw[:len(hostRaw)-4096], 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := kectl(t, h1, "snapshot", "status", "/var/tmp/cut.db"); err == nil || !strings.Contains(out, "is truncated") {
		t.Errorf("truncated file on the host: %v", err)
	}

	// A backup as the lead's membership changes take it: last line JSON.
	out, err = kectl(t, h1, "backup", "run", "--reason", "pre-scale", "-o", "json")
	if err != nil {
		t.Fatalf("backup run: %v", err)
	}
	var run backup.RunResult
	lastJSONLine(t, out, &run)
	if !strings.HasPrefix(run.File, backup.Dir+"/etcd-") || !strings.HasSuffix(run.File, "-pre-scale.db") || run.Snapshot == nil || run.Snapshot.Revision == 0 {
		t.Errorf("backup run result: %+v", run)
	}

	// Scheduled backups: the CronJob, run three times by hand.
	var sched struct {
		Action   string `json:"action"`
		Schedule string `json:"schedule"`
	}
	pluginJSON(t, b, &sched, "backup", "schedule", "--every", "1h", "--keep", "2", "-o", "json")
	if sched.Action != "created" || sched.Schedule != "0 * * * *" {
		t.Errorf("schedule: %+v", sched)
	}
	pluginJSON(t, b, &sched, "backup", "schedule", "--every", "1h", "--keep", "2", "-o", "json")
	if sched.Action != "unchanged" {
		t.Errorf("schedule again: %+v", sched)
	}
	if out, err := plugin(t, b, "backup", "schedule", "--every", "90m"); err == nil || !strings.Contains(out, "whole hours") {
		t.Errorf("--every 90m: %v", err)
	}
	cj, err := cs.BatchV1().CronJobs("kube-system").Get(ctx, backup.CronJobName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cj.Spec.Schedule != "0 * * * *" {
		t.Errorf("a rejected schedule changed the CronJob: %q", cj.Spec.Schedule)
	}
	for i := range 3 {
		runJobFromCronJob(t, b, cj, fmt.Sprintf("kubectl-etcd-backup-e2e-%d", i))
	}

	var list struct {
		CronJob *struct {
			Schedule           string     `json:"schedule"`
			LastSuccessfulTime *time.Time `json:"lastSuccessfulTime"`
		} `json:"cronJob"`
		Nodes []struct {
			Node    string         `json:"node"`
			Backups []backup.Entry `json:"backups"`
			Error   string         `json:"error"`
		} `json:"nodes"`
	}
	pluginJSON(t, b, &list, "backup", "list", "-o", "json")
	if list.CronJob == nil || list.CronJob.Schedule != "0 * * * *" || list.CronJob.LastSuccessfulTime == nil {
		t.Errorf("list: CronJob %+v", list.CronJob)
	}
	if len(list.Nodes) != 1 || list.Nodes[0].Node != "h1" || list.Nodes[0].Error != "" {
		t.Fatalf("list nodes: %+v", list.Nodes)
	}
	got := list.Nodes[0].Backups
	if len(got) != 2 {
		t.Errorf("--keep 2 after 3 scheduled runs and one pre-scale: %d backups: %+v", len(got), got)
	}
	for _, e := range got {
		if !e.Verified || e.Reason != "scheduled" || e.Info == nil || e.Info.Revision == 0 || e.Info.Node != "h1" {
			t.Errorf("backup %+v", e)
		}
		if _, err := h1.ReadFile(e.Path); err != nil {
			t.Errorf("listed backup not on the host: %v", err)
		}
	}
	if out, err := plugin(t, b, "backup", "list"); err != nil || !strings.Contains(out, "h1: 2 backup(s)") {
		t.Errorf("backup list text: %v", err)
	}

	// Unschedule: CronJob and its Jobs go; the backups stay; a rerun is a no-op.
	if out, err := plugin(t, b, "backup", "unschedule"); err != nil || !strings.Contains(out, "deleted CronJob") {
		t.Errorf("unschedule: %v", err)
	}
	if _, err := cs.BatchV1().CronJobs("kube-system").Get(ctx, backup.CronJobName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("CronJob still there: %v", err)
	}
	if out, err := plugin(t, b, "backup", "unschedule"); err != nil || !strings.Contains(out, "nothing to do") {
		t.Errorf("unschedule again: %v", err)
	}
	if out, err := kectl(t, h1, "backup", "list", "--local"); err != nil || !strings.Contains(out, "2 backup(s)") {
		t.Errorf("backups after unschedule: %v", err)
	}
	noHostPodsLeft(t, b)
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// runJobFromCronJob does what `kubectl create job --from=cronjob/NAME` does
// and waits for the Job to complete.
func runJobFromCronJob(t *testing.T, b *testbed.Bed, cj *batchv1.CronJob, name string) {
	t.Helper()
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: cj.Namespace,
			Labels:      cj.Spec.JobTemplate.Labels,
			Annotations: map[string]string{"cronjob.kubernetes.io/instantiate": "manual"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: cj.Name, UID: cj.UID,
				Controller: ptr.To(true)}},
		},
		Spec: cj.Spec.JobTemplate.Spec,
	}
	start := time.Now()
	if _, err := cs.BatchV1().Jobs(cj.Namespace).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating Job %s: %v", name, err)
	}
	deadline := time.Now().Add(4 * time.Minute)
	for time.Now().Before(deadline) {
		j, err := cs.BatchV1().Jobs(cj.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, c := range j.Status.Conditions {
				if c.Status != corev1.ConditionTrue {
					continue
				}
				if c.Type == batchv1.JobComplete {
					t.Logf("Job %s completed in %s", name, time.Since(start).Round(100*time.Millisecond))
					return
				}
				if c.Type == batchv1.JobFailed {
					t.Fatalf("Job %s failed: %s\n%s", name, c.Message, jobLogs(t, b, name))
				}
			}
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("Job %s did not complete in 4 minutes\n%s", name, jobLogs(t, b, name))
}

func jobLogs(t *testing.T, b *testbed.Bed, job string) string {
	cs, err := b.Client()
	if err != nil {
		return err.Error()
	}
	ctx := context.Background()
	pods, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + job})
	if err != nil {
		return err.Error()
	}
	var out strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&out, "pod %s: %s %+v\n", p.Name, p.Status.Phase, p.Status.ContainerStatuses)
		raw, err := cs.CoreV1().Pods("kube-system").GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		fmt.Fprintf(&out, "%s %v\n", raw, err)
	}
	return out.String()
}
