package hostlocal

import (
	"context"
	"fmt"
	"strings"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
	etcdutil "k8s.io/kubernetes/cmd/kubeadm/app/util/etcd"
)

// Init makes this host the first member of a new cluster: etcd CA (only if
// none exists), certificates, data dir, a single-member manifest, and waits
// until the member serves. On a host that already runs a healthy single
// member of its own it does nothing.
func (e *Env) Init(ctx context.Context) (*Result, error) {
	return e.run(ctx, "init", nil, func(res *Result) (*plan.Plan, *etcdcluster.Client, error) {
		p, err := e.planInit(ctx, res)
		return p, nil, err
	})
}

func (e *Env) planInit(ctx context.Context, res *Result) (*plan.Plan, error) {
	h, cfg := e.Host, e.Config
	p := &plan.Plan{Title: fmt.Sprintf("init: first etcd member on %s (%s), configuration from %s", cfg.NodeName(), cfg.PeerURL(), cfg.Source)}
	running := len(h.EtcdPIDs(cfg)) > 0
	if h.EtcdManifestExists() || running {
		if running {
			if st, err := h.LocalStatus(ctx, cfg); err == nil {
				res.Notes = append(res.Notes, fmt.Sprintf("etcd already runs here: member %x of cluster %x; nothing to do", st.Header.MemberId, st.Header.ClusterId))
				return p, nil
			}
		}
		return nil, fmt.Errorf("%s already has an etcd manifest (%s)%s: init starts a new cluster and will not replace it; "+
			"use `kubectl-etcd status --local` to see it, or `kubectl-etcd leave` first", cfg.NodeName(), h.EtcdManifest(), map[bool]string{true: " and etcd is running", false: ""}[running])
	}
	facts, err := e.dataDirState()
	if err != nil {
		return nil, fmt.Errorf("reading data dir %s: %w", cfg.DataDir(), err)
	}
	if facts.HasData {
		return nil, fmt.Errorf("data dir %s holds data of etcd cluster %x (member %x, revision %d): init would start a new cluster beside it; "+
			"to keep that data use `kubectl-etcd recover`, to discard it move it aside yourself", cfg.DataDir(), facts.ClusterID, facts.MemberID, facts.Revision)
	}
	if err := portsFree(cfg); err != nil {
		return nil, err
	}
	certs, err := h.PlanCerts(cfg, true)
	if err != nil {
		return nil, err
	}
	res.Certs = certs
	p.Add("certificates", describeCerts(certs), func(context.Context) (string, error) {
		done, err := h.EnsureCerts(cfg, true)
		res.Certs = done
		return describeCerts(done), err
	})
	p.Add("data dir", fmt.Sprintf("create %s (mode 0700)", cfg.DataDir()), func(context.Context) (string, error) {
		return "", etcdutil.CreateDataDirectory(h.Path(cfg.DataDir()))
	})
	manifest, err := staticpod.RenderEtcdManifest(cfg, nil)
	if err != nil {
		return nil, err
	}
	p.Add("manifest", fmt.Sprintf("write %s: new single-member cluster %s=%s", h.EtcdManifest(), cfg.NodeName(), cfg.PeerURL()), func(context.Context) (string, error) {
		return "", h.WriteEtcdManifest(manifest)
	})
	p.Add("wait", "until the member serves (kubelet starts the static pod)", func(ctx context.Context) (string, error) {
		st, err := h.WaitEtcdServing(ctx, cfg, e.Timeouts.EtcdStart)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("member %x of new cluster %x serving", st.Header.MemberId, st.Header.ClusterId), nil
	})
	return p, nil
}

func describeCerts(certs []staticpod.CertAction) string {
	var parts []string
	for _, c := range certs {
		s := c.Action + " " + c.Name
		if c.Reason != "" && c.Action != "keep" {
			s += " (" + c.Reason + ")"
		}
		if c.MovedTo != "" {
			s += " [old moved to " + c.MovedTo + "]"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}
