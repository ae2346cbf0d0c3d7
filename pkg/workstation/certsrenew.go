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

// renewHint is the host-local command for a host the plugin cannot reach.
const renewHint = "kubectl-etcd certs renew --local"

// RenewCertsOptions say which hosts' certificates to renew.
type RenewCertsOptions struct {
	Nodes []string
	All   bool
	// Before is --before as given ("30d"), passed on to the hosts.
	Before string
	DryRun bool
	// HealthyTimeout bounds the wait for every member to be healthy again
	// after a host's restarts. Default 3 minutes.
	HealthyTimeout time.Duration
	// UnreachableWait is how long a Ready host that cannot run a pod is
	// asked again before it is left to the host-local command: right after
	// an interrupted run its etcd and apiserver may still be restarting.
	// Default 90 s.
	UnreachableWait time.Duration
}

// RenewCerts renews the etcd certificates of control-plane hosts one host
// at a time (`certs renew --local` in a host pod on each), the leader's
// host last: each host's etcd restarts, so before each the other members
// must hold the quorum without it (maintenance.CheckRestart), and after
// each every member must be healthy again before the next. Each host is
// first asked for its own plan (a dry run of the host verb); hosts with
// nothing to do are left alone. A host that cannot run a pod (NotReady:
// usually its apiserver lost its etcd, e.g. to expired certificates) is
// named with the host-local command, and the verb ends with an error.
func (s *Session) RenewCerts(ctx context.Context, o RenewCertsOptions) (*Result, error) {
	if o.HealthyTimeout <= 0 {
		o.HealthyTimeout = 3 * time.Minute
	}
	if o.UnreachableWait <= 0 {
		o.UnreachableWait = 90 * time.Second
	}
	c := &execCluster{s: s}
	obs, err := c.observe(ctx)
	if err != nil {
		return nil, err
	}
	targets := o.Nodes
	if o.All {
		targets = nil
		for _, n := range obs.nodes {
			targets = append(targets, n.Name)
		}
	}
	for _, n := range o.Nodes {
		if _, ok := nodeNamed(obs.nodes, n); !ok {
			if err := s.notControlPlane(ctx, n); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%q is not a control-plane node of this cluster (control-plane nodes: %s)", n, names(obs.nodes))
		}
	}
	order := maintenance.RestartOrder(targets, obs.statuses, obs.hostOf)
	hint := fmt.Sprintf("%s --before %s", renewHint, o.Before)

	// Each host's own plan, read in parallel (nothing changes).
	plans := make([]*hostapi.VerbResult, len(order))
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for i, h := range order {
		if n, _ := nodeNamed(obs.nodes, h); !n.Ready {
			errs[i] = fmt.Errorf("%s is NotReady and cannot run a host pod: run `%s` on it as root", h, hint)
			continue
		}
		wg.Go(func() {
			plans[i], errs[i] = s.renewPlan(ctx, h, o, hint)
		})
	}
	wg.Wait()

	p := &plan.Plan{Title: fmt.Sprintf("renew the etcd certificates that expire within %s, one host at a time: %s", o.Before, strings.Join(order, ", ")),
		Notes: []string{"each host reissues its own certificates with kubeadm's specs and its own etcd CA (no key leaves it), then restarts etcd and kube-apiserver where they hold old ones; " +
			"before each host the other members must hold the quorum without its member, after each every member must be healthy again; the leader's host goes last. The etcd CA is not renewed"}}
	var left []string
	for i, h := range order {
		if errs[i] != nil {
			// A host that answered nothing: the others may still go on
			// (CheckRestart refuses if its member is down and needed).
			left = append(left, errs[i].Error())
			p.Notes = append(p.Notes, errs[i].Error())
			continue
		}
		var sub []string
		for _, st := range plans[i].Steps {
			sub = append(sub, st.Name)
		}
		if len(sub) == 0 {
			p.Notes = append(p.Notes, strings.Join(plans[i].Notes, "; "))
			continue
		}
		detail := fmt.Sprintf("on %s: %s", h, strings.Join(sub, ", then "))
		for _, st := range plans[i].Steps {
			if st.Name == "renew certificates" {
				detail += " (" + st.Detail + ")"
			}
		}
		p.AddSteps("renew "+h, detail, func(ctx context.Context) (string, []plan.StepResult, error) {
			return s.renewHost(ctx, c, h, o, hint)
		})
	}
	res, err := s.execute(ctx, "certs renew", p, o.DryRun, obs)
	if err != nil || len(left) == 0 || o.DryRun {
		return res, err
	}
	res.Next = strings.Join(left, "; ")
	return res, fmt.Errorf("certificates renewed where the plugin could reach; left: %s", strings.Join(left, "; "))
}

// renewPlan asks host for its plan (the host verb's dry run). A Ready host
// whose kubelet cannot start the pod is asked again for a while: after an
// interrupted renew its etcd, then its apiserver, may still be restarting
// (kubelet backs off a container restarted twice in a short while).
func (s *Session) renewPlan(ctx context.Context, host string, o RenewCertsOptions, hint string) (*hostapi.VerbResult, error) {
	start := time.Now()
	for {
		res, err := s.Hosts.CertsRenew(ctx, host, hostapi.CertsRenewRequest{Before: o.Before, DryRun: true})
		if !errors.Is(err, hostapi.ErrUnreachable) {
			return res, err
		}
		if time.Since(start) > o.UnreachableWait {
			first, _, _ := strings.Cut(err.Error(), "\n")
			return nil, fmt.Errorf("%s could not run a host pod for %s (%s): run `%s` on it as root", host, o.UnreachableWait, first, hint)
		}
		fmt.Fprintf(s.Out, "      %s cannot run a pod yet (its apiserver may be restarting): asking again\n", host)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
}

// renewHost is one host's turn: the quorum check, the host verb, then the
// wait until every member is healthy again.
func (s *Session) renewHost(ctx context.Context, c *execCluster, host string, o RenewCertsOptions, hint string) (string, []plan.StepResult, error) {
	obs, err := c.observe(ctx)
	if err != nil {
		return "", nil, err
	}
	if err := maintenance.CheckRestart(obs.statuses, maintenance.MemberOn(obs.statuses, host, obs.hostOf), obs.hostOf, hint); err != nil {
		return "", nil, err
	}
	r, err := s.Hosts.CertsRenew(ctx, host, hostapi.CertsRenewRequest{Before: o.Before})
	if err != nil {
		return "", stepsOf(r), err
	}
	start := time.Now()
	var last []etcdcluster.Status
	err = wait.PollUntilContextTimeout(ctx, 2*time.Second, o.HealthyTimeout, true, func(ctx context.Context) (bool, error) {
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
		return "", stepsOf(r), fmt.Errorf("after renewing on %s, not every member was healthy within %s (%s); stopping before the next host", host, o.HealthyTimeout, strings.Join(down, "; "))
	}
	return fmt.Sprintf("every member healthy %s later", time.Since(start).Round(time.Second)), stepsOf(r), nil
}
