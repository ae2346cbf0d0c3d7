package maintenance_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubectl-etcd/kubectl-etcd/internal/etcdtest"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/maintenance"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
)

const quota = 24 << 20

func byName(m etcdcluster.Member) string { return m.Name }

// planAll reads every member and defragments them all, in DefragTargets'
// order: the statuses and the targets.
func planAll(t *testing.T, ctx context.Context, cli *etcdcluster.Client) ([]etcdcluster.Status, []maintenance.DefragTarget) {
	t.Helper()
	statuses, err := cli.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	targets, err := maintenance.DefragTargets(statuses, byName, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	return statuses, targets
}

// clientOf is the client the tests decide with: members that do not answer
// are given 2 s.
func clientOf(t *testing.T, c *etcdtest.Cluster) *etcdcluster.Client {
	t.Helper()
	cli, err := etcdcluster.New(etcdcluster.Config{Endpoints: c.Endpoints(), TLS: c.ClientTLS(), MemberTimeout: 2 * time.Second, CallTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestNoSpaceRoundTrip fills a real 3-member cluster with a small quota
// until etcd raises NOSPACE, then frees the space the way the runbook says:
// delete what filled it, compact + defragment every member (leader last),
// disarm. Every write acknowledged before the alarm must still be readable,
// and a write after the disarm accepted.
func TestNoSpaceRoundTrip(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 3, fmt.Sprintf("--quota-backend-bytes=%d", quota))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cli := clientOf(t, c)
	raw := c.Client()

	// Acknowledged writes, then filler until etcd refuses.
	var acked []string
	for i := range 20 {
		k := fmt.Sprintf("/ack/%02d", i)
		if err := cli.Put(ctx, k, "v-"+k); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, k)
	}
	value := strings.Repeat("x", 512<<10)
	var full error
	for i := 0; i < 200 && full == nil; i++ {
		_, full = raw.Put(ctx, fmt.Sprintf("/fill/%03d", i), value)
	}
	if full == nil || !strings.Contains(full.Error(), "database space exceeded") {
		t.Fatalf("filling past a %d MiB quota: want etcd to refuse with NOSPACE, got %v", quota>>20, full)
	}

	statuses, err := cli.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	alarms := maintenance.ActiveAlarms(statuses)
	if len(alarms) == 0 || alarms[0].Type != etcdcluster.AlarmNoSpace {
		t.Fatalf("statuses show alarms %v, want NOSPACE", alarms)
	}
	listed, err := cli.Alarms(ctx)
	if err != nil || len(listed) != len(alarms) || listed[0] != alarms[0] {
		t.Errorf("Alarms() = %v, %v; statuses carry %v", listed, err, alarms)
	}
	if err := maintenance.CheckNoAlarms(statuses, byName, maintenance.WorkstationNames, 0); err == nil ||
		!strings.Contains(err.Error(), "NOSPACE alarm is raised") {
		t.Errorf("membership change under NOSPACE: want it refused, got %v", err)
	}
	if err := cli.Put(ctx, "/after", "x"); err == nil || !strings.Contains(err.Error(), "database space exceeded") {
		t.Errorf("a write under NOSPACE: want it refused, got %v", err)
	}

	// Deleting is allowed under NOSPACE; the file does not shrink by it.
	if _, err := raw.Delete(ctx, "/fill/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	quotaOf := func(etcdcluster.Member) int64 { return quota }
	statuses, _ = cli.Statuses(ctx)
	if ok, err := maintenance.CheckDisarm(alarms, statuses, byName, quotaOf, maintenance.WorkstationNames); len(ok) != 0 || err == nil || !strings.Contains(err.Error(), "NOSPACE") {
		t.Errorf("disarm before the defrag: want it refused, got ok %v, err %v", ok, err)
	}
	before := map[string]int64{}
	for _, s := range statuses {
		before[s.Member.Name] = s.DBSize
	}

	targets, err := maintenance.DefragTargets(statuses, byName, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if !targets[len(targets)-1].Leader {
		t.Errorf("the leader is not last: %+v", targets)
	}
	p := &plan.Plan{Title: "defrag"}
	maintenance.AddDefragSteps(p, cli, byName, targets, maintenance.DefragOptions{Compact: true})
	var out bytes.Buffer
	res, err := p.Execute(ctx, &out, false)
	if err != nil {
		t.Fatalf("defrag: %v\n%s", err, out.String())
	}
	if len(res) != 4 || res[0].Name != "compact" || !strings.Contains(res[1].Note, " → ") {
		t.Errorf("defrag steps %+v\n%s", res, out.String())
	}
	statuses, _ = cli.Statuses(ctx)
	for _, s := range statuses {
		if !s.Healthy || s.DBSize >= before[s.Member.Name]/2 || s.DBSize >= quota {
			t.Errorf("member %s after the defrag: healthy %v, database %d bytes (was %d)", s.Member.Name, s.Healthy, s.DBSize, before[s.Member.Name])
		}
	}

	// Read again: each member that refused a write raised its own NOSPACE
	// (the refused write above may have added one), as the verbs read them
	// right before they decide.
	if alarms, err = cli.Alarms(ctx); err != nil || len(alarms) == 0 {
		t.Fatalf("alarms before the disarm: %v, %v", alarms, err)
	}
	ok, err := maintenance.CheckDisarm(alarms, statuses, byName, quotaOf, maintenance.WorkstationNames)
	if err != nil || len(ok) != len(alarms) {
		t.Fatalf("disarm after the defrag: ok %v, err %v", ok, err)
	}
	for run := 1; run <= 2; run++ { // the rerun finds it cleared
		p = &plan.Plan{Title: "disarm"}
		maintenance.AddDisarmSteps(p, cli, ok, etcdcluster.MembersOf(statuses), byName)
		res, err = p.Execute(ctx, &out, false)
		want := map[int]string{1: "cleared", 2: "already cleared"}[run]
		if err != nil || len(res) != len(ok) || res[0].Note != want {
			t.Errorf("disarm run %d: %+v, %v; want note %q", run, res, err, want)
		}
	}
	if left, err := cli.Alarms(ctx); err != nil || len(left) != 0 {
		t.Errorf("alarms after the disarm: %v, %v", left, err)
	}
	if err := cli.Put(ctx, "/after", "x"); err != nil {
		t.Errorf("a write after the disarm: %v", err)
	}
	for _, k := range acked {
		v, found, err := cli.Get(ctx, k)
		if err != nil || !found || string(v) != "v-"+k {
			t.Errorf("acknowledged %s: %q, found %v, %v", k, v, found, err)
		}
	}
}

// TestDefragStopsWhenAMemberGoesDown: the check each step makes right before
// it runs stops the plan, naming the member, without touching the target.
func TestDefragStopsWhenAMemberGoesDown(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli := clientOf(t, c)
	statuses, targets := planAll(t, ctx, cli)
	// The first follower goes down after the plan was made.
	var victim string
	for _, x := range targets {
		if !x.Leader {
			victim = x.Member.Name
			break
		}
	}
	c.Member(victim).Kill()
	p := &plan.Plan{Title: "defrag"}
	maintenance.AddDefragSteps(p, cli, byName, targets, maintenance.DefragOptions{})
	var out bytes.Buffer
	res, err := p.Execute(ctx, &out, false)
	if err == nil || !strings.Contains(err.Error(), "member "+victim+" on "+victim+" is down") ||
		!strings.Contains(err.Error(), "nothing more was changed") {
		t.Fatalf("defrag with %s down: %v\n%s", victim, err, out.String())
	}
	if res[0].Outcome != "failed" || res[1].Outcome != "not-run" {
		t.Errorf("steps %+v: want the first failed and the rest not run", res)
	}
	// Still refused at planning time, naming it.
	statuses, _ = cli.Statuses(ctx)
	if _, err := maintenance.DefragTargets(statuses, byName, nil, true); err == nil || !strings.Contains(err.Error(), victim) {
		t.Errorf("planning with %s down: %v", victim, err)
	}
}

// TestDefragInterruptedThenRerun: a defrag stopped in the middle of a
// member's pass (the plugin killed, ^C) leaves every member healthy, and
// the rerun, planned afresh, converges: every member defragmented.
func TestDefragInterruptedThenRerun(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := clientOf(t, c)
	raw := c.Client()
	// Some garbage to give back: written, then deleted.
	value := strings.Repeat("y", 256<<10)
	for i := range 40 {
		if _, err := raw.Put(ctx, fmt.Sprintf("/garbage/%02d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Delete(ctx, "/garbage/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	plan1 := func() *plan.Plan {
		_, targets := planAll(t, ctx, cli)
		p := &plan.Plan{Title: "defrag"}
		maintenance.AddDefragSteps(p, cli, byName, targets, maintenance.DefragOptions{Compact: true})
		return p
	}
	// Interrupted as the second member's pass starts.
	stop, stopped := context.WithCancel(ctx)
	defer stopped()
	var out bytes.Buffer
	res, err := plan1().Execute(stop, writerFunc(func(p []byte) (int, error) {
		if strings.Contains(string(p), "[3/4]") {
			stopped()
		}
		return out.Write(p)
	}), false)
	if err == nil {
		t.Fatalf("the interrupted run finished: %+v", res)
	}
	statuses, err := cli.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range statuses {
		if !s.Healthy {
			t.Errorf("member %s after the interruption: %s", s.Member.Name, s.Reason())
		}
	}
	// The rerun converges.
	res, err = plan1().Execute(ctx, &out, false)
	if err != nil {
		t.Fatalf("rerun: %v\n%s", err, out.String())
	}
	if len(res) != 4 {
		t.Errorf("rerun steps %+v", res)
	}
	statuses, _ = cli.Statuses(ctx)
	for _, s := range statuses {
		if !s.Healthy || s.DBSize > 4<<20 {
			t.Errorf("member %s after the rerun: healthy %v, database %d bytes", s.Member.Name, s.Healthy, s.DBSize)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// calls records the order of a Cluster's reads and changes.
type calls struct {
	maintenance.Cluster
	seq []string
}

func (c *calls) Statuses(ctx context.Context) ([]etcdcluster.Status, error) {
	c.seq = append(c.seq, "read")
	return c.Cluster.Statuses(ctx)
}

func (c *calls) Defragment(ctx context.Context, endpoint string) error {
	c.seq = append(c.seq, "defrag")
	return c.Cluster.Defragment(ctx, endpoint)
}

// planned is a real 3-member cluster with a plan's read of it (made at
// at) and its defrag targets, for the tests of the reads the steps make.
func planned(t *testing.T) (ctx context.Context, c *etcdtest.Cluster, cli *etcdcluster.Client, statuses []etcdcluster.Status, targets []maintenance.DefragTarget, at time.Time) {
	t.Helper()
	c = etcdtest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cli = clientOf(t, c)
	at = time.Now()
	statuses, targets = planAll(t, ctx, cli)
	return ctx, c, cli, statuses, targets, at
}

// defragWith runs the defrag steps for targets against c: the plan's
// output and its error.
func defragWith(ctx context.Context, c maintenance.Cluster, targets []maintenance.DefragTarget, o maintenance.DefragOptions) (string, error) {
	p := &plan.Plan{Title: "defrag"}
	maintenance.AddDefragSteps(p, c, byName, targets, o)
	var out bytes.Buffer
	_, err := p.Execute(ctx, &out, false)
	return out.String(), err
}

// TestDefragReusesAFreshRead: the plan's own read, younger than Fresh, is
// the first step's look before it runs, and a step's read of its member
// answering again is the next one's; an older read is not reused, so a
// member that went down since stops the plan (as in
// TestDefragStopsWhenAMemberGoesDown).
func TestDefragReusesAFreshRead(t *testing.T) {
	t.Parallel()
	ctx, c, cli, statuses, targets, at := planned(t)
	rec := &calls{Cluster: cli}
	if out, err := defragWith(ctx, rec, targets, maintenance.DefragOptions{Observed: statuses, ObservedAt: at}); err != nil {
		t.Fatalf("defrag: %v\n%s", err, out)
	}
	if len(rec.seq) < 2 || rec.seq[0] != "defrag" || rec.seq[1] != "read" {
		t.Errorf("calls %v: want the first step to defragment on the plan's read, then read its member answering", rec.seq)
	}
	if n := strings.Count(strings.Join(rec.seq, " "), "read"); n >= 2*len(targets) {
		t.Errorf("calls %v: %d reads for %d members, no read reused", rec.seq, n, len(targets))
	}

	// A stale read is read again: the victim, killed after it, is seen.
	victim := targets[0].Member.Name
	c.Member(victim).Kill()
	rec = &calls{Cluster: cli}
	if out, err := defragWith(ctx, rec, targets, maintenance.DefragOptions{Observed: statuses, ObservedAt: time.Now().Add(-maintenance.Fresh)}); err == nil || !strings.Contains(err.Error(), "member "+victim+" on "+victim+" is down") {
		t.Fatalf("defrag on a stale read with %s down: %v\n%s", victim, err, out)
	}
	if len(rec.seq) != 1 || rec.seq[0] != "read" {
		t.Errorf("calls %v: want one read and no defrag", rec.seq)
	}
}

// quickCalls is calls with a quick read: the real members' statuses (as
// the metrics would show them), or err when set.
type quickCalls struct {
	calls
	err error
}

func (c *quickCalls) QuickStatuses(ctx context.Context, prev []etcdcluster.Status) ([]etcdcluster.Status, error) {
	c.seq = append(c.seq, "quick")
	if c.err != nil {
		return nil, c.err
	}
	if len(prev) == 0 {
		return nil, fmt.Errorf("no previous read given")
	}
	return c.Cluster.Statuses(ctx)
}

// TestDefragQuickRead: the wait for a defragmented member to answer again
// is a quick read when the cluster has one, and a full read only when the
// quick one does not see it answer; no step decides whether it is safe to
// defragment on a quick read.
func TestDefragQuickRead(t *testing.T) {
	t.Parallel()
	ctx, _, cli, statuses, targets, at := planned(t)

	rec := &quickCalls{calls: calls{Cluster: cli}}
	out, err := defragWith(ctx, rec, targets, maintenance.DefragOptions{Observed: statuses, ObservedAt: at})
	if err != nil {
		t.Fatalf("defrag: %v\n%s", err, out)
	}
	if got, want := strings.Join(rec.seq, " "), "defrag quick read defrag quick read defrag quick"; got != want {
		t.Errorf("calls %q, want %q: each member seen answering by a quick read, each later step deciding on a full one", got, want)
	}
	if !strings.Contains(out, "MiB → ") {
		t.Errorf("no size before → after reported:\n%s", out)
	}

	// A quick read that fails (port-forward forbidden, say) costs one try
	// per step: the full read decides.
	rec = &quickCalls{calls: calls{Cluster: cli}, err: fmt.Errorf("port-forward forbidden")}
	if out, err := defragWith(ctx, rec, targets[:1], maintenance.DefragOptions{Observed: statuses, ObservedAt: time.Now()}); err != nil {
		t.Fatalf("defrag with a failing quick read: %v\n%s", err, out)
	}
	if got, want := strings.Join(rec.seq, " "), "defrag quick read"; got != want {
		t.Errorf("calls %q, want %q", got, want)
	}
}
