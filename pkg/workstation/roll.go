package workstation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/maintenance"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
)

// roll is a host verb run host by host, each of which may restart that
// host's etcd (certs renew, reconfigure): each host is first asked for its
// plan (the verb's dry run, in parallel); then, one host at a time, the
// other members must hold the quorum without its member, the verb runs,
// and every member must be healthy again before the next host.
type roll struct {
	// run runs the host verb on node (dryRun: its plan only).
	run func(ctx context.Context, node string, dryRun bool) (*hostapi.VerbResult, error)
	// hint is the host-local command for a host the plugin cannot reach.
	hint string
	// verb names what is done on a host, in messages ("renewing").
	verb string
	// renewHint is the command the quorum check suggests for a host whose
	// certificates expired.
	renewHint string
	// describe says what a host's plan does, for the roll's step; nil:
	// its steps' details.
	describe func(steps []plan.StepResult) string
}

const (
	// rollHealthyTimeout bounds the wait for every member to be healthy
	// again after a host's turn.
	rollHealthyTimeout = 3 * time.Minute
	// rollUnreachableWait is how long a Ready host that cannot run a pod
	// is asked again before it is left to the host-local command: right
	// after an interrupted run its etcd and apiserver may still be
	// restarting.
	rollUnreachableWait = 90 * time.Second
	// rollBeforeWait is how long a host's turn waits for the other
	// members to hold the quorum without its member before it refuses.
	rollBeforeWait = time.Minute
)

// turn is one host's turn in a roll, described by the host's own plan.
type turn struct{ host, detail string }

// turns asks every member host for its plan (in parallel; nothing
// changes), in the roll's order: followers first by name, the leader's
// host last. It returns the hosts with something to do, the notes of those
// without, and the hosts that could not be asked (each with the host-local
// command to run there).
func (s *Session) turns(ctx context.Context, obs *observed, hosts []string, r roll) (order []string, turns []turn, notes, left []string) {
	order = maintenance.RestartOrder(hosts, obs.statuses, obs.hostOf)
	plans := make([]*hostapi.VerbResult, len(order))
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for i, h := range order {
		if n, _ := nodeNamed(obs.nodes, h); !s.reaches(n) {
			errs[i] = fmt.Errorf("%s is NotReady and cannot run a host pod: run `%s` on it as root", h, r.hint)
			continue
		}
		wg.Go(func() {
			plans[i], errs[i] = s.runHost(ctx, h, r, true)
		})
	}
	wg.Wait()
	for i, h := range order {
		switch {
		case errs[i] != nil:
			left = append(left, errs[i].Error())
		case len(plans[i].Steps) == 0:
			notes = append(notes, strings.Join(plans[i].Notes, "; "))
		default:
			describe := r.describe
			if describe == nil {
				describe = stepDetails
			}
			turns = append(turns, turn{host: h, detail: "on " + h + ": " + describe(plans[i].Steps)})
		}
	}
	return order, turns, notes, left
}

// stepDetails is a host plan's steps' details, in order.
func stepDetails(steps []plan.StepResult) string {
	var details []string
	for _, st := range steps {
		details = append(details, st.Detail)
	}
	return strings.Join(details, ", then ")
}

// memberHosts are the control-plane nodes that run a member.
func (obs *observed) memberHosts() []string {
	var out []string
	for _, n := range obs.nodes {
		if memberAt(obs.members, n) != nil {
			out = append(out, n.Name)
		}
	}
	return out
}

// runHost runs the host verb on host (dryRun: its plan). A Ready host
// whose kubelet cannot start the pod is asked again for a while: after an
// interrupted run (or the previous host's turn) its etcd, then its
// apiserver, may still be restarting, and its kubelet's pod watch backs
// off. Nothing ran on the host when it could not start the pod, so asking
// again is safe for the real run too.
func (s *Session) runHost(ctx context.Context, host string, r roll, dryRun bool) (*hostapi.VerbResult, error) {
	start := time.Now()
	for {
		res, err := r.run(ctx, host, dryRun)
		if !errors.Is(err, hostapi.ErrUnreachable) {
			return res, err
		}
		if time.Since(start) > rollUnreachableWait {
			first, _, _ := strings.Cut(err.Error(), "\n")
			return nil, fmt.Errorf("%s could not run a host pod for %s (%s): run `%s` on it as root", host, rollUnreachableWait, first, r.hint)
		}
		fmt.Fprintf(s.Out, "      %s cannot run a pod yet (its apiserver may be restarting): asking again\n", host)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
}

// rollHost is one host's turn: the quorum check, the host verb, then the
// wait until every member is healthy again.
func (s *Session) rollHost(ctx context.Context, c *execCluster, host string, r roll) (string, []plan.StepResult, error) {
	check := func(ctx context.Context) error {
		obs, err := c.observe(ctx)
		if err != nil {
			return err
		}
		return maintenance.CheckRestart(obs.statuses, maintenance.MemberOn(obs.statuses, host, obs.hostOf), obs.hostOf, r.renewHint)
	}
	if err := check(ctx); err != nil {
		// Right after an interrupted run another member may still be
		// restarting: give it a minute before refusing.
		fmt.Fprintf(s.Out, "      %s\n      waiting up to %s for the other members to hold the quorum without %s's member\n", firstLine(err.Error()), rollBeforeWait, host)
		last := err
		werr := wait.PollUntilContextTimeout(ctx, 2*time.Second, rollBeforeWait, false, func(ctx context.Context) (bool, error) {
			last = check(ctx)
			return last == nil, nil
		})
		if werr != nil {
			return "", nil, last
		}
	}
	res, err := s.runHost(ctx, host, r, false)
	if err != nil {
		return "", stepsOf(res), err
	}
	start := time.Now()
	var last []etcdcluster.Status
	err = wait.PollUntilContextTimeout(ctx, 2*time.Second, rollHealthyTimeout, true, func(ctx context.Context) (bool, error) {
		obs, err := c.observe(ctx)
		if err != nil {
			return false, nil // an apiserver restarting: ask again
		}
		last = obs.statuses
		return !slices.ContainsFunc(last, func(st etcdcluster.Status) bool { return !st.Healthy }), nil
	})
	if err != nil {
		var down []string
		for _, st := range last {
			if !st.Healthy {
				down = append(down, fmt.Sprintf("%s: %s", st.Member, st.Reason()))
			}
		}
		return "", stepsOf(res), fmt.Errorf("after %s on %s, not every member was healthy within %s (%s); stopping before the next host", r.verb, host, rollHealthyTimeout, strings.Join(down, "; "))
	}
	return fmt.Sprintf("every member healthy %s later", time.Since(start).Round(time.Second)), stepsOf(res), nil
}
