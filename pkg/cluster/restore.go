package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/snapshot"
)

// RestoreOptions say what to restore where, from the workstation.
type RestoreOptions struct {
	File string
	Node string
	// Replicas, when set, grows the cluster back to that many members after
	// the restore (as `scale --replicas`).
	Replicas          int
	DryRun            bool
	NoSnapshot        bool
	AllowOtherCluster bool
	// Timeout bounds the wait for the restore on the host (the apiserver is
	// down meanwhile).
	Timeout time.Duration
	// Before is the member count before the restore, for the next step shown.
	Before int
	// Confirm is asked once the plan is printed (nil: no question).
	Confirm func() error
}

// RestoreResult is what a restore from the workstation did.
type RestoreResult struct {
	Status *ClusterStatus
	// Next is the command that grows the cluster again, when not run.
	Next string
}

// RestoreNode rolls the cluster back to a snapshot on this machine while
// the apiserver is up: the file is checked here, then on node (uploaded into
// hostapi.UploadDir, checked to be a snapshot of this cluster), the cluster
// is shrunk to node's member with the scale mechanism (every apiserver then
// reads only that member), and the host-local restore runs on node detached
// from its pod, since it stops the etcd every apiserver reads. The plugin
// waits for it through the apiserver's comeback, reads its result on the
// host, and grows the cluster again with --replicas. A rerun finds the
// upload, the shrink and a running or finished restore, and carries on.
func (s *Session) RestoreNode(ctx context.Context, o RestoreOptions) (*RestoreResult, error) {
	info, err := snapshot.Status(o.File)
	if err != nil {
		return nil, fmt.Errorf("refusing to restore (nothing was changed): %w", err)
	}
	if !info.IntegrityHash {
		fmt.Fprintf(s.Out, "Warning: %s has no sha256 trailer (a copied db file, not a snapshot): its integrity cannot be checked end to end\n", o.File)
	}
	// The node and what it has already (an upload, a restore running or
	// done) come first, through the apiserver alone: while a restore runs,
	// etcd may not answer for a while, and a rerun must still find it.
	var nodes []Node
	if err := s.untilAnswers(ctx, o, func() (err error) { nodes, err = s.ControlPlaneNodes(ctx); return err }); err != nil {
		return nil, err
	}
	n, ok := nodeNamed(nodes, o.Node)
	if !ok {
		if err := s.notControlPlane(ctx, o.Node); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("--node %q is not a control-plane node of this cluster (control-plane nodes: %s)", o.Node, names(nodes))
	}
	if !n.Ready {
		return nil, fmt.Errorf("node %s is not Ready: its kubelet cannot run the host pods the restore needs; copy the file there and run `kubectl-etcd restore FILE` on it as root", n.Name)
	}
	var check *hostapi.UploadCheck
	if err := s.untilAnswers(ctx, o, func() (err error) {
		check, err = s.restoreCheck(ctx, n.Name, info.SHA256, o.AllowOtherCluster)
		return err
	}); err != nil {
		return nil, err
	}
	if o.Before == 0 {
		o.Before = len(nodes)
	}
	if run := check.Run; run != nil && !o.DryRun {
		switch run.State {
		case hostapi.RunRunning:
			fmt.Fprintf(s.Out, "A restore of this snapshot is running on %s since %s (pid %d, log %s): waiting for it\n", n.Name, run.Started.Format(time.RFC3339), run.PID, run.Log)
			return s.finishRestore(ctx, o, n.Name, info.SHA256)
		case hostapi.RunDone:
			fmt.Fprintf(s.Out, "This snapshot was restored on %s already (started %s, log %s); nothing to restore.\n", n.Name, run.Started.Format(time.RFC3339), run.Log)
			fmt.Fprintf(s.Out, "  (to restore it again, move %s.run.json aside on %s)\n", hostapi.UploadPath(info.SHA256), n.Name)
			return s.afterRestore(ctx, o)
		case hostapi.RunFailed:
			fmt.Fprintf(s.Out, "Note: an earlier restore of this snapshot on %s failed: %s (log %s); starting it again carries on where it stopped\n", n.Name, run.Error, run.Log)
		}
	}
	obs, err := s.observe(ctx)
	if err != nil {
		return nil, err
	}
	obs.client.Close()
	m := memberAt(obs.members, n)
	if m == nil {
		return nil, fmt.Errorf("control-plane node %s has no etcd member (members: %s): restore on a node that has one", n.Name, memberNames(obs))
	}
	if len(obs.members) > 1 {
		o.Before = len(obs.members)
	}
	healthy := false
	var revNow int64
	for _, st := range obs.statuses {
		if st.Member.ID == m.ID && st.Healthy && st.Err == nil {
			healthy = true
		}
		revNow = max(revNow, st.Revision)
	}
	if !healthy {
		return nil, fmt.Errorf("the etcd member of %s (%s, %x) is not healthy: the cluster would be shrunk to it; pick a node with a healthy member (kubectl etcd status)", n.Name, m, m.ID)
	}
	shrink, err := ScalePlan(obs.nodes, obs.members, obs.statuses, Target{Nodes: []string{n.Name}})
	if err != nil {
		return nil, err
	}
	var snapNode string
	if !o.NoSnapshot {
		if snapNode, err = snapshotNode(obs); err != nil {
			return nil, err
		}
	}

	title := "Plan"
	if o.DryRun {
		title = "Plan (dry run: nothing will be changed)"
	}
	upload := hostapi.UploadPath(info.SHA256)
	fmt.Fprintf(s.Out, "%s: restore %s (revision %d, %d keys, sha256 %s) on %s as a new single-member etcd cluster\n",
		title, o.File, info.Revision, info.TotalKeys, info.SHA256, n.Name)
	fmt.Fprintf(s.Out, "  Everything the cluster stored after the snapshot is lost (it is at revision %d now; the snapshot at %d).\n", revNow, info.Revision)
	if check.Present {
		fmt.Fprintf(s.Out, "  1. the snapshot is on %s already (%s)\n", n.Name, upload)
	} else {
		fmt.Fprintf(s.Out, "  1. upload it to %s:%s (sha256 checked there)\n", n.Name, upload)
	}
	fmt.Fprintf(s.Out, "     and check there that it is a sound snapshot of this cluster (its kube-root-ca.crt holds %s's cluster CA)\n", n.Name)
	if snapNode != "" {
		fmt.Fprintf(s.Out, "     then %s: the state of now, taken before anything changes\n", snapshotStep(snapNode, "pre-restore"))
	} else {
		fmt.Fprintln(s.Out, "     (--no-snapshot: no snapshot of the state of now is taken first)")
	}
	if len(shrink.Changes) == 0 {
		fmt.Fprintf(s.Out, "  2. shrink etcd to %s's member alone: done already\n", n.Name)
	} else {
		fmt.Fprintf(s.Out, "  2. shrink etcd to %s's member alone (as `kubectl etcd scale --nodes %s`; each host's kube-apiserver is pointed at the members left before its member goes, its data moved aside):\n", n.Name, n.Name)
		for _, c := range shrink.Changes {
			fmt.Fprintf(s.Out, "     - %s\n", c)
		}
	}
	fmt.Fprintf(s.Out, "  3. on %s, detached from the host pod: `kubectl-etcd restore %s --yes --replace-sole-member` (log in %s):\n", n.Name, upload, hostapi.LogDir)
	fmt.Fprintf(s.Out, "     stop etcd (every kube-apiserver is down until it is back, about 3 minutes), move %s's data dir aside (never deleted),\n", n.Name)
	fmt.Fprintf(s.Out, "     etcd's own restore into a fresh data dir (revisions bumped by %d, older ones marked compacted: watches relist), start, verify\n", hostapi.RestoreRevisionBump)
	fmt.Fprintf(s.Out, "  4. wait for the apiserver (up to %s) and read the restore's result on %s\n", o.Timeout, n.Name)
	if o.Replicas > 0 {
		fmt.Fprintf(s.Out, "  5. grow back to %d members (as `kubectl etcd scale --replicas %d`)\n", o.Replicas, o.Replicas)
	} else {
		fmt.Fprintf(s.Out, "  then grow the cluster again yourself: kubectl etcd scale --replicas %d\n", o.Before)
	}
	if check.DetachError != "" {
		return nil, fmt.Errorf("on %s, a process cannot be started outside the host pod's cgroups (%s), so the restore would die with the pod; nothing was changed. Copy the file to %s and run `kubectl-etcd restore FILE` there as root, after shrinking etcd to its member (kubectl etcd scale --nodes %s)", n.Name, check.DetachError, n.Name, n.Name)
	}
	if check.Present && check.Error != "" {
		return nil, fmt.Errorf("on %s: %s (nothing was changed)", n.Name, check.Error)
	}
	if o.DryRun {
		return &RestoreResult{Status: obs.report()}, nil
	}
	if o.Confirm != nil {
		if err := o.Confirm(); err != nil {
			return nil, err
		}
	}

	fmt.Fprintf(s.Out, "[1] upload %s to %s:%s\n", o.File, n.Name, upload)
	start := time.Now()
	if !check.Present {
		if err := s.upload(ctx, n.Name, o.File, info); err != nil {
			return nil, fmt.Errorf("uploading the snapshot to %s (nothing was changed): %w", n.Name, err)
		}
		if check, err = s.restoreCheck(ctx, n.Name, info.SHA256, o.AllowOtherCluster); err != nil {
			return nil, err
		}
		if !check.Present {
			return nil, fmt.Errorf("the upload to %s:%s is not there after it was received (nothing was changed)", n.Name, upload)
		}
	}
	for _, note := range check.Notes {
		fmt.Fprintf(s.Out, "      %s | %s\n", n.Name, note)
	}
	for _, w := range check.Warnings {
		fmt.Fprintf(s.Out, "      %s | warning: %s\n", n.Name, w)
	}
	if check.Error != "" {
		return nil, fmt.Errorf("on %s: %s (nothing was changed; the upload stays in %s)", n.Name, check.Error, hostapi.UploadDir)
	}
	fmt.Fprintf(s.Out, "      done in %s\n", time.Since(start).Round(100*time.Millisecond))
	if snapNode != "" {
		// Part of step 1 in the plan printed above.
		if err := s.snapshotFirst(ctx, "1", snapNode, "pre-restore"); err != nil {
			return nil, err
		}
	}

	fmt.Fprintf(s.Out, "[2] shrink etcd to %s's member alone\n", n.Name)
	if _, err := s.Scale(ctx, ScaleOptions{Target: Target{Nodes: []string{n.Name}}, NoSnapshot: true}); err != nil {
		return nil, fmt.Errorf("shrinking etcd to %s's member (nothing was restored; rerun to carry on): %w", n.Name, err)
	}

	fmt.Fprintf(s.Out, "[3] start the restore on %s, detached from the host pod\n", n.Name)
	started, err := s.Hosts.StartRestore(ctx, n.Name, info.SHA256)
	if err != nil {
		if hostapi.Answered(err) || ctx.Err() != nil {
			return nil, fmt.Errorf("starting the restore on %s: %w", n.Name, err)
		}
		// The pod ran, but its end was not seen: the restore it started
		// stops the etcd every apiserver reads, which can cut the answer
		// off. The host's record says whether it started.
		fmt.Fprintf(s.Out, "      the answer was cut off (%s): the restore has probably started and taken the apiserver down\n", firstLine(err.Error()))
	}
	if started.Run != nil {
		verb := "started"
		if !started.Started {
			verb = "already " + started.Run.State
		}
		fmt.Fprintf(s.Out, "      %s: pid %d on %s, log %s:%s\n", verb, started.Run.PID, n.Name, n.Name, started.Run.Log)
	}
	return s.finishRestore(ctx, o, n.Name, info.SHA256)
}

// finishRestore waits for the detached restore on node to end (the apiserver
// goes down and comes back meanwhile), reports it, and grows the cluster.
// Interrupting it does not stop the restore; a rerun waits again.
func (s *Session) finishRestore(ctx context.Context, o RestoreOptions, node, sum string) (*RestoreResult, error) {
	fmt.Fprintf(s.Out, "[4] waiting (up to %s) for the restore on %s: the apiserver goes down with %s's etcd and comes back when the restored member serves.\n", o.Timeout, node, node)
	fmt.Fprintln(s.Out, "      Interrupting this wait does not stop the restore; rerun the same command to wait again.")
	start := time.Now()
	deadline := start.Add(o.Timeout)
	down := false
	var run *hostapi.RunReport
	lastLine := ""
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		got, err := s.Hosts.RestoreRun(cctx, node, sum)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("interrupted while waiting; the restore on %s goes on (rerun to wait for it): %w", node, ctx.Err())
		case err != nil && !down:
			down = true
			fmt.Fprintf(s.Out, "      %s: the apiserver or %s's kubelet does not answer (expected while %s's etcd is restored): %s\n", time.Since(start).Round(time.Second), node, node, firstLine(err.Error()))
		case err == nil && got.Run == nil:
			return nil, fmt.Errorf("%s has no record of the restore it was told to start", node)
		case err == nil:
			run = got.Run
			if down {
				down = false
				fmt.Fprintf(s.Out, "      %s: the apiserver answers again\n", time.Since(start).Round(time.Second))
			}
			if n := len(run.LogTail); n > 0 && run.LogTail[n-1] != lastLine {
				lastLine = run.LogTail[n-1]
				fmt.Fprintf(s.Out, "      %s | %s\n", node, lastLine)
			}
		}
		if run != nil && run.State != hostapi.RunRunning {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the restore on %s has not ended after %s: it goes on; look at its log there (%s/restore-*.log) and rerun this command to wait again", node, o.Timeout, hostapi.LogDir)
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
	if run.State == hostapi.RunFailed {
		return nil, fmt.Errorf("the restore on %s failed: %s\nIts log on %s (%s), last lines:\n  %s\nRerun this command, or `kubectl-etcd restore %s` on %s as root, to carry on where it stopped (its journal records the steps done)",
			node, run.Error, node, run.Log, strings.Join(run.LogTail, "\n  "), run.Snapshot, node)
	}
	fmt.Fprintf(s.Out, "      restored in %s (log %s:%s)\n", time.Since(start).Round(100*time.Millisecond), node, run.Log)
	if res := run.Outcome; res != nil {
		for _, note := range res.Notes {
			fmt.Fprintf(s.Out, "      %s | %s\n", node, note)
		}
		for _, st := range res.Steps {
			if st.Name == "move data aside" && st.Note != "" {
				fmt.Fprintf(s.Out, "      %s | old data dir: %s\n", node, st.Note)
			}
		}
	}
	return s.afterRestore(ctx, o)
}

// afterRestore grows the cluster (with --replicas) and reports the state.
func (s *Session) afterRestore(ctx context.Context, o RestoreOptions) (*RestoreResult, error) {
	if o.Replicas > 0 {
		fmt.Fprintf(s.Out, "[5] grow back to %d members\n", o.Replicas)
		st, err := s.Scale(ctx, ScaleOptions{Target: Target{Replicas: o.Replicas}, NoSnapshot: o.NoSnapshot})
		if err != nil {
			return nil, fmt.Errorf("the restore is done; growing back to %d members: %w (rerun `kubectl etcd scale --replicas %d`)", o.Replicas, err, o.Replicas)
		}
		return &RestoreResult{Status: st}, nil
	}
	st, err := s.Status(ctx)
	if err != nil {
		return nil, err
	}
	res := &RestoreResult{Status: st}
	if len(st.Members) < o.Before {
		res.Next = fmt.Sprintf("kubectl etcd scale --replicas %d", o.Before)
	}
	return res, nil
}

// restoreCheck asks node about the upload of the snapshot with that sha256.
func (s *Session) restoreCheck(ctx context.Context, node, sum string, allowOther bool) (*hostapi.UploadCheck, error) {
	c, err := s.Hosts.CheckUpload(ctx, node, sum, allowOther)
	if err != nil {
		return nil, fmt.Errorf("checking the snapshot on %s: %w", node, err)
	}
	return c, nil
}

// upload streams the file to node through the host API.
func (s *Session) upload(ctx context.Context, node, file string, info *snapshot.Info) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = s.Hosts.Upload(ctx, node, info.SHA256, info.Size, f)
	return err
}

// untilAnswers runs f until it gets an answer from the cluster: a failure to
// reach the apiserver or to run a host pod is retried for o.Timeout (a
// restore an earlier run started takes them away for a few minutes); an
// answer that is an error is returned at once.
func (s *Session) untilAnswers(ctx context.Context, o RestoreOptions, f func() error) error {
	deadline := time.Now().Add(o.Timeout)
	said := false
	for {
		err := f()
		// A host that cannot run the host pod now is retried too: the
		// restore's etcd stop takes its kubelet's apiserver away.
		settled := hostapi.Answered(err) && !errors.Is(err, hostapi.ErrUnreachable)
		if err == nil || settled || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		if !said {
			said = true
			fmt.Fprintf(s.Out, "%s\nIf an earlier run started a restore on %s, the cluster answers again when it ends: retrying for up to %s.\n", firstLine(err.Error()), o.Node, o.Timeout)
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
}
