package hostlocal

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/maintenance"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// RenewHint is the host-local renew command, as advice quotes it.
const RenewHint = "kubectl-etcd certs renew --local"

// RenewCertsOptions are `certs renew`'s inputs on a host.
type RenewCertsOptions struct {
	// Before: certificates with less validity left than this are reissued.
	Before time.Duration
	// Endpoints are extra client URLs to find the cluster by, for the
	// quorum check before etcd restarts.
	Endpoints []string
}

// RenewCerts renews this host's etcd certificates (and kube-apiserver's
// etcd client certificate) that expire within o.Before, then restarts the
// processes that hold old ones: etcd when its server or peer certificate
// is newer than the process, kube-apiserver when its etcd client
// certificate is. Deciding by file and process times, not by what this run
// wrote, makes a rerun after an interruption finish the restarts, and
// also restarts what `kubeadm certs renew` left for the operator to
// restart. etcd is restarted only when the other members keep the quorum
// without it (maintenance.CheckRestart), checked right before.
func (e *Env) RenewCerts(ctx context.Context, o RenewCertsOptions) (*Result, error) {
	return e.run(ctx, "certs renew", o.Endpoints, func(res *Result) (*plan.Plan, *etcdcluster.Client, error) {
		return e.planRenewCerts(ctx, o, res)
	})
}

func (e *Env) planRenewCerts(ctx context.Context, o RenewCertsOptions, res *Result) (*plan.Plan, *etcdcluster.Client, error) {
	h, cfg := e.Host, e.Config
	if !h.HasEtcdCA(cfg) {
		return nil, nil, fmt.Errorf("%w: certs renew signs this host's certificates with it", staticpod.ErrNoEtcdCA)
	}
	actions, err := h.PlanRenewCerts(cfg, o.Before)
	if err != nil {
		return nil, nil, err
	}
	res.Certs = actions
	p := &plan.Plan{Title: fmt.Sprintf("renew the etcd certificates of %s that expire within %s, and restart what holds old ones",
		cfg.NodeName(), staticpod.FormatDays(o.Before))}
	var renew []string
	servingRenewed, clientRenewed := false, false
	for _, a := range actions {
		if a.Action == "keep" {
			continue
		}
		renew = append(renew, fmt.Sprintf("%s (%s)", a.Name, a.Reason))
		switch a.Name {
		case "etcd-server", "etcd-peer":
			servingRenewed = true
		case "apiserver-etcd-client":
			clientRenewed = true
		}
	}
	if len(renew) > 0 {
		p.Add("renew certificates", "reissue with kubeadm's own specs for this host, for one year, signed by the etcd CA here: "+strings.Join(renew, ", ")+
			"; the old files move into "+h.StateDir()+"/replaced-certs; keys stay on this host (0600)",
			func(context.Context) (string, error) {
				done, err := h.RenewCerts(cfg, o.Before)
				if err != nil {
					return "", err
				}
				res.Certs = done
				var names []string
				for _, a := range done {
					if a.Action != "keep" {
						names = append(names, a.Name)
					}
				}
				return "renewed " + strings.Join(names, ", "), nil
			})
	}

	etcdPIDs := h.EtcdPIDs(cfg)
	restartEtcd := h.EtcdManifestExists() && (servingRenewed || h.StartedBefore(etcdPIDs, staticpod.EtcdServingCerts(cfg)...))
	apiPIDs := h.APIServerPIDs()
	restartAPI := h.APIServerManifestExists() && (clientRenewed || h.StartedBefore(apiPIDs, staticpod.APIServerEtcdClientCerts(cfg)...))
	var c *etcdcluster.Client
	quorum := true // whether the cluster had a quorum: then restarted processes must come back healthy
	if restartEtcd {
		// The cluster as seen from here, for the quorum check; none
		// answering is no refusal: with every member's certificates
		// expired (kubeadm issues them all on one day) no quorum is left
		// to lose, and restarting with new ones is how it comes back.
		c, err = e.clusterClient(ctx, e.candidateEndpoints(o.Endpoints, len(etcdPIDs) > 0))
		if err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("no etcd member answered (%v): no quorum to lose by restarting this member; "+
				"it comes back once enough members run with new certificates (run this on each control-plane host)", err))
			c, quorum = nil, false
		} else if quorum, err = e.checkRestart(ctx, c); err != nil {
			return nil, c, err
		}
		p.Add("restart etcd", "SIGTERM to etcd (a leader hands leadership over first); kubelet starts it again in the same pod with the certificates on disk; wait until it serves with a leader",
			func(ctx context.Context) (string, error) {
				if c != nil {
					if _, err := e.checkRestart(ctx, c); err != nil {
						return "", err
					}
				}
				return h.RestartEtcd(ctx, cfg, e.kubeletRestartTimeout(), e.Timeouts.EtcdStart, quorum)
			})
	}
	if restartAPI {
		p.Add("restart kube-apiserver", "SIGTERM to kube-apiserver; kubelet starts it again in the same pod with its etcd client certificate on disk; wait until /readyz answers",
			func(ctx context.Context) (string, error) {
				return h.RestartAPIServer(ctx, cfg, e.kubeletRestartTimeout(), e.Timeouts.APIServer, quorum)
			})
	}
	if len(p.Steps) == 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("nothing to do on %s: every certificate has more than %s left and every process runs with the certificates on disk",
			cfg.NodeName(), staticpod.FormatDays(o.Before)))
	}
	return p, c, nil
}

// checkRestart reads the members' health and applies maintenance.CheckRestart
// to this host's member; quorum says whether any member is healthy (has a
// leader), i.e. whether the cluster has a quorum now.
func (e *Env) checkRestart(ctx context.Context, c *etcdcluster.Client) (quorum bool, err error) {
	statuses, err := c.Statuses(ctx)
	if err != nil {
		return false, fmt.Errorf("reading the members' health before restarting etcd: %w", err)
	}
	var id uint64
	if me := self(etcdcluster.MembersOf(statuses), e.Config.PeerURL()); me != nil {
		id = me.ID
	}
	quorum = slices.ContainsFunc(statuses, func(s etcdcluster.Status) bool { return s.Healthy })
	return quorum, maintenance.CheckRestart(statuses, id, memberHost, RenewHint)
}

// kubeletRestartTimeout bounds a kubelet restart that clears a crash-loop
// back-off; 0 when the operator said not to restart kubelet.
func (e *Env) kubeletRestartTimeout() time.Duration {
	if e.NoKubeletRestart {
		return 0
	}
	return e.Timeouts.Kubelet
}
