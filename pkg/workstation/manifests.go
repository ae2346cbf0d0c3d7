package workstation

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/drift"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/tunnel"
)

// manifests is what status compares the members' manifests with: each
// host's etcd mirror pod (the kubelet mirrors the static pod's manifest;
// its command and image are the manifest's) and the cluster's
// ClusterConfiguration, from which kubeadm renders them.
type manifests struct {
	pods  map[string]*corev1.Pod // by node
	cc    *kubeadmapi.ClusterConfiguration
	ccErr error // why cc could not be read: nothing is compared with kubeadm's then
}

// readManifests reads the etcd mirror pods and kubeadm-config. Neither is
// needed to read etcd, so a failure is kept, not returned: status still
// answers.
func (s *Session) readManifests(ctx context.Context) manifests {
	m := manifests{pods: map[string]*corev1.Pod{}}
	pods, err := s.Clientset.CoreV1().Pods(tunnel.Namespace).List(ctx, metav1.ListOptions{LabelSelector: tunnel.EtcdSelector})
	if err == nil {
		for i := range pods.Items {
			p := &pods.Items[i]
			m.pods[p.Spec.NodeName] = p
		}
	}
	m.cc, m.ccErr = s.clusterConfiguration(ctx)
	return m
}

// clusterConfiguration is the cluster's ClusterConfiguration, from the
// kubeadm-config ConfigMap, with kubeadm's defaults applied. Once read, the
// host verbs this session runs get it too (hostapi.Client.SetClusterConfig):
// they write what the plan was made with, and a host whose own admin.conf
// cannot reach the apiserver does not fall back to kubeadm's defaults.
func (s *Session) clusterConfiguration(ctx context.Context) (*kubeadmapi.ClusterConfiguration, error) {
	cm, err := s.Clientset.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubeadm-config", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading ConfigMap kube-system/kubeadm-config: %w", err)
	}
	raw := []byte(cm.Data["ClusterConfiguration"])
	cc, err := staticpod.ParseClusterConfiguration(raw)
	if err != nil {
		return nil, fmt.Errorf("ConfigMap kube-system/kubeadm-config: %w", err)
	}
	if s.Hosts != nil {
		s.Hosts.SetClusterConfig(raw)
	}
	return cc, nil
}

// drifts compares every host's etcd manifest with what kubeadm would write
// for it, and the members' shared settings with each other.
func (m manifests) drifts(nodes []Node) []Drift {
	var out []Drift
	cc, ccErr := m.cc, m.ccErr
	if cc != nil && cc.Etcd.External != nil {
		cc, ccErr = nil, errors.New("kubeadm-config sets external etcd")
	}
	if ccErr != nil && len(m.pods) > 0 {
		out = append(out, Drift{Kind: "no-kubeadm-config",
			Detail: fmt.Sprintf("the manifests are not compared with kubeadm's: %v", ccErr)})
	}
	if cc != nil {
		for _, n := range nodes {
			p := m.pods[n.Name]
			if p == nil {
				continue
			}
			diffs := drift.Compare(p, drift.Render(cc, n.Name, advertisedHost(p, n)))
			if len(diffs) == 0 {
				continue
			}
			var parts []string
			for _, d := range diffs {
				parts = append(parts, d.String())
			}
			out = append(out, Drift{Kind: "manifest-differs", Node: n.Name, Differences: diffs,
				Detail: fmt.Sprintf("etcd's manifest on %s differs from what kubeadm writes from kubeadm-config: %s. kubeadm join and kubeadm upgrade write kubeadm's; settings meant to last belong in etcd.local.extraArgs",
					n.Name, strings.Join(parts, "; "))})
		}
	}
	pods := map[string]*corev1.Pod{}
	for _, n := range nodes {
		if p := m.pods[n.Name]; p != nil {
			pods[n.Name] = p
		}
	}
	for _, d := range drift.Disagreements(pods) {
		out = append(out, Drift{Kind: "members-disagree", Disagreement: &d, Detail: d.String()})
	}
	return out
}

// advertisedHost is the address the host's member advertises (kubeadm's
// annotation on its pod), else the node's.
func advertisedHost(p *corev1.Pod, n Node) string {
	for _, raw := range strings.Split(p.Annotations[tunnel.AdvertiseClientURLsAnnotation], ",") {
		if u, err := url.Parse(strings.TrimSpace(raw)); err == nil && u.Hostname() != "" {
			return u.Hostname()
		}
	}
	return n.Address
}
