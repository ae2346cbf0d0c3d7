package workstation

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
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

// RestoreNode rolls the cluster back to a snapshot on this machine while
// the apiserver is up: the file is checked here, then on node (uploaded into
// hostapi.UploadDir, checked to be a snapshot of this cluster), the cluster
// is shrunk to node's member with the scale mechanism (every apiserver then
// reads only that member), and the host-local restore runs on node detached
// from its pod, since it stops the etcd every apiserver reads. The plugin
// waits for it through the apiserver's comeback, reads its result on the
// host, and grows the cluster again with --replicas. A rerun finds the
// upload, the shrink and a running or finished restore, and carries on.
func (s *Session) RestoreNode(ctx context.Context, o RestoreOptions) (*Result, error) {
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
	if !s.reaches(n) {
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
			p := &plan.Plan{Title: fmt.Sprintf("finish the restore of %s on %s", o.File, n.Name)}
			s.addRestoreEnd(p, o, n.Name, info.SHA256)
			return s.executeRestore(ctx, o, p)
		case hostapi.RunDone:
			fmt.Fprintf(s.Out, "This snapshot was restored on %s already (started %s, log %s); nothing to restore.\n", n.Name, run.Started.Format(time.RFC3339), run.Log)
			fmt.Fprintf(s.Out, "  (to restore it again, move %s.run.json aside on %s)\n", hostapi.UploadPath(info.SHA256), n.Name)
			p := &plan.Plan{Title: fmt.Sprintf("after the restore of %s on %s", o.File, n.Name)}
			s.addGrowStep(p, o)
			return s.executeRestore(ctx, o, p)
		case hostapi.RunFailed:
			fmt.Fprintf(s.Out, "Note: an earlier restore of this snapshot on %s failed: %s (log %s); starting it again carries on where it stopped\n", n.Name, run.Error, run.Log)
		}
	}
	obs, err := s.observe(ctx)
	if err != nil {
		return nil, err
	}
	obs.client.Close()
	if err := obs.checkNoAlarms(0); err != nil {
		return nil, err
	}
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

	upload := hostapi.UploadPath(info.SHA256)
	p := &plan.Plan{Title: fmt.Sprintf("restore %s (revision %d, %d keys, sha256 %s) on %s as a new single-member etcd cluster",
		o.File, info.Revision, info.TotalKeys, info.SHA256, n.Name)}
	p.Notes = append(p.Notes, fmt.Sprintf("Everything the cluster stored after the snapshot is lost (it is at revision %d now; the snapshot at %d).", revNow, info.Revision))
	if o.NoSnapshot {
		p.Notes = append(p.Notes, "--no-snapshot: no snapshot of the state of now is taken first")
	}
	if o.Replicas == 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("then grow the cluster again yourself: kubectl etcd scale --replicas %d", o.Before))
	}
	where := fmt.Sprintf("upload it to %s:%s (sha256 checked there)", n.Name, upload)
	if check.Present {
		where = fmt.Sprintf("the snapshot is on %s already (%s)", n.Name, upload)
	}
	p.Add("upload", where+fmt.Sprintf(", and check there that it is a sound snapshot of this cluster (its kube-root-ca.crt holds %s's cluster CA)", n.Name),
		func(ctx context.Context) (string, error) { return s.uploadAndCheck(ctx, o, n.Name, info, check) })
	if snapNode != "" {
		s.addSnapshotStep(p, snapNode, "pre-restore")
	}
	shrinkDetail := fmt.Sprintf("shrink etcd to %s's member alone: done already", n.Name)
	if len(shrink.Changes) > 0 {
		var changes []string
		for _, c := range shrink.Changes {
			changes = append(changes, c.String())
		}
		shrinkDetail = fmt.Sprintf("shrink etcd to %s's member alone (as `kubectl etcd scale --nodes %s`; each host's kube-apiserver is pointed at the members left before its member goes, its data moved aside): %s",
			n.Name, n.Name, strings.Join(changes, "; "))
	}
	p.AddSteps("shrink", shrinkDetail, func(ctx context.Context) (string, []plan.StepResult, error) {
		res, err := s.Scale(ctx, ScaleOptions{Target: Target{Nodes: []string{n.Name}}, NoSnapshot: true})
		if err != nil {
			return "", stepsOfResult(res), fmt.Errorf("shrinking etcd to %s's member (nothing was restored; rerun to carry on): %w", n.Name, err)
		}
		return "", stepsOfResult(res), nil
	})
	p.Add("restore", fmt.Sprintf("on %s, detached from the host pod: `kubectl-etcd restore %s --yes --replace-sole-member` (log in %s): stop etcd (every kube-apiserver is down until it is back, about 3 minutes), move %s's data dir aside (never deleted), etcd's own restore into a fresh data dir (revisions bumped by %d, older ones marked compacted: watches relist), start, verify",
		n.Name, upload, hostapi.LogDir, n.Name, hostapi.RestoreRevisionBump),
		func(ctx context.Context) (string, error) { return s.startRestore(ctx, n.Name, info.SHA256) })
	s.addRestoreEnd(p, o, n.Name, info.SHA256)
	if check.DetachError != "" {
		return nil, fmt.Errorf("on %s, a process cannot be started outside the host pod's cgroups (%s), so the restore would die with the pod; nothing was changed. Copy the file to %s and run `kubectl-etcd restore FILE` there as root, after shrinking etcd to its member (kubectl etcd scale --nodes %s)", n.Name, check.DetachError, n.Name, n.Name)
	}
	if check.Present && check.Error != "" {
		p.Print(s.Out)
		return nil, fmt.Errorf("on %s: %s (nothing was changed)", n.Name, check.Error)
	}
	if o.DryRun {
		return s.execute(ctx, "restore", p, true, obs)
	}
	if o.Confirm != nil {
		p.Print(s.Out)
		if err := o.Confirm(); err != nil {
			return nil, err
		}
	}
	return s.executeRestore(ctx, o, p)
}

// executeRestore runs a restore's plan and says whether the cluster is
// left smaller than before it.
func (s *Session) executeRestore(ctx context.Context, o RestoreOptions, p *plan.Plan) (*Result, error) {
	res, err := s.execute(ctx, "restore", p, false, nil)
	if err != nil {
		return res, err
	}
	if o.Replicas == 0 && res.State != nil && len(res.State.Members) < o.Before {
		res.Next = fmt.Sprintf("kubectl etcd scale --replicas %d", o.Before)
	}
	return res, nil
}

// uploadAndCheck sends the snapshot to node unless it is there, and has
// node check it is a sound snapshot of this cluster.
func (s *Session) uploadAndCheck(ctx context.Context, o RestoreOptions, node string, info *snapshot.Info, check *hostapi.UploadCheck) (string, error) {
	upload := hostapi.UploadPath(info.SHA256)
	note := "it was there already"
	if !check.Present {
		if err := s.upload(ctx, node, o.File, info); err != nil {
			return "", fmt.Errorf("uploading the snapshot to %s (nothing was changed): %w", node, err)
		}
		var err error
		if check, err = s.restoreCheck(ctx, node, info.SHA256, o.AllowOtherCluster); err != nil {
			return "", err
		}
		if !check.Present {
			return "", fmt.Errorf("the upload to %s:%s is not there after it was received (nothing was changed)", node, upload)
		}
		note = "uploaded to " + node + ":" + upload
	}
	for _, n := range check.Notes {
		fmt.Fprintf(s.Out, "      %s | %s\n", node, n)
	}
	for _, w := range check.Warnings {
		fmt.Fprintf(s.Out, "      %s | warning: %s\n", node, w)
	}
	if check.Error != "" {
		return "", fmt.Errorf("on %s: %s (nothing was changed; the upload stays in %s)", node, check.Error, hostapi.UploadDir)
	}
	return note, nil
}

// startRestore starts the detached restore on node.
func (s *Session) startRestore(ctx context.Context, node, sum string) (string, error) {
	started, err := s.Hosts.StartRestore(ctx, node, sum)
	if err != nil {
		if hostapi.Answered(err) || ctx.Err() != nil {
			return "", fmt.Errorf("starting the restore on %s: %w", node, err)
		}
		// The pod ran, but its end was not seen: the restore it started
		// stops the etcd every apiserver reads, which can cut the answer
		// off. The host's record (the next step) says whether it started.
		return fmt.Sprintf("the answer was cut off (%s): the restore has probably started and taken the apiserver down", firstLine(err.Error())), nil
	}
	if started.Run == nil {
		return "", nil
	}
	verb := "started"
	if !started.Started {
		verb = "already " + started.Run.State
	}
	return fmt.Sprintf("%s: pid %d on %s, log %s:%s", verb, started.Run.PID, node, node, started.Run.Log), nil
}

// addRestoreEnd adds the wait for the detached restore on node and the
// growth back to --replicas.
func (s *Session) addRestoreEnd(p *plan.Plan, o RestoreOptions, node, sum string) {
	p.AddSteps("wait", fmt.Sprintf("waiting (up to %s) for the restore on %s: the apiserver goes down with %s's etcd and comes back when the restored member serves; interrupting this wait does not stop the restore, rerun the same command to wait again", o.Timeout, node, node),
		func(ctx context.Context) (string, []plan.StepResult, error) { return s.waitRestore(ctx, o, node, sum) })
	s.addGrowStep(p, o)
}

// addGrowStep adds the growth back to --replicas members, if asked for.
func (s *Session) addGrowStep(p *plan.Plan, o RestoreOptions) {
	if o.Replicas == 0 {
		return
	}
	p.AddSteps("grow", fmt.Sprintf("grow back to %d members (as `kubectl etcd scale --replicas %d`)", o.Replicas, o.Replicas),
		func(ctx context.Context) (string, []plan.StepResult, error) {
			// Right after the restore, the other hosts' apiservers and
			// kubelets are still relisting (every watch from before the
			// restore is told to start over): a host pod there may not be
			// picked up. Scale is safe to run again, so that is retried for
			// a while; any other failure is not.
			deadline := time.Now().Add(growRetryFor)
			for {
				res, err := s.Scale(ctx, ScaleOptions{Target: Target{Replicas: o.Replicas}, NoSnapshot: o.NoSnapshot})
				if err == nil {
					return "", stepsOfResult(res), nil
				}
				if !retryableHostError(err) || time.Now().After(deadline) || ctx.Err() != nil {
					return "", stepsOfResult(res), fmt.Errorf("the restore is done; growing back to %d members: %w (rerun `kubectl etcd scale --replicas %d`)", o.Replicas, err, o.Replicas)
				}
				fmt.Fprintf(s.Out, "      %s\n      (hosts relist after a restore: trying again in %s, until %s)\n", firstLine(err.Error()), growRetryEvery, deadline.Format(time.TimeOnly))
				select {
				case <-ctx.Done():
					return "", stepsOfResult(res), ctx.Err()
				case <-time.After(growRetryEvery):
				}
			}
		})
}

// The growth after a restore retries a host that did not run its pod, every
// growRetryEvery, for growRetryFor.
const (
	growRetryEvery = 10 * time.Second
	growRetryFor   = 3 * time.Minute
)

// retryableHostError: the host could not run the command (its kubelet did
// not run the pod) rather than ran it and failed.
func retryableHostError(err error) bool {
	return hostapi.Unreachable(err)
}

func stepsOfResult(r *Result) []plan.StepResult {
	if r == nil {
		return nil
	}
	return r.Steps
}

// waitRestore waits for the detached restore on node to end (the apiserver
// goes down and comes back meanwhile) and reports it. Interrupting it does
// not stop the restore; a rerun waits again.
func (s *Session) waitRestore(ctx context.Context, o RestoreOptions, node, sum string) (string, []plan.StepResult, error) {
	start := time.Now()
	down := false
	var run *hostapi.RunReport
	lastLine := ""
	err := wait.PollUntilContextTimeout(ctx, 5*time.Second, o.Timeout, true, func(ctx context.Context) (bool, error) {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		got, err := s.Hosts.RestoreRun(cctx, node, sum)
		cancel()
		switch {
		case ctx.Err() != nil:
			return false, ctx.Err()
		case err != nil:
			if !down {
				down = true
				fmt.Fprintf(s.Out, "      %s: the apiserver or %s's kubelet does not answer (expected while %s's etcd is restored): %s\n", time.Since(start).Round(time.Second), node, node, firstLine(err.Error()))
			}
			return false, nil
		case got.Run == nil:
			return false, fmt.Errorf("%s has no record of the restore it was told to start", node)
		}
		run = got.Run
		if down {
			down = false
			fmt.Fprintf(s.Out, "      %s: the apiserver answers again\n", time.Since(start).Round(time.Second))
		}
		if n := len(run.LogTail); n > 0 && run.LogTail[n-1] != lastLine {
			lastLine = run.LogTail[n-1]
			fmt.Fprintf(s.Out, "      %s | %s\n", node, lastLine)
		}
		return run.State != hostapi.RunRunning, nil
	})
	switch {
	case err != nil && ctx.Err() != nil:
		return "", nil, fmt.Errorf("interrupted while waiting; the restore on %s goes on (rerun to wait for it): %w", node, ctx.Err())
	case wait.Interrupted(err):
		return "", nil, fmt.Errorf("the restore on %s has not ended after %s: it goes on; look at its log there (%s/restore-*.log) and rerun this command to wait again", node, o.Timeout, hostapi.LogDir)
	case err != nil:
		return "", nil, err
	}
	var steps []plan.StepResult
	if res := run.Outcome; res != nil {
		steps = res.Steps
		for _, note := range res.Notes {
			fmt.Fprintf(s.Out, "      %s | %s\n", node, note)
		}
		for _, st := range res.Steps {
			if st.Name == "move data aside" && st.Note != "" {
				fmt.Fprintf(s.Out, "      %s | old data dir: %s\n", node, st.Note)
			}
		}
	}
	if run.State == hostapi.RunFailed {
		return "", steps, fmt.Errorf("the restore on %s failed: %s\nIts log on %s (%s), last lines:\n  %s\nRerun this command, or `kubectl-etcd restore %s` on %s as root, to carry on where it stopped (its journal records the steps done)",
			node, run.Error, node, run.Log, strings.Join(run.LogTail, "\n  "), run.Snapshot, node)
	}
	return fmt.Sprintf("restored in %s (log %s:%s)", time.Since(start).Round(100*time.Millisecond), node, run.Log), steps, nil
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
	said := false
	var last error
	err := wait.PollUntilContextTimeout(ctx, 5*time.Second, o.Timeout, true, func(context.Context) (bool, error) {
		last = f()
		// A host that cannot run the host pod now is retried too: the
		// restore's etcd stop takes its kubelet's apiserver away.
		if last == nil || (hostapi.Answered(last) && !errors.Is(last, hostapi.ErrUnreachable)) {
			return true, nil
		}
		if !said {
			said = true
			fmt.Fprintf(s.Out, "%s\nIf an earlier run started a restore on %s, the cluster answers again when it ends: retrying for up to %s.\n", firstLine(last.Error()), o.Node, o.Timeout)
		}
		return false, nil
	})
	if last == nil && err != nil {
		return err
	}
	return last
}
