package workstation

import (
	"strings"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// The new tag goes into etcd.local.imageTag and every other setting of the
// cluster's ClusterConfiguration stays; the same tag changes nothing;
// external etcd is refused.
func TestWithEtcdImageTag(t *testing.T) {
	raw := []byte(`apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
imageRepository: registry.example.com/k8s
controlPlaneEndpoint: 10.0.0.10:6443
etcd:
  local:
    imageTag: 3.6.16-0
    dataDir: /data/etcd
    extraArgs:
    - name: quota-backend-bytes
      value: "8589934592"
networking:
  podSubnet: 10.244.0.0/16
`)
	out, changed, err := withEtcdImageTag(raw, "3.7.0-0")
	if err != nil || !changed {
		t.Fatalf("%v, changed %v", err, changed)
	}
	cc, err := staticpod.ParseClusterConfiguration(out)
	if err != nil {
		t.Fatal(err)
	}
	l := cc.Etcd.Local
	if l.ImageTag != "3.7.0-0" || l.DataDir != "/data/etcd" || len(l.ExtraArgs) != 1 || l.ExtraArgs[0].Value != "8589934592" ||
		cc.ImageRepository != "registry.example.com/k8s" || cc.ControlPlaneEndpoint != "10.0.0.10:6443" || cc.Networking.PodSubnet != "10.244.0.0/16" {
		t.Errorf("settings lost or wrong:\n%s", out)
	}
	if again, changed, err := withEtcdImageTag(out, "3.7.0-0"); err != nil || changed || string(again) != string(out) {
		t.Errorf("the same tag again: changed %v, %v", changed, err)
	}
	// No etcd section at all: kubeadm's defaults, plus the tag.
	bare := []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.2\n")
	if out, changed, err := withEtcdImageTag(bare, "3.7.0-0"); err != nil || !changed || !strings.Contains(string(out), "imageTag: 3.7.0-0") {
		t.Errorf("a configuration without etcd: %v, %v\n%s", changed, err, out)
	}
	external := []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.2\netcd:\n  external:\n    endpoints: [https://10.0.0.5:2379]\n")
	if _, _, err := withEtcdImageTag(external, "3.7.0-0"); err == nil || !strings.Contains(err.Error(), "external etcd") {
		t.Errorf("external etcd: %v", err)
	}
}
