package workstation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/runlock"
)

// withoutWrites are the verbs that must run when the apiserver can write
// nothing, so cannot take the run lock either: under etcd's NOSPACE alarm
// they are the cure (they reach etcd by exec, which writes nothing).
var withoutWrites = map[string]bool{"defrag": true, "alarm disarm": true}

// lock takes the cluster's run lock for verb (see package runlock), kept
// until release is called. The returned context ends, with the reason as
// its cause, when another run takes the lock away meanwhile (it was
// broken, or expired while the apiserver could not be reached): the plan
// then stops between steps, as on Ctrl-C, and a rerun converges. A verb in
// withoutWrites whose lock cannot be written goes on without it, saying so.
func (s *Session) lock(ctx context.Context, verb, what string) (context.Context, func(), error) {
	ctx, cancel := context.WithCancelCause(ctx)
	o := s.lockOptions(what)
	// A restore takes the apiserver's objects back to the snapshot's, the
	// lease among them: that is not the lock taken away.
	o.RollsBack = verb == "restore"
	release, err := runlock.Hold(ctx, o, func(err error) {
		fmt.Fprintf(s.warn(), "Warning: %v; stopping after the current step\n", err)
		cancel(err)
	})
	var held *runlock.HeldError
	switch {
	case errors.As(err, &held):
		cancel(nil)
		return nil, nil, err
	case err != nil && withoutWrites[verb]:
		fmt.Fprintf(s.warn(), "Warning: going on without the run lock, which keeps two kubectl-etcd runs apart: %v (under etcd's NOSPACE alarm the apiserver can write nothing; %s is what clears it)\n", err, verb)
		return ctx, func() { cancel(nil) }, nil
	case err != nil:
		cancel(nil)
		return nil, nil, fmt.Errorf("%w; nothing was changed", err)
	}
	return ctx, func() {
		if err := release(); err != nil {
			fmt.Fprintf(s.warn(), "Warning: %v (it expires by itself within %s)\n", err, runlock.DefaultDuration+runlock.DefaultSlack)
		}
		cancel(nil)
	}, nil
}

// lockOptions name this run: the user, the workstation and the process.
func (s *Session) lockOptions(what string) runlock.Options {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return runlock.Options{Client: s.Clientset, What: what, Host: host, PID: os.Getpid(),
		Holder: fmt.Sprintf("%s@%s pid %d", name, host, os.Getpid())}
}

func (s *Session) warn() io.Writer {
	if s.Warn != nil {
		return s.Warn
	}
	return s.Out
}
