//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// storyBrokenKubeadmConfig (issue #11): with kubeadm-config's
// ClusterConfiguration emptied, the verbs that only read work on the host
// (status, alarm list, snapshot save: each warns once, naming the
// ConfigMap) and from the workstation (status), while a verb that writes
// certificates refuses, naming the ConfigMap, rather than write kubeadm's
// defaults over the cluster's settings. The ConfigMap is put back as it was.
func storyBrokenKubeadmConfig(t *testing.T, b *testbed.Bed) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	cms := cs.CoreV1().ConfigMaps("kube-system")
	cm, err := cms.Get(ctx, "kubeadm-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	saved := cm.Data["ClusterConfiguration"]
	if !strings.Contains(saved, "quota-backend-bytes") {
		t.Fatalf("the chain's ClusterConfiguration lacks its etcd extraArgs:\n%s", saved)
	}
	put := func(ctx context.Context, v string) error {
		c, err := cms.Get(ctx, "kubeadm-config", metav1.GetOptions{})
		if err != nil {
			return err
		}
		c.Data["ClusterConfiguration"] = v
		_, err = cms.Update(ctx, c, metav1.UpdateOptions{})
		return err
	}
	t.Cleanup(func() {
		// Its own context: the story's is cancelled when the story returns.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := put(ctx, saved); err != nil {
			t.Errorf("putting kubeadm-config back: %v", err)
		}
	})
	if err := put(ctx, ""); err != nil {
		t.Fatal(err)
	}

	h1 := b.Host("h1")
	const warning = "warning: ConfigMap kube-system/kubeadm-config: no ClusterConfiguration document found"
	if out, err := kectl(t, h1, "status", "--local"); err != nil || strings.Count(out, warning) != 1 || !strings.Contains(out, "3 voting members, 3 healthy") {
		t.Errorf("status --local with kubeadm-config emptied: %v; want it to work and warn once", err)
	}
	if out, err := kectl(t, h1, "alarm", "list", "--local"); err != nil || !strings.Contains(out, warning) {
		t.Errorf("alarm list --local with kubeadm-config emptied: %v", err)
	}
	if out, err := kectl(t, h1, "snapshot", "save", "/var/tmp/readonly-story.db", "--local"); err != nil || !strings.Contains(out, warning) || !strings.Contains(out, "verified") {
		t.Errorf("snapshot save --local with kubeadm-config emptied: %v", err)
	}
	h1.Exec(ctx, "rm", "-f", "/var/tmp/readonly-story.db", "/var/tmp/readonly-story.db.json")
	if out, err := plugin(t, b, "status"); err != nil || !strings.Contains(out, "3 voting members, 3 healthy") {
		t.Errorf("plugin status with kubeadm-config emptied: %v", err)
	}

	// A verb that writes refuses, and writes nothing.
	before, _ := h1.Exec(ctx, "sh", "-c", "ls -l --time-style=+%s.%N /etc/kubernetes/pki/etcd")
	out, err := kectl(t, h1, "certs", "renew", "--local", "--before", "3650d")
	if err == nil || !strings.Contains(out, "ConfigMap kube-system/kubeadm-config") || !strings.Contains(out, "no ClusterConfiguration document found") {
		t.Errorf("certs renew --local with kubeadm-config emptied: %v; want a refusal naming the ConfigMap", err)
	}
	if after, _ := h1.Exec(ctx, "sh", "-c", "ls -l --time-style=+%s.%N /etc/kubernetes/pki/etcd"); string(after) != string(before) {
		t.Errorf("the refused certs renew changed /etc/kubernetes/pki/etcd:\n%s\nnow:\n%s", before, after)
	}
}
