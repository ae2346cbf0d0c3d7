package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// Options of a cross-host recovery.
type Options struct {
	// Hosts are the control-plane hosts, as the transport names them.
	Hosts []string
	// Addresses are where the transport reaches each host, when known:
	// a host that does not answer is recognised as a member by it.
	Addresses map[string]string
	// DryRun: survey and print the plan only.
	DryRun bool
	// Wait bounds the wait for hosts that do not answer (powered off,
	// booting) before the run ends listing what is left to do.
	Wait time.Duration
	// Poll is how often a host that does not answer is tried again.
	Poll time.Duration
	// Confirm, when set, is asked once the plan is printed; an error stops
	// the run with nothing changed.
	Confirm func(*Plan) error
	// Out receives the progress, for people.
	Out io.Writer
}

// Result is what a cross-host recovery did, for scripts (-o json).
type Result struct {
	Plan      *Plan                  `json:"plan,omitempty"`
	DryRun    bool                   `json:"dryRun"`
	Recovered *hostapi.RecoverReport `json:"recovered,omitempty"`
	Joined    []string               `json:"joined,omitempty"`
	// Left are the hosts still to join, each with what to run there.
	Left  []Left `json:"left,omitempty"`
	Error string `json:"error,omitempty"`
}

// Left is a host the run could not bring back, and how to.
type Left struct {
	Host    string `json:"host"`
	Why     string `json:"why"`
	Command string `json:"command"`
}

// Recover surveys every host in parallel, decides (Decide), prints the plan,
// and carries it out: recover on the survivor, then join on every other
// host, each as soon as it answers, up to o.Wait for the ones that do not;
// it ends with the survivor's status. The Result is partial, not nil, when
// err is not.
func Recover(ctx context.Context, hosts *hostapi.Client, o Options) (*Result, error) {
	res := &Result{DryRun: o.DryRun}
	fail := func(err error) (*Result, error) {
		res.Error = err.Error()
		return res, err
	}
	fmt.Fprintf(o.Out, "Surveying %d hosts (recover --dry-run on each) ...\n", len(o.Hosts))
	surveys := survey(ctx, hosts, o.Hosts)
	for i := range surveys {
		surveys[i].Address = o.Addresses[surveys[i].Host]
	}
	printSurveys(o.Out, surveys)
	p, err := Decide(surveys)
	if err != nil {
		return fail(err)
	}
	res.Plan = p
	printPlan(o.Out, p)
	if o.DryRun {
		return res, nil
	}
	if o.Confirm != nil {
		if err := o.Confirm(p); err != nil {
			return fail(err)
		}
	}
	endpoint := p.Endpoint
	if p.Survivor != "" {
		req := recoverRequest(surveys, p.Survivor)
		if req.SkipKubeadmConfig {
			fmt.Fprintf(o.Out, "\nRecovering on %s (its survey could not read kubeadm-config: it goes by its own manifests without waiting for it again) ...\n", p.Survivor)
		} else {
			fmt.Fprintf(o.Out, "\nRecovering on %s ...\n", p.Survivor)
		}
		rep, err := hosts.Recover(ctx, p.Survivor, req)
		res.Recovered = rep
		if err != nil {
			return fail(fmt.Errorf("recover on %s: %w (rerun this command to carry on: its journal there records what is done)", p.Survivor, err))
		}
		if rep.State != nil && rep.State.Local != nil && rep.State.Local.ClientURL != "" {
			endpoint = rep.State.Local.ClientURL
		} else if rep.State != nil && rep.State.Address != "" {
			endpoint = ClientURL(rep.State.Address)
		}
	}
	if endpoint == "" {
		return fail(fmt.Errorf("no client URL of %s's member is known to join to", p.Anchor))
	}
	res.Joined, res.Left = joinAll(ctx, hosts, p, endpoint, o)
	fmt.Fprintf(o.Out, "\nStatus, from %s:\n", p.Anchor)
	if err := hosts.LocalStatus(ctx, p.Anchor, o.Out, false); err != nil {
		fmt.Fprintf(o.Out, "  (could not read it: %v)\n", err)
	}
	if len(res.Left) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "%d host(s) not joined; etcd runs without them. On each, when it is back (or rerun this command):", len(res.Left))
		for _, l := range res.Left {
			fmt.Fprintf(&b, "\n  %s: %s\n    %s", l.Host, l.Why, l.Command)
		}
		return fail(errors.New(b.String()))
	}
	return res, nil
}

// recoverRequest is how survivor's recover runs: when its survey a moment
// ago could not read kubeadm-config (no quorum: no apiserver can), the
// recover does not wait for it again; it would end where the survey did,
// on the host's own manifests.
func recoverRequest(surveys []Survey, survivor string) hostapi.RecoverRequest {
	for _, s := range surveys {
		if s.Host == survivor && s.Report != nil {
			src := s.Report.ConfigSource
			return hostapi.RecoverRequest{SkipKubeadmConfig: src != "" && !strings.HasPrefix(src, hostapi.KubeadmConfigSource)}
		}
	}
	return hostapi.RecoverRequest{}
}

// survey asks every host at once: a powered-off host costs a dial timeout.
func survey(ctx context.Context, hosts *hostapi.Client, names []string) []Survey {
	out := make([]Survey, len(names))
	var wg sync.WaitGroup
	for i, h := range names {
		wg.Go(func() {
			s := Survey{Host: h}
			rep, err := hosts.RecoverSurvey(ctx, h)
			switch {
			case err != nil && errors.Is(err, hostapi.ErrUnreachable):
				// Powered off, booting: waited for.
				s.Unreachable = err.Error()
			case err != nil:
				s.Failed = err.Error()
			default:
				s.Report, s.Node = rep, rep.Node
			}
			out[i] = s
		})
	}
	wg.Wait()
	return out
}

// joinAll joins the hosts that answered, one at a time (etcd takes one
// learner at a time), then waits for the others, joining each as it
// answers, until o.Wait has passed.
func joinAll(ctx context.Context, hosts *hostapi.Client, p *Plan, endpoint string, o Options) (joined []string, left []Left) {
	req := hostapi.JoinRequest{Endpoints: []string{endpoint}}
	command := hostapi.JoinCall(req).HostCommand()
	join := func(h string) error {
		fmt.Fprintf(o.Out, "\nJoining %s to %s ...\n", h, endpoint)
		if _, err := hosts.Join(ctx, h, req); err != nil {
			return err
		}
		joined = append(joined, h)
		return nil
	}
	waiting := append([]string(nil), p.Wait...)
	for _, h := range p.Join {
		if err := join(h); err != nil {
			if hostapi.Unreachable(err) {
				fmt.Fprintf(o.Out, "  %s does not answer now: %v\n", h, err)
				waiting = append(waiting, h)
				continue
			}
			left = append(left, Left{Host: h, Why: err.Error(), Command: command})
		}
	}
	if len(waiting) == 0 {
		return joined, left
	}
	deadline := time.Now().Add(o.Wait)
	fmt.Fprintf(o.Out, "\nWaiting up to %s (until %s) for %s to answer, to join each as it does ...\n",
		o.Wait, deadline.Format("15:04:05"), strings.Join(waiting, ", "))
	for len(waiting) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		var still []string
		for _, h := range waiting {
			// Any answer but "unreachable" means the host is back: the join
			// then says what, if anything, is wrong there.
			if err := hosts.Ping(ctx, h); err != nil && hostapi.Unreachable(err) {
				still = append(still, h)
				continue
			}
			fmt.Fprintf(o.Out, "\n%s answers now.\n", h)
			if err := join(h); err != nil {
				left = append(left, Left{Host: h, Why: err.Error(), Command: command})
			}
		}
		waiting = still
		if len(waiting) > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(o.Poll):
			}
		}
	}
	for _, h := range waiting {
		why := fmt.Sprintf("did not answer within %s", o.Wait)
		if ctx.Err() != nil {
			why = "not tried: " + ctx.Err().Error()
		}
		left = append(left, Left{Host: h, Why: why, Command: command})
	}
	return joined, left
}

func printSurveys(out io.Writer, surveys []Survey) {
	for _, s := range surveys {
		r := s.Report
		switch {
		case s.Unreachable != "":
			fmt.Fprintf(out, "  %-24s not reachable: %s\n", s.Host, firstLine(s.Unreachable))
		case s.Failed != "":
			fmt.Fprintf(out, "  %-24s cannot survey: %s\n", s.Host, firstLine(s.Failed))
		case r.Resuming:
			fmt.Fprintf(out, "  %-24s an unfinished recovery is recorded here\n", s.name())
		case r.Survey == nil:
			fmt.Fprintf(out, "  %-24s %s\n", s.name(), firstLine(r.Error))
		default:
			l := r.Survey.Local
			state := "etcd running"
			if l.Offline {
				state = "etcd stopped (data dir read offline)"
			}
			line := fmt.Sprintf("  %-24s member %-16s raft index %-8d revision %-8d %s", s.name(), l.ID, l.RaftIndex, l.Revision, state)
			switch {
			case r.Survey.Quorum:
				line += "; etcd has a quorum"
			case r.Error != "":
				line += "; its recover refuses: " + firstLine(r.Error)
			}
			fmt.Fprintln(out, line)
		}
	}
}

func printPlan(out io.Writer, p *Plan) {
	fmt.Fprintf(out, "Plan: %s.\n", p.Why)
	n := 0
	step := func(f string, a ...any) {
		n++
		fmt.Fprintf(out, "  %d. %s\n", n, fmt.Sprintf(f, a...))
	}
	endpoint := p.Endpoint
	if endpoint == "" {
		endpoint = p.Anchor + "'s client URL"
	}
	if p.Survivor != "" {
		verb := "recover"
		if p.Resume {
			verb = "recover (carried on from its journal)"
		}
		step("on %s: kubectl-etcd %s --yes: etcd restarted from its data as a new single-member cluster; every other member cut off", p.Survivor, verb)
	}
	for _, h := range p.Join {
		step("on %s: kubectl-etcd join --endpoints %s (its stale data moved aside)", h, endpoint)
	}
	for _, h := range p.Wait {
		step("on %s, when it answers: kubectl-etcd join --endpoints %s", h, endpoint)
	}
	step("on %s: kubectl-etcd status --local", p.Anchor)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
