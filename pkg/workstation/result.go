package workstation

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/runlock"
)

// Result is what a mutating workstation verb did: its plan's steps (with
// the steps of the host verbs it ran under the steps that ran them) and the
// state it left. It has the shape of the host-local verbs' results, so -o
// json reads the same on both faces.
type Result struct {
	Verb   string            `json:"verb"`
	DryRun bool              `json:"dryRun"`
	Steps  []plan.StepResult `json:"steps"`
	State  *ClusterStatus    `json:"state,omitempty"`
	Error  string            `json:"error,omitempty"`
	// Next is what is left for the operator to run, if anything.
	Next string `json:"next,omitempty"`
}

// execute runs p for verb (or prints it, for a dry run) and reports the
// state it left: the observed one for a dry run, a fresh status otherwise.
func (s *Session) execute(ctx context.Context, verb string, p *plan.Plan, dryRun bool, obs *observed) (*Result, error) {
	return s.executeThen(ctx, verb, p, dryRun, obs, nil)
}

// executeThen is execute with the state the run left taken from left when
// that has it (a read the run made after its last change), rather than
// read again.
func (s *Session) executeThen(ctx context.Context, verb string, p *plan.Plan, dryRun bool, obs *observed, left func() *ClusterStatus) (*Result, error) {
	return s.executeLocked(ctx, verb, p, dryRun, obs, left, nil)
}

// executeLocked is executeThen under a run lock the caller started taking
// already (lockAhead), or, when lock is nil, one taken now.
func (s *Session) executeLocked(ctx context.Context, verb string, p *plan.Plan, dryRun bool, obs *observed, left func() *ClusterStatus, lock *heldLock) (*Result, error) {
	res := &Result{Verb: verb, DryRun: dryRun}
	runCtx := ctx
	if !dryRun {
		if lock == nil {
			lock = s.lockAhead(ctx, verb, verb+": "+p.Title)
		}
		defer lock.drop()
		lctx, err := lock.take()
		if err != nil {
			res.Error = err.Error()
			return res, err
		}
		runCtx = lctx
	}
	var err error
	res.Steps, err = p.Execute(runCtx, s.Out, dryRun)
	if err != nil {
		if cause := context.Cause(runCtx); errors.Is(cause, runlock.ErrLost) {
			err = fmt.Errorf("%w (stopped: %v)", err, cause)
		}
		res.Error = err.Error()
		return res, err
	}
	if dryRun {
		res.State = obs.report()
		return res, nil
	}
	// The changes are done: the lock goes while the state they left is
	// read (a read needs no lock), one round trip fewer on every run.
	dropped := make(chan struct{})
	go func() { lock.drop(); close(dropped) }()
	defer func() { <-dropped }()
	if left != nil {
		if res.State = left(); res.State != nil {
			return res, nil
		}
	}
	if res.State, err = s.Status(ctx); err != nil {
		return res, fmt.Errorf("%s is done; reading the state it left: %w", verb, err)
	}
	return res, nil
}

// heldLock is the run lock of one run, being taken or held.
type heldLock struct {
	done    chan struct{}
	ctx     context.Context
	release func()
	err     error
	once    sync.Once
}

// lockAhead starts taking the run lock now, in the background: a verb that
// knows it will change something takes it while it still observes the
// cluster and plans, so the lease's round trip overlaps those reads.
// take waits for it; drop releases it (once, whatever happened).
func (s *Session) lockAhead(ctx context.Context, verb, what string) *heldLock {
	l := &heldLock{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.ctx, l.release, l.err = s.lock(ctx, verb, what)
	}()
	return l
}

func (l *heldLock) take() (context.Context, error) {
	<-l.done
	return l.ctx, l.err
}

func (l *heldLock) drop() {
	l.once.Do(func() {
		<-l.done
		if l.release != nil {
			l.release()
		}
	})
}

// addSnapshotStep adds the verified snapshot a mutating verb takes on node
// before its first change.
func (s *Session) addSnapshotStep(p *plan.Plan, node, reason string) {
	p.Add("snapshot", snapshotStep(node, reason), func(ctx context.Context) (string, error) {
		return "", s.snapshotFirst(ctx, node, reason)
	})
}
