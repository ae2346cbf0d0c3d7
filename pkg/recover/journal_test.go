package recover

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcddata"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// testNow is the clock of the test hosts: names of copies and retired
// journals are stamped with it.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testEnv is a host-local Env on a temporary host root (as the pkg/hostlocal
// tests build theirs): cp-1 at 127.0.0.1, kubeadm's default layout, nothing
// on it yet, its clock at testNow.
func testEnv(t *testing.T) *hostlocal.Env {
	t.Helper()
	h := staticpod.NewHost(t.TempDir())
	h.Now = func() time.Time { return testNow }
	cfgFile := filepath.Join(t.TempDir(), "kubeadm.yaml")
	if err := os.WriteFile(cfgFile, []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := h.LoadConfig(context.Background(), staticpod.ConfigOptions{ConfigFile: cfgFile, NodeName: "cp-1", AdvertiseAddress: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return &hostlocal.Env{Host: h, Config: cfg, Out: &bytes.Buffer{}, Timeouts: hostlocal.DefaultTimeouts()}
}

// unfinished is the journal of a recover that got past its survey: cp-1's
// member 1a of cluster c1, cutting off cp-2 and cp-3.
func unfinished() *journal {
	return &journal{Verb: "recover", Started: testNow.Add(-time.Hour), Node: "cp-1", MemberID: 0x1a, ClusterID: 0xc1, Index: 120, Revision: 60,
		Old: []etcddata.Member{
			{ID: 0x2b, Name: "cp-2", PeerURLs: []string{"https://10.0.0.2:2380"}},
			{ID: 0x3c, Name: "cp-3", PeerURLs: []string{"https://10.0.0.3:2380"}},
		}}
}

func stepNames(p *plan.Plan) []string {
	var out []string
	for _, s := range p.Steps {
		out = append(out, s.Name)
	}
	return out
}

func findStep(t *testing.T, p *plan.Plan, name string) plan.Step {
	t.Helper()
	for _, s := range p.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("the plan has no step %q: %v", name, stepNames(p))
	return plan.Step{}
}

// TestPlanStepsByJournal: the plan a (re)run makes from what the journal
// records. What is done is not done again: above all, the data is copied
// only while no copy is recorded (one "before" copy, never a copy of a
// half-recovered dir), and force-new-cluster is not planned again once the
// normal manifest is written. Whether kubelet may be restarted picks the
// switch-over (restart, or bridge the apiserver until kubelet syncs); a
// restart comes with the apiserver parked, in every state (a rerun may
// restart kubelet again).
func TestPlanStepsByJournal(t *testing.T) {
	const copied = "/var/lib/etcd.before-recover-20260301T110000Z"
	for _, tc := range []struct {
		name    string
		journal func(j *journal)
		restart bool
		want    []string
	}{
		{"fresh", func(*journal) {}, true, []string{"park apiserver", "stop local etcd", "copy data dir", "force new cluster (quarantined)", "verify", "marker",
			"single-member manifest", "restart kubelet", "etcd", "apiserver", "finish"}},
		{"fresh, kubelet not restartable", func(*journal) {}, false, []string{"stop local etcd", "copy data dir", "force new cluster (quarantined)", "verify", "marker",
			"bridge apiserver", "single-member manifest", "apiserver", "finish"}},
		{"copied", func(j *journal) { j.Copy = copied }, true, []string{"park apiserver", "force new cluster (quarantined)", "verify", "marker",
			"single-member manifest", "restart kubelet", "etcd", "apiserver", "finish"}},
		{"copied, kubelet not restartable", func(j *journal) { j.Copy = copied }, false, []string{"force new cluster (quarantined)", "verify", "marker",
			"bridge apiserver", "single-member manifest", "apiserver", "finish"}},
		// The quarantine step itself tells a written manifest from a missing
		// one (see TestQuarantineStep); the plan is the same.
		{"quarantined", func(j *journal) { j.Copy, j.Quarantined = copied, true }, true, []string{"park apiserver", "force new cluster (quarantined)", "verify", "marker",
			"single-member manifest", "restart kubelet", "etcd", "apiserver", "finish"}},
		{"quarantined, kubelet not restartable", func(j *journal) { j.Copy, j.Quarantined = copied, true }, false, []string{"force new cluster (quarantined)", "verify", "marker",
			"bridge apiserver", "single-member manifest", "apiserver", "finish"}},
		{"normal manifest written", func(j *journal) { j.Copy, j.Quarantined, j.NormalWritten = copied, true, true }, true, []string{"park apiserver", "restart kubelet", "etcd", "apiserver", "finish"}},
		{"normal manifest written, kubelet not restartable", func(j *journal) { j.Copy, j.Quarantined, j.NormalWritten = copied, true, true }, false, []string{"apiserver", "finish"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := unfinished()
			tc.journal(j)
			r := &Recovery{env: testEnv(t), j: j, restartKubelet: tc.restart}
			p := r.planSteps()
			if got := stepNames(p); !slices.Equal(got, tc.want) {
				t.Errorf("steps\n got %q\nwant %q", got, tc.want)
			}
			for _, want := range []string{"etcd cluster c1", "member 1a, raft index 120, revision 60", "cp-2 (2b), cp-3 (3c)"} {
				if !strings.Contains(p.Title, want) {
					t.Errorf("title %q lacks %q", p.Title, want)
				}
			}
		})
	}
}

// TestQuarantineStep: on a rerun, the quarantine step writes the manifest
// (and restarts kubelet) again only when the journal does not record it or
// it is gone from the manifests dir; it stops a running etcd only when no
// quarantine pod is there to be that etcd; and it checks the quarantine port
// is free only while no quarantine manifest was written (after that, its own
// member may hold it).
func TestQuarantineStep(t *testing.T) {
	for _, tc := range []struct {
		name                                    string
		quarantined, manifestThere, etcdRunning bool
		want                                    quarantineAction
	}{
		{"first time, old member still running", false, false, true, quarantineAction{write: true, stopEtcd: true, checkPort: true}},
		{"first time, old member stopped", false, false, false, quarantineAction{write: true, checkPort: true}},
		// Its member may hold the port (CI saw it: "the quarantine port
		// 2479 is in use" on the rerun after a SIGKILL).
		{"killed after writing the manifest, before the journal: its member runs", false, true, true, quarantineAction{write: true}},
		{"killed after writing the manifest, before the journal: not started yet", false, true, false, quarantineAction{write: true}},
		{"recorded and in place, member running", true, true, true, quarantineAction{}},
		{"recorded and in place, member not up yet", true, true, false, quarantineAction{}},
		{"recorded but the manifest is gone, an etcd runs", true, false, true, quarantineAction{write: true, stopEtcd: true}},
		{"recorded but the manifest is gone, no etcd", true, false, false, quarantineAction{write: true}},
	} {
		if got := quarantineStep(tc.quarantined, tc.manifestThere, tc.etcdRunning); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// writeJournal puts j on the host as an earlier run would have left it.
func writeJournal(t *testing.T, h *staticpod.Host, j *journal) {
	t.Helper()
	if err := j.save(h); err != nil {
		t.Fatal(err)
	}
}

// TestPlanRecoverCarriesOnFromJournal: a rerun with an unfinished recover's
// journal plans from the journal, without surveying (with the quorum gone and
// this host's etcd half-switched, a new survey would read the wrong facts),
// and says so. On a host root that is not / kubelet is not restarted, so the
// switch-over is the bridge.
func TestPlanRecoverCarriesOnFromJournal(t *testing.T) {
	e := testEnv(t)
	j := unfinished()
	j.Copy = "/var/lib/etcd.before-recover-20260301T110000Z"
	writeJournal(t, e.Host, j)
	r, err := PlanRecover(context.Background(), e, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"force new cluster (quarantined)", "verify", "marker", "bridge apiserver", "single-member manifest", "apiserver", "finish"}
	if got := stepNames(r.Plan); !slices.Equal(got, want) {
		t.Errorf("steps\n got %q\nwant %q", got, want)
	}
	if r.Res.Survey != nil {
		t.Error("a rerun with a journal surveyed again")
	}
	notes := strings.Join(r.Res.Notes, "\n")
	for _, want := range []string{"carrying on with the recovery started 2026-03-01T11:00:00Z (journal /etc/kubernetes/kubectl-etcd/recovery.json)", "kubelet is not restarted"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if next := strings.Join(r.Res.Next, "\n"); !strings.Contains(next, "cp-2 (old member 2b") || !strings.Contains(next, "cp-3 (old member 3c") {
		t.Errorf("next steps do not name the members cut off:\n%s", next)
	}
}

// TestPlanRecoverJournalRefusals: a journal of another verb, or one that
// cannot be read, stops recover before it changes anything, saying what to do.
func TestPlanRecoverJournalRefusals(t *testing.T) {
	t.Run("unfinished restore", func(t *testing.T) {
		e := testEnv(t)
		j := unfinished()
		j.Verb = "restore"
		writeJournal(t, e.Host, j)
		before := tree(t, e.Host.Root)
		_, err := PlanRecover(context.Background(), e, Options{})
		want := "an unfinished restore is recorded in /etc/kubernetes/kubectl-etcd/recovery.json (started 2026-03-01T11:00:00Z): run `kubectl-etcd restore` again to finish it first"
		if err == nil || err.Error() != want {
			t.Errorf("error %v\nwant %s", err, want)
		}
		if tree(t, e.Host.Root) != before {
			t.Error("the refused recover changed the host")
		}
	})
	t.Run("damaged", func(t *testing.T) {
		e := testEnv(t)
		p := e.Host.Path(journalPath(e.Host))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		// A journal cut short (an editor, a full disk: save itself never
		// leaves half a file).
		if err := os.WriteFile(p, []byte(`{"verb":"recover","started":"2026-03-01T11:00:00Z","copy":"/var/li`), 0o600); err != nil {
			t.Fatal(err)
		}
		before := tree(t, e.Host.Root)
		_, err := PlanRecover(context.Background(), e, Options{})
		if err == nil || !strings.HasPrefix(err.Error(), "the recovery journal /etc/kubernetes/kubectl-etcd/recovery.json is damaged (") ||
			!strings.HasSuffix(err.Error(), "): look at it, move it away, and rerun") {
			t.Errorf("error %v, want it to name the journal and say to look at it and move it away", err)
		}
		if tree(t, e.Host.Root) != before {
			t.Error("the refused recover changed the host")
		}
	})
}

// TestPlanRecoverRetiresFinishedJournal: a finished recovery's journal is
// kept under a dated name and a new recovery starts from a new survey (here
// it finds no CA, so it stops there); a dry run leaves the journal alone.
func TestPlanRecoverRetiresFinishedJournal(t *testing.T) {
	for _, dryRun := range []bool{true, false} {
		e := testEnv(t)
		e.DryRun = dryRun
		j := unfinished()
		j.Copy, j.Quarantined, j.NormalWritten, j.Done, j.Finished = "/var/lib/etcd.before-recover-x", true, true, true, testNow.Add(-30*time.Minute)
		writeJournal(t, e.Host, j)
		raw, _ := os.ReadFile(e.Host.Path(journalPath(e.Host)))
		_, err := PlanRecover(context.Background(), e, Options{})
		if err == nil || !strings.Contains(err.Error(), "loading /etc/kubernetes/pki/etcd/ca.crt") {
			t.Errorf("dry run %v: error %v, want the new survey's (no etcd CA on this host)", dryRun, err)
		}
		retired := e.Host.Path(journalPath(e.Host)) + ".recover-20260301T113000Z"
		kept, _ := os.ReadFile(retired)
		_, statErr := os.Stat(e.Host.Path(journalPath(e.Host)))
		switch {
		case dryRun && (statErr != nil || kept != nil):
			t.Errorf("a dry run retired the journal (%v)", statErr)
		case !dryRun && (!os.IsNotExist(statErr) || !bytes.Equal(kept, raw)):
			t.Errorf("the finished journal was not kept whole as %s (journal still there: %v)", retired, statErr == nil)
		}
	}
}

// TestCopyDataDirStepCopiesOnce runs the plan's "copy data dir" step alone
// on a host with a stopped member's data: the copy is made next to the data
// dir, recorded in the journal (as the host's path) before the step ends, and
// the plan a rerun makes from that journal has no copy step, so whatever
// happens later there is one copy, of the data as it was before.
func TestCopyDataDirStepCopiesOnce(t *testing.T) {
	e := testEnv(t)
	h := e.Host
	data := map[string]string{"member/snap/db": "bolt db bytes", "member/wal/0000000000000000-0000000000000000.wal": "wal bytes"}
	for name, content := range data {
		p := filepath.Join(h.Path("/var/lib/etcd"), name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := &Recovery{env: e, j: unfinished(), restartKubelet: true}
	note, err := findStep(t, r.planSteps(), "copy data dir").Run(context.Background())
	const copyPath = "/var/lib/etcd.before-recover-20260301T120000Z"
	if err != nil || note != "copied to "+copyPath {
		t.Fatalf("copy data dir: %q, %v", note, err)
	}
	for name, content := range data {
		if got, err := os.ReadFile(filepath.Join(h.Path(copyPath), name)); err != nil || string(got) != content {
			t.Errorf("the copy's %s: %q, %v", name, got, err)
		}
	}
	saved, err := loadJournal(h)
	if err != nil || saved == nil || saved.Copy != copyPath {
		t.Fatalf("the journal records copy %+v (%v), want %s", saved, err, copyPath)
	}
	rerun := &Recovery{env: e, j: saved, restartKubelet: true}
	for _, name := range stepNames(rerun.planSteps()) {
		if name == "copy data dir" || name == "stop local etcd" {
			t.Errorf("the rerun's plan has %q again", name)
		}
	}
	copies, _ := filepath.Glob(h.Path("/var/lib/etcd.before-recover-*"))
	inside, _ := filepath.Glob(h.Path("/var/lib/etcd/" + etcddata.AsidePrefix + "*"))
	if len(copies) != 1 || len(inside) != 0 {
		t.Errorf("want exactly one copy, got %v and %v", copies, inside)
	}
}

// TestFinishStepRetiresJournal: the last step records the end and keeps the
// journal under its dated name, so the next recover starts afresh.
func TestFinishStepRetiresJournal(t *testing.T) {
	e := testEnv(t)
	j := unfinished()
	j.Copy, j.Quarantined, j.NormalWritten = "/var/lib/etcd.before-recover-x", true, true
	writeJournal(t, e.Host, j)
	r := &Recovery{env: e, j: j}
	if _, err := findStep(t, r.planSteps(), "finish").Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.Host.Path(journalPath(e.Host))); !os.IsNotExist(err) {
		t.Errorf("the journal is still in place: %v", err)
	}
	raw, err := os.ReadFile(e.Host.Path(journalPath(e.Host)) + ".recover-20260301T120000Z")
	if err != nil {
		t.Fatal(err)
	}
	var kept journal
	if err := json.Unmarshal(raw, &kept); err != nil || !kept.Done || !kept.Finished.Equal(testNow) || kept.Copy != j.Copy {
		t.Errorf("the retired journal %s (%v): want it done at %s, its copy recorded", raw, err, testNow)
	}
	if j, err := loadJournal(e.Host); j != nil || err != nil {
		t.Errorf("after finish, loadJournal = %+v, %v; want none", j, err)
	}
}

// TestJournalSave: what save writes, load reads back; a save that fails
// leaves nothing half-written beside the journal.
func TestJournalSave(t *testing.T) {
	e := testEnv(t)
	h := e.Host
	j := unfinished()
	j.Copy, j.Quarantined, j.Here = "/var/lib/etcd.before-recover-x", true, true
	writeJournal(t, h, j)
	got, err := loadJournal(h)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(j)
	b, _ := json.Marshal(got)
	if !bytes.Equal(a, b) {
		t.Errorf("loaded %s\nsaved  %s", b, a)
	}

	// The journal's name taken by a directory: the rename at the end fails.
	e2 := testEnv(t)
	p := e2.Host.Path(journalPath(e2.Host))
	if err := os.MkdirAll(filepath.Join(p, "in-the-way"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := j.save(e2.Host); err == nil || !strings.HasPrefix(err.Error(), "writing the recovery journal: /etc/kubernetes/kubectl-etcd/recovery.json: ") {
		t.Errorf("save over a directory: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		var names []string
		for _, d := range ents {
			names = append(names, d.Name())
		}
		t.Errorf("a failed save left %v", names)
	}
}

// tree lists every path under root with its size, to tell whether a run
// changed anything there.
func tree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + fi.Mode().String())
		if !fi.IsDir() {
			raw, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.Write(raw)
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
