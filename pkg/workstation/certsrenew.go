package workstation

import (
	"context"
	"fmt"
	"strings"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
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
	hint := fmt.Sprintf("%s --before %s", renewHint, o.Before)
	r := roll{
		run: func(ctx context.Context, node string, dryRun bool) (*hostapi.VerbResult, error) {
			return s.Hosts.CertsRenew(ctx, node, hostapi.CertsRenewRequest{Before: o.Before, DryRun: dryRun})
		},
		hint: hint, verb: "renewing", renewHint: hint,
		describe: func(steps []plan.StepResult) string {
			var sub []string
			detail := ""
			for _, st := range steps {
				sub = append(sub, st.Name)
				if st.Name == "renew certificates" {
					detail = " (" + st.Detail + ")"
				}
			}
			return strings.Join(sub, ", then ") + detail
		},
	}
	// A host that cannot be asked is left; the others may still go on
	// (CheckRestart refuses if its member is down and needed).
	order, turns, notes, left := s.turns(ctx, obs, targets, r)
	p := &plan.Plan{Title: fmt.Sprintf("renew the etcd certificates that expire within %s, one host at a time: %s", o.Before, strings.Join(order, ", ")),
		Notes: append(append([]string{"each host reissues its own certificates with kubeadm's specs and its own etcd CA (no key leaves it), then restarts etcd and kube-apiserver where they hold old ones; " +
			"before each host the other members must hold the quorum without its member, after each every member must be healthy again; the leader's host goes last. The etcd CA is not renewed"}, notes...), left...)}
	for _, tn := range turns {
		p.AddSteps("renew "+tn.host, tn.detail, func(ctx context.Context) (string, []plan.StepResult, error) {
			return s.rollHost(ctx, c, tn.host, r)
		})
	}
	res, err := s.execute(ctx, "certs renew", p, o.DryRun, obs)
	if err != nil || len(left) == 0 || o.DryRun {
		return res, err
	}
	res.Next = strings.Join(left, "; ")
	return res, fmt.Errorf("certificates renewed where the plugin could reach; left: %s", strings.Join(left, "; "))
}
