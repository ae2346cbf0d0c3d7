package testbed

import (
	"bytes"
	"fmt"
	"text/template"
)

// The kubeadm configuration the bed hands to the real `kubeadm init` and
// `kubeadm join`. Everything here is a setting a real operator could choose;
// the comments say why this machine needs it (see testbed-facts in the notes).
var kubeadmTmpl = template.Must(template.New("kubeadm").Parse(`
{{- define "nodeRegistration" -}}
nodeRegistration:
  name: {{.Host.NodeName}}
  criSocket: unix:///run/containerd/containerd.sock
  # No registry is reachable: every image was imported into containerd.
  imagePullPolicy: Never
  # cgroup v1 hosts fail SystemVerification; kubelet 1.37 runs on v1 with failCgroupV1=false.
  ignorePreflightErrors: [SystemVerification]
  kubeletExtraArgs:
  - name: node-ip
    value: "{{.Host.Address}}"
{{- end -}}
{{- define "init" -}}
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: {{.Token}}
  ttl: 24h0m0s
certificateKey: {{.CertificateKey}}
localAPIEndpoint:
  advertiseAddress: "{{.Host.Address}}"
  bindPort: 6443
{{template "nodeRegistration" .}}
patches:
  directory: /etc/testbed/patches
skipPhases: [addon/kube-proxy, addon/coredns]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {{.KubernetesVersion}}
clusterName: {{.ClusterName}}
# The bed's load balancer (the proxy on the bridge), as an HA control plane has.
controlPlaneEndpoint: "{{.ControlPlaneEndpoint}}"
apiServer:
  # The workstation reaches the apiservers through the proxy on 127.0.0.1.
  certSANs: [127.0.0.1, localhost, "{{.LBAddress}}"]
networking:
  serviceSubnet: {{.ServiceSubnet}}
  podSubnet: {{.PodSubnet}}
{{- if or .EtcdExtraArgs .EtcdImageTag}}
etcd:
  local:
{{- if .EtcdImageTag}}
    imageTag: "{{.EtcdImageTag}}"
{{- end}}
{{- if .EtcdExtraArgs}}
    extraArgs:
{{- range $name, $value := .EtcdExtraArgs}}
    - name: {{$name}}
      value: "{{$value}}"
{{- end}}
{{- end}}
{{- end}}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# Root here lacks CAP_SYS_RESOURCE: lowering OOM scores fails.
oomScoreAdj: 0
# Never write the real machine's sysctls, iptables or /usr.
protectKernelDefaults: false
makeIPTablesUtilChains: false
volumePluginDir: /var/lib/kubelet/volumeplugins
# Images cannot be pulled again once collected.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 1Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
{{end -}}
{{- define "join" -}}
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: "{{.ControlPlaneEndpoint}}"
    token: {{.Token}}
    caCertHashes: [{{.CACertHash}}]
{{template "nodeRegistration" .}}
patches:
  directory: /etc/testbed/patches
{{- if .ControlPlane}}
controlPlane:
  localAPIEndpoint:
    advertiseAddress: "{{.Host.Address}}"
    bindPort: 6443
  certificateKey: {{.CertificateKey}}
{{- end}}
{{end -}}
`))

type kubeadmParams struct {
	Host                 HostConfig
	Token                string
	CertificateKey       string
	CACertHash           string
	KubernetesVersion    string
	ClusterName          string
	ControlPlaneEndpoint string
	LBAddress            string
	ServiceSubnet        string
	PodSubnet            string
	ControlPlane         bool
	EtcdExtraArgs        map[string]string
	EtcdImageTag         string
}

func renderKubeadm(which string, p kubeadmParams) ([]byte, error) {
	var b bytes.Buffer
	if err := kubeadmTmpl.ExecuteTemplate(&b, which, p); err != nil {
		return nil, fmt.Errorf("rendering kubeadm %s config for %s: %w", which, p.Host.Name, err)
	}
	return b.Bytes(), nil
}

// kubeletPatch gives each host its own kubelet cgroupRoot. It cannot live in
// the cluster-wide KubeletConfiguration, so it goes through kubeadm's patches.
func kubeletPatch(cgroupRoot string) []byte {
	return []byte(fmt.Sprintf("cgroupRoot: %s\n", cgroupRoot))
}
