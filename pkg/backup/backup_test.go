package backup

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-etcd/kubectl-etcd/internal/etcdtest"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/snapshot"
)

func TestParseEvery(t *testing.T) {
	good := map[string]string{
		"1m": "* * * * *", "5m": "*/5 * * * *", "30m": "*/30 * * * *", "60m": "0 * * * *",
		"1h": "0 * * * *", "2h": "0 */2 * * *", "6h": "0 */6 * * *", "12h": "0 */12 * * *",
		"24h": "0 0 * * *", "120m": "0 */2 * * *",
	}
	for in, want := range good {
		got, _, err := ParseEvery(in)
		if err != nil || got != want {
			t.Errorf("ParseEvery(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"30s": "shortest interval is 1m", "0": "shortest", "-1h": "shortest", "90s": "whole minutes",
		"7m": "does not divide an hour", "45m": "does not divide an hour", "90m": "whole hours",
		"5h": "does not divide a day", "48h": "does not divide a day", "1d": "not an interval", "": "not an interval",
		"hourly": "not an interval",
	}
	for in, want := range bad {
		_, _, err := ParseEvery(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseEvery(%q) = %v; want an error containing %q", in, err, want)
		}
	}
}

func TestCronJob(t *testing.T) {
	cj, err := CronJob(Schedule{Every: "1h", Keep: 24, Node: "cp-1", Image: "example.org/kubectl-etcd:v1"})
	if err != nil {
		t.Fatal(err)
	}
	s := cj.Spec
	if cj.Name != CronJobName || cj.Namespace != "kube-system" || s.Schedule != "0 * * * *" {
		t.Errorf("name/namespace/schedule: %s/%s %q", cj.Namespace, cj.Name, s.Schedule)
	}
	if s.ConcurrencyPolicy != "Forbid" || s.SuccessfulJobsHistoryLimit == nil || s.FailedJobsHistoryLimit == nil ||
		s.JobTemplate.Spec.ActiveDeadlineSeconds == nil || *s.JobTemplate.Spec.ActiveDeadlineSeconds != 600 {
		t.Errorf("run limits: %+v", s)
	}
	pod := s.JobTemplate.Spec.Template.Spec
	if !pod.HostNetwork || pod.RestartPolicy != corev1.RestartPolicyNever || pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("pod: hostNetwork %v restart %s token %v", pod.HostNetwork, pod.RestartPolicy, pod.AutomountServiceAccountToken)
	}
	if v, ok := pod.NodeSelector["node-role.kubernetes.io/control-plane"]; !ok || v != "" || pod.NodeSelector["kubernetes.io/hostname"] != "cp-1" {
		t.Errorf("nodeSelector %v", pod.NodeSelector)
	}
	if !slices.ContainsFunc(pod.Tolerations, func(tl corev1.Toleration) bool {
		return tl.Key == "node-role.kubernetes.io/control-plane" && tl.Operator == corev1.TolerationOpExists
	}) {
		t.Errorf("tolerations %v", pod.Tolerations)
	}
	c := pod.Containers[0]
	if c.Image != "example.org/kubectl-etcd:v1" {
		t.Errorf("image %s", c.Image)
	}
	cmd := strings.Join(c.Command, " ")
	for _, want := range []string{"kubectl-etcd backup run", "--host-root=/host", "--keep=24", "--reason=scheduled", "--node-name=$(KUBECTL_ETCD_NODE_NAME)"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("command %q lacks %q", cmd, want)
		}
	}
	// No secret material anywhere in the spec: no env from Secrets, no
	// key files or PEM in args, no Secret volumes.
	raw, _ := json.Marshal(cj)
	for _, bad := range []string{"PRIVATE KEY", "ca.key", "secretKeyRef", `"secret":`, "BEGIN"} {
		if strings.Contains(string(raw), bad) {
			t.Errorf("the CronJob contains %q", bad)
		}
	}
	for _, e := range c.Env {
		if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil {
			t.Errorf("env %s is not a downward-API field: %+v", e.Name, e)
		}
	}
	sc := c.SecurityContext
	if sc == nil || sc.Privileged != nil && *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("securityContext %+v", sc)
	}
	// hostPath: the etcd PKI and the manifests read-only, the backup dir
	// the only writable one.
	hostPaths := map[string]string{}
	for _, v := range pod.Volumes {
		if v.HostPath == nil {
			t.Errorf("volume %s is not a hostPath", v.Name)
			continue
		}
		hostPaths[v.Name] = v.HostPath.Path
	}
	// Of the etcd PKI, kubeadm's client certificate and the CA's
	// certificate, each file alone: never the directory, with the CA key.
	want := map[string]string{"etcd-ca-crt": "/etc/kubernetes/pki/etcd/ca.crt", "etcd-client-crt": "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
		"etcd-client-key": "/etc/kubernetes/pki/etcd/healthcheck-client.key", "manifests": "/etc/kubernetes/manifests", "backups": Dir}
	if len(hostPaths) != len(want) {
		t.Errorf("hostPath volumes %v, want exactly %v", hostPaths, want)
	}
	for _, v := range pod.Volumes {
		if strings.HasPrefix(v.Name, "etcd-") && (v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathFile) {
			t.Errorf("volume %s is not a single file", v.Name)
		}
	}
	// Only on a node with an etcd member (its static pod), and the run's
	// own timeout inside the Job's deadline.
	aff := pod.Affinity
	if aff == nil || aff.PodAffinity == nil || len(aff.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Fatalf("affinity %+v: want a required pod affinity to the etcd pods", aff)
	}
	term := aff.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0]
	if term.TopologyKey != "kubernetes.io/hostname" || term.LabelSelector == nil || term.LabelSelector.MatchLabels["component"] != "etcd" || !slices.Equal(term.Namespaces, []string{"kube-system"}) {
		t.Errorf("pod affinity term %+v", term)
	}
	if !strings.Contains(cmd, "--timeout=9m0s") {
		t.Errorf("command %q: want the run's timeout (9m) inside the Job's 10 min deadline", cmd)
	}
	for name, p := range want {
		if hostPaths[name] != p {
			t.Errorf("volume %s: hostPath %q, want %q", name, hostPaths[name], p)
		}
	}
	for _, m := range c.VolumeMounts {
		if m.MountPath != "/host"+hostPaths[m.Name] {
			t.Errorf("mount %s at %s, want /host%s", m.Name, m.MountPath, hostPaths[m.Name])
		}
		if m.ReadOnly != (m.Name != "backups") {
			t.Errorf("mount %s readOnly=%v", m.Name, m.ReadOnly)
		}
	}

	// Without --node: any control-plane node.
	cj, err = CronJob(Schedule{Every: "15m", Keep: 3, Image: "x", EtcdPKIDir: "/srv/pki/etcd"})
	if err != nil {
		t.Fatal(err)
	}
	if _, pinned := cj.Spec.JobTemplate.Spec.Template.Spec.NodeSelector["kubernetes.io/hostname"]; pinned || cj.Spec.Schedule != "*/15 * * * *" {
		t.Errorf("unpinned: %v %q", cj.Spec.JobTemplate.Spec.Template.Spec.NodeSelector, cj.Spec.Schedule)
	}
	if p := cj.Spec.JobTemplate.Spec.Template.Spec.Volumes[0].HostPath.Path; p != "/srv/pki/etcd/ca.crt" {
		t.Errorf("custom certificatesDir ignored: %s", p)
	}

	// Values cannot break out of their YAML scalar.
	if _, err := CronJob(Schedule{Every: "1h", Keep: 1, Image: "x\"\n  evil: true"}); err != nil {
		t.Errorf("odd image string: %v", err)
	}
	for _, s := range []Schedule{{Every: "7m", Keep: 1, Image: "x"}, {Every: "1h", Keep: 0, Image: "x"}, {Every: "1h", Keep: 1}, {Every: "1h", Keep: 1, Image: "x", Dir: "rel/dir"}} {
		if _, err := CronJob(s); err == nil {
			t.Errorf("CronJob(%+v) accepted", s)
		}
	}
}

func entry(name string, verified bool) Entry {
	m := nameRE.FindStringSubmatch(name)
	tm, _ := time.Parse(timeFormat, m[1])
	return Entry{Name: name, Time: tm, Verified: verified}
}

func TestPlanPrune(t *testing.T) {
	es := []Entry{ // newest first
		entry("etcd-20260105T000000Z-scheduled.db", true),
		entry("etcd-20260104T000000Z-pre-scale.db", false), // unverified, newer than the kept ones
		entry("etcd-20260103T000000Z-scheduled.db", true),
		entry("etcd-20260102T000000Z-scheduled.db", true),
		entry("etcd-20260101T120000Z-scheduled.db", false),
		entry("etcd-20260101T000000Z-scheduled.db", true),
	}
	kept, removed := PlanPrune(es, 2, es[0].Name)
	if got := names(kept); !slices.Equal(got, []string{es[0].Name, es[1].Name, es[2].Name}) {
		t.Errorf("kept %v", got)
	}
	if got := names(removed); !slices.Equal(got, []string{es[3].Name, es[4].Name, es[5].Name}) {
		t.Errorf("removed %v", got)
	}
	// The protected one is kept even if it is not the newest by name.
	kept, _ = PlanPrune(es, 1, es[5].Name)
	if got := names(kept); !slices.Equal(got, names(es)) {
		t.Errorf("protecting the oldest keeps everything newer: %v", got)
	}
	if kept, removed := PlanPrune(es, 0, ""); len(kept) != len(es) || len(removed) != 0 {
		t.Errorf("keep 0 must keep all")
	}
	if kept, removed := PlanPrune(es, 10, es[0].Name); len(kept) != len(es) || len(removed) != 0 {
		t.Errorf("keep 10 of 6 must keep all")
	}
}

// clock hands out times an hour apart.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestRunKeepsNewest(t *testing.T) {
	c := etcdtest.StartCluster(t, 1)
	client, err := etcdcluster.New(etcdcluster.Config{Endpoints: c.Endpoints(), TLS: c.ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	src := snapshot.Member{Client: client, Endpoint: c.Members[0].ClientURL}
	dir := filepath.Join(t.TempDir(), "backups")
	ctx := context.Background()

	// Not ours: must survive every prune.
	os.MkdirAll(dir, 0o755)
	foreign := []string{"etcd-snapshot.db", "etcd-20200101T000000Z-Manual.db", "notes.txt"}
	for _, f := range foreign {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600)
	}
	// A leftover of a killed run.
	os.WriteFile(filepath.Join(dir, "etcd-20200101T000000Z-scheduled.db.part"), []byte("half"), 0o600)
	os.WriteFile(filepath.Join(dir, "etcd-20200101T010000Z-scheduled.db.8675309.part"), []byte("half"), 0o600)

	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var taken []string
	for i := range 4 {
		if _, err := c.Client().Put(ctx, "k", strings.Repeat("v", i)); err != nil {
			t.Fatal(err)
		}
		res, err := Run(ctx, src, RunOptions{Dir: dir, Reason: "scheduled", Keep: 2, Now: clk.now, Node: "cp-1"})
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "holds files other than backups, so its mode (0755) was left as it is") {
			t.Errorf("run %d: problems %q; want the mode left alone said", i, res.Problems)
		}
		if res.Snapshot == nil || res.Snapshot.Node != "cp-1" || res.Snapshot.Revision == 0 || !res.Snapshot.IntegrityHash {
			t.Errorf("run %d: facts %+v", i, res.Snapshot)
		}
		taken = append(taken, filepath.Base(res.File))
		clk.t = clk.t.Add(time.Hour)
	}
	// It holds the user's files too: not restricted to root.
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("backup dir (with other files) mode %v, want it left 0755", fi.Mode().Perm())
	}
	// A directory of its own (made by the kubelet 0755, or by the run) is.
	own := filepath.Join(t.TempDir(), "own")
	os.Mkdir(own, 0o755)
	if res, err := Run(ctx, src, RunOptions{Dir: own, Reason: "scheduled", Keep: 2, Now: clk.now}); err != nil || len(res.Problems) != 0 {
		t.Fatalf("run into a directory of its own: %v, problems %q", err, res.Problems)
	}
	if fi, err := os.Stat(own); err != nil || fi.Mode().Perm() != DirMode {
		t.Errorf("a backup directory of its own: mode %v, want 0700", fi.Mode().Perm())
	}
	entries, err := List(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(entries); !slices.Equal(got, []string{taken[3], taken[2]}) {
		t.Errorf("after 4 runs with --keep 2: %v, want the last two %v", got, taken[2:])
	}
	for _, e := range entries {
		if !e.Verified || e.Info == nil || e.Info.SHA256 == "" {
			t.Errorf("%s not verified: %+v", e.Name, e)
		}
	}
	for _, f := range foreign {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("foreign file %s removed: %v", f, err)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.part"))
	if len(left) != 0 {
		t.Errorf(".part leftovers: %v", left)
	}
	if got, _ := filepath.Glob(filepath.Join(dir, "etcd-*-scheduled.db.json")); len(got) != 2 {
		t.Errorf("sidecars %v", got)
	}

	// A backup damaged on disk is reported, not counted as kept.
	damaged := filepath.Join(dir, taken[3])
	os.Truncate(damaged, 4096)
	entries, _ = List(dir, false)
	if entries[0].Verified || !strings.Contains(entries[0].Problem, "differs") {
		t.Errorf("damaged backup: %+v", entries[0])
	}

	// A failed snapshot removes nothing.
	before, _ := os.ReadDir(dir)
	c.Members[0].Stop()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := Run(cctx, src, RunOptions{Dir: dir, Reason: "scheduled", Keep: 1, Now: clk.now}); err == nil {
		t.Fatal("run against a stopped member succeeded")
	}
	after, _ := os.ReadDir(dir)
	if len(after) != len(before) {
		t.Errorf("a failed run changed the directory: %d -> %d entries", len(before), len(after))
	}

	// Dry run: says what it would do, does nothing.
	res, err := Run(ctx, src, RunOptions{Dir: dir, Reason: "pre-scale", Keep: 1, Now: clk.now, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.DryRun || !strings.HasSuffix(res.File, Name(clk.t, "pre-scale")) || len(res.Removed) == 0 {
		t.Errorf("dry run: %+v", res)
	}
	if again, _ := os.ReadDir(dir); len(again) != len(before) {
		t.Errorf("dry run changed the directory")
	}
	if _, err := Run(ctx, src, RunOptions{Dir: dir, Reason: "Bad Reason"}); err == nil || !strings.Contains(err.Error(), "lowercase") {
		t.Errorf("bad reason: %v", err)
	}
}

func TestRunSameSecond(t *testing.T) {
	c := etcdtest.StartCluster(t, 1)
	client, err := etcdcluster.New(etcdcluster.Config{Endpoints: c.Endpoints(), TLS: c.ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	src := snapshot.Member{Client: client, Endpoint: c.Members[0].ClientURL}
	dir := t.TempDir()
	var files []string
	for range 2 {
		res, err := Run(context.Background(), src, RunOptions{Dir: dir, Reason: "manual"})
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, res.File)
	}
	if files[0] == files[1] {
		t.Errorf("two runs, one name: %s", files[0])
	}
}

func TestCheckDir(t *testing.T) {
	avoid := map[string]string{"/var/lib/etcd": "etcd's data dir", "/etc/kubernetes": "kubeadm's"}
	for dir, want := range map[string]string{
		"/":                             "not the filesystem's root or a top-level directory",
		"/var":                          "not the filesystem's root or a top-level directory",
		"/var/lib/etcd":                 "not in or above /var/lib/etcd (etcd's data dir)",
		"/var/lib/etcd/backups":         "not in or above /var/lib/etcd",
		"/var/lib":                      "not in or above /var/lib/etcd",
		"/etc/kubernetes/pki":           "not in or above /etc/kubernetes (kubeadm's)",
		"backups":                       "give an absolute path",
		"/var/lib/kubectl-etcd/backups": "",
		"/srv/etcd-backups":             "",
		"/var/lib/etcd-backups":         "",
	} {
		err := CheckDir(dir, avoid)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckDir(%s) = %v; want %q", dir, err, want)
		}
	}
}
