package hostlocal

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"

	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/drift"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdversion"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// ReconfigureHint is the host-local reconfigure, as advice quotes it.
const ReconfigureHint = "kubectl-etcd reconfigure --local"

// ReconfigureOptions are `reconfigure`'s inputs on a host.
type ReconfigureOptions struct {
	// Endpoints are extra client URLs to find the cluster by, for the
	// quorum check before etcd restarts.
	Endpoints []string
}

// Reconfigure rewrites this host's etcd manifest as kubeadm writes it from
// the cluster's ClusterConfiguration now (and the host's kubeadm patches),
// keeping only the member's bootstrap flags (--initial-cluster and its
// state, which a member with data ignores); hand edits go, which is the
// point: a setting every member must share changes by editing
// kubeadm-config, then reconfiguring member by member. kubelet then
// restarts etcd with it; the verb waits until the new one serves with a
// leader. Only when the other members hold the quorum without this one
// (maintenance.CheckRestart, checked right before). A manifest that is
// already kubeadm's is left alone, so a rerun converges.
func (e *Env) Reconfigure(ctx context.Context, o ReconfigureOptions) (*Result, error) {
	return e.run(ctx, "reconfigure", o.Endpoints, func(res *Result) (*plan.Plan, *etcdcluster.Client, error) {
		return e.planReconfigure(ctx, o, res)
	})
}

func (e *Env) planReconfigure(ctx context.Context, o ReconfigureOptions, res *Result) (*plan.Plan, *etcdcluster.Client, error) {
	h, cfg := e.Host, e.Config
	if !h.EtcdManifestExists() {
		if h.StoppedManifestExists() {
			return nil, nil, fmt.Errorf("etcd's manifest on %s is parked by an interrupted run (%s): finish that run first (rerun it), then reconfigure", cfg.NodeName(), h.StateDir())
		}
		return nil, nil, fmt.Errorf("%s runs no etcd member (no %s): nothing to reconfigure", cfg.NodeName(), h.EtcdManifest())
	}
	cur, err := h.ReadManifest(h.EtcdManifest())
	if err != nil {
		return nil, nil, err
	}
	members, _ := staticpod.InitialCluster(cur)
	want, err := staticpod.RenderEtcdPod(cfg, members)
	if err != nil {
		return nil, nil, err
	}
	manifest, err := staticpod.RenderEtcdManifest(cfg, members)
	if err != nil {
		return nil, nil, err
	}
	p := &plan.Plan{Title: fmt.Sprintf("reconfigure: %s's etcd manifest as kubeadm writes it, configuration from %s", cfg.NodeName(), cfg.Source)}
	onDisk, err := os.ReadFile(h.Path(h.EtcdManifest()))
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", h.EtcdManifest(), err)
	}
	if bytes.Equal(onDisk, manifest) {
		res.Notes = append(res.Notes, fmt.Sprintf("nothing to do on %s: its etcd manifest is already what kubeadm writes from this configuration", cfg.NodeName()))
		return p, nil, nil
	}
	var changes []string
	for _, d := range drift.Compare(cur, want) {
		changes = append(changes, d.String())
	}
	what := "changes: " + strings.Join(changes, "; ")
	if len(changes) == 0 {
		what = "the image, flags and requests are the same; other fields differ (probes, volumes, formatting)"
	}
	c, err := e.clusterClient(ctx, e.candidateEndpoints(o.Endpoints, len(h.EtcdPIDs(cfg)) > 0))
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach the etcd cluster from %s for the quorum check: %w", cfg.NodeName(), err)
	}
	if _, err := e.checkRestart(ctx, c); err != nil {
		return nil, c, err
	}
	p.Add("manifest", fmt.Sprintf("write %s as kubeadm writes it (%s); the old one is kept in %s; kubelet restarts etcd with it: wait until the new one serves with a leader",
		h.EtcdManifest(), what, h.StateDir()), func(ctx context.Context) (string, error) {
		if _, err := e.checkRestart(ctx, c); err != nil {
			return "", err
		}
		return h.ApplyEtcdManifest(ctx, cfg, manifest, e.Timeouts.EtcdStart)
	})
	return p, c, nil
}

// UpgradeOptions are `upgrade --local`'s inputs.
type UpgradeOptions struct {
	// Version is the etcd release this host's member moves to ("3.7.0").
	Version string
	// Endpoints are extra client URLs to find the cluster by.
	Endpoints []string
}

// Upgrade moves this host's member to etcd o.Version, for a host the
// plugin cannot reach: the same version-skew check as the plugin's
// (etcdversion.CheckUpgrade, against every member's version as etcd
// reports it), then Reconfigure with kubeadm's image tag of that version.
// kubeadm-config is not written (the apiserver may be down): the plan says
// to record the tag, which `kubectl etcd upgrade --version` does while it
// rolls the other members.
func (e *Env) Upgrade(ctx context.Context, o UpgradeOptions) (*Result, error) {
	return e.run(ctx, "upgrade", o.Endpoints, func(res *Result) (*plan.Plan, *etcdcluster.Client, error) {
		return e.planUpgrade(ctx, o, res)
	})
}

func (e *Env) planUpgrade(ctx context.Context, o UpgradeOptions, res *Result) (*plan.Plan, *etcdcluster.Client, error) {
	h, cfg := e.Host, e.Config
	target, err := etcdversion.Parse(o.Version)
	if err != nil {
		return nil, nil, err
	}
	c, err := e.clusterClient(ctx, e.candidateEndpoints(o.Endpoints, len(h.EtcdPIDs(cfg)) > 0))
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach the etcd cluster from %s to read the members' versions: %w", cfg.NodeName(), err)
	}
	statuses, err := c.Statuses(ctx)
	c.Close()
	if err != nil {
		return nil, nil, err
	}
	running, err := etcdversion.OfMembers(statuses, func(m etcdcluster.Member) string { return m.Name })
	if err != nil {
		return nil, nil, err
	}
	if _, err := etcdversion.CheckUpgrade(running, target); err != nil {
		return nil, nil, fmt.Errorf("%w; nothing was changed", err)
	}
	if cfg.Init.Etcd.Local == nil {
		cfg.Init.Etcd.Local = &kubeadmapi.LocalEtcd{}
	}
	if tag := cfg.Init.Etcd.Local.ImageTag; tag != target.ImageTag() {
		res.Notes = append(res.Notes, fmt.Sprintf("the cluster's configuration (%s) gives etcd image tag %q: this member is written with %s, and the tag belongs in kubeadm-config's etcd.local.imageTag so that kubeadm and kubectl-etcd keep it (`kubectl etcd upgrade --version %s` records it, and rolls the other members)",
			cfg.Source, tag, target.ImageTag(), target))
		cfg.Init.Etcd.Local.ImageTag = target.ImageTag()
	}
	p, c, err := e.planReconfigure(ctx, ReconfigureOptions{Endpoints: o.Endpoints}, res)
	if p != nil {
		p.Title = fmt.Sprintf("upgrade: %s's member to etcd %s (image tag %s), its manifest as kubeadm writes it", cfg.NodeName(), target, target.ImageTag())
	}
	return p, c, err
}
