package workstation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdversion"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// UpgradeOptions say what to upgrade to.
type UpgradeOptions struct {
	// Version is the etcd release ("3.7.0"); the image is kubeadm's tag of
	// it ("3.7.0-0") in the cluster's image repository.
	Version    string
	DryRun     bool
	NoSnapshot bool
}

// Upgrade moves every member to etcd o.Version: the version skew is
// checked against what every member runs (etcdversion.CheckUpgrade: one
// minor at a time, never down, an interrupted upgrade only onwards); the
// tag is recorded in kubeadm-config (etcd.local.imageTag), so that
// kubeadm join and upgrade and kubectl etcd scale and replace use it; then
// every member's manifest is rewritten from it as Reconfigure rolls
// (followers first, the leader last, quorum kept); last, every member must
// report the new version. A rerun after a crash finds the tag recorded
// and the members already moved, and goes on with the rest.
func (s *Session) Upgrade(ctx context.Context, o UpgradeOptions) (*Result, error) {
	target, err := etcdversion.Parse(o.Version)
	if err != nil {
		return nil, err
	}
	c := &execCluster{s: s}
	obs, err := c.observe(ctx)
	if err != nil {
		return nil, err
	}
	if err := obs.checkNoAlarms(0); err != nil {
		return nil, err
	}
	running, err := memberVersions(obs)
	if err != nil {
		// Right after an interrupted run a member may be restarting
		// with its new manifest: give it a minute before refusing.
		fmt.Fprintf(s.Out, "%v\nwaiting up to %s for every member to answer (one restarting after an interrupted run?)\n", firstLine(err.Error()), upgradeAnswerWait)
		werr := wait.PollUntilContextTimeout(ctx, 2*time.Second, upgradeAnswerWait, false, func(ctx context.Context) (bool, error) {
			if obs2, err := c.observe(ctx); err == nil {
				if r, err := memberVersions(obs2); err == nil {
					obs, running = obs2, r
					return true, nil
				}
			}
			return false, nil
		})
		if werr != nil {
			return nil, err
		}
	}
	todo, err := etcdversion.CheckUpgrade(running, target)
	if err != nil {
		return nil, fmt.Errorf("%w; nothing was changed", err)
	}
	cm, err := s.Clientset.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubeadm-config", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading ConfigMap kube-system/kubeadm-config: %w", err)
	}
	raw := []byte(cm.Data["ClusterConfiguration"])
	updated, changed, err := withEtcdImageTag(raw, target.ImageTag())
	if err != nil {
		return nil, fmt.Errorf("ConfigMap kube-system/kubeadm-config: %w", err)
	}
	// The hosts plan, and later write, with the new tag.
	s.Hosts.SetClusterConfig(updated)

	r := roll{run: s.Hosts.Reconfigure, hint: hostlocal.ReconfigureHint, verb: "upgrading", renewHint: renewHint}
	order, turns, notes, left := s.turns(ctx, obs, obs.memberHosts(), r)
	if len(left) > 0 && !o.DryRun {
		return nil, fmt.Errorf("every member must be upgraded, and the plugin cannot reach: %s; nothing was changed", strings.Join(left, "; "))
	}

	p := &plan.Plan{Title: fmt.Sprintf("upgrade etcd to %s (image tag %s), one member at a time: %s", target, target.ImageTag(), strings.Join(order, ", "))}
	if len(todo) == 0 {
		p.Notes = append(p.Notes, "every member runs "+target.String()+" already")
	} else {
		p.Notes = append(p.Notes, "members not on "+target.String()+" yet: "+strings.Join(todo, ", "))
	}
	p.Notes = append(append(p.Notes, notes...), left...)
	if (changed || len(turns) > 0) && !o.NoSnapshot {
		snapNode, err := snapshotNode(obs)
		if err != nil {
			return nil, err
		}
		s.addSnapshotStep(p, snapNode, "pre-upgrade")
	}
	if changed {
		p.Add("kubeadm-config", fmt.Sprintf("set etcd.local.imageTag to %s in ConfigMap kube-system/kubeadm-config (kubeadm join and upgrade, and kubectl etcd scale and replace, then use it)", target.ImageTag()),
			func(ctx context.Context) (string, error) {
				return "", s.recordEtcdImageTag(ctx, target.ImageTag())
			})
	}
	for _, tn := range turns {
		p.AddSteps("upgrade "+tn.host, tn.detail, func(ctx context.Context) (string, []plan.StepResult, error) {
			return s.rollHost(ctx, c, tn.host, r)
		})
	}
	if len(todo) > 0 || len(turns) > 0 {
		p.Add("verify", "every member reports etcd "+target.String(), func(ctx context.Context) (string, error) {
			obs, err := c.observe(ctx)
			if err != nil {
				return "", err
			}
			running, err := memberVersions(obs)
			if err != nil {
				return "", err
			}
			var behind []string
			for m, v := range running {
				if v.Compare(target) != 0 {
					behind = append(behind, fmt.Sprintf("%s runs %s", m, v))
				}
			}
			if len(behind) > 0 {
				slices.Sort(behind)
				return "", fmt.Errorf("not every member runs %s: %s; rerun the upgrade to go on", target, strings.Join(behind, "; "))
			}
			return fmt.Sprintf("%d members on %s", len(running), target), nil
		})
	}
	return s.execute(ctx, "upgrade", p, o.DryRun, obs)
}

// upgradeAnswerWait is how long an upgrade waits for a member that does not
// answer before it refuses: long enough for a member an interrupted run
// left restarting, short enough for an operator whose member is down.
const upgradeAnswerWait = time.Minute

// memberVersions is the etcd version every voting member reports, by host
// (member name when it runs on no control-plane node); an upgrade needs
// them all.
func memberVersions(obs *observed) (map[string]etcdversion.Version, error) {
	return etcdversion.OfMembers(obs.statuses, func(m etcdcluster.Member) string {
		if h := obs.hostOf(m); h != "" {
			return h
		}
		return m.String()
	})
}

// recordEtcdImageTag writes tag into kubeadm-config's etcd.local.imageTag,
// on the ConfigMap as it is now (its resourceVersion guards the write).
func (s *Session) recordEtcdImageTag(ctx context.Context, tag string) error {
	cms := s.Clientset.CoreV1().ConfigMaps("kube-system")
	cm, err := cms.Get(ctx, "kubeadm-config", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading ConfigMap kube-system/kubeadm-config: %w", err)
	}
	updated, changed, err := withEtcdImageTag([]byte(cm.Data["ClusterConfiguration"]), tag)
	if err != nil || !changed {
		return err
	}
	cm.Data["ClusterConfiguration"] = string(updated)
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating ConfigMap kube-system/kubeadm-config: %w", err)
	}
	return nil
}

// withEtcdImageTag is the ClusterConfiguration raw with etcd.local.imageTag
// set to tag, and whether that changed it. The document is edited as
// data, so every other field stays as the cluster has it.
func withEtcdImageTag(raw []byte, tag string) ([]byte, bool, error) {
	cc, err := staticpod.ParseClusterConfiguration(raw)
	if err != nil {
		return nil, false, err
	}
	if cc.Etcd.External != nil {
		return nil, false, errors.New("this cluster uses external etcd (etcd.external): kubectl-etcd manages kubeadm's stacked etcd only")
	}
	if cc.Etcd.Local != nil && cc.Etcd.Local.ImageTag == tag {
		return raw, false, nil
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, false, fmt.Errorf("reading the ClusterConfiguration: %w", err)
	}
	etcd, _ := doc["etcd"].(map[string]any)
	if etcd == nil {
		etcd = map[string]any{}
		doc["etcd"] = etcd
	}
	local, _ := etcd["local"].(map[string]any)
	if local == nil {
		local = map[string]any{}
		etcd["local"] = local
	}
	local["imageTag"] = tag
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, false, err
	}
	if cc, err := staticpod.ParseClusterConfiguration(out); err != nil || cc.Etcd.Local == nil || cc.Etcd.Local.ImageTag != tag {
		return nil, false, fmt.Errorf("setting etcd.local.imageTag did not give a ClusterConfiguration with it (%v)", err)
	}
	return out, true, nil
}
