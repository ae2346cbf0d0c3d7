package testbed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	hostKubeadmConfig = "/etc/testbed/kubeadm.yaml"
)

func (b *Bed) params(h *Host) kubeadmParams {
	return kubeadmParams{
		Host: h.HostConfig, Token: b.Token, CertificateKey: b.CertificateKey,
		KubernetesVersion: b.KubernetesVersion, ClusterName: b.Name,
		ControlPlaneEndpoint: b.ControlPlaneEndpoint(), LBAddress: b.LBAddress(),
		ServiceSubnet: b.addressing().serviceSubnet(), PodSubnet: b.addressing().podSubnet(),
		EtcdExtraArgs: b.EtcdExtraArgs, EtcdImageTag: b.EtcdImageTag,
	}
}

// kubeadm runs a kubeadm command on h, keeping its output in the host's
// state dir (kubeadm-<name>.log) for whoever debugs a slow or failed step.
func (b *Bed) kubeadm(ctx context.Context, h *Host, logName string, args ...string) error {
	out, err := h.Exec(ctx, append([]string{"kubeadm"}, args...)...)
	os.WriteFile(filepath.Join(h.StateDir(), "kubeadm-"+logName+".log"), out, 0o644)
	return err
}

// kubeadmUp runs `kubeadm init` on the first host and joins the others in
// the shapes their roles ask for.
func (b *Bed) kubeadmUp(ctx context.Context, imports <-chan error) error {
	first := b.Hosts[0]
	if first.Role == RoleInit {
		if err := b.Init(ctx, first); err != nil {
			<-imports
			return err
		}
	}
	if err := <-imports; err != nil {
		return err
	}
	if first.Role != RoleInit {
		return nil
	}
	if len(b.Hosts) > 1 {
		if err := b.waitClusterInfoSigned(ctx); err != nil {
			return err
		}
	}
	// Control-plane joins run one at a time, as kubeadm requires (etcd accepts
	// one learner at a time); workers could go in parallel but are quick.
	for _, h := range b.Hosts[1:] {
		var err error
		switch h.Role {
		case RoleControlPlane:
			err = b.JoinControlPlane(ctx, h)
		case RoleControlPlaneNoEtcd:
			err = b.JoinControlPlaneWithoutEtcd(ctx, h)
		case RoleWorker:
			err = b.JoinWorker(ctx, h)
		case RoleBare:
		default:
			err = fmt.Errorf("host %s: unknown role %q", h.Name, h.Role)
		}
		if err != nil {
			return err
		}
	}
	return b.WaitNodesReady(ctx, 2*time.Minute)
}

// waitClusterInfoSigned waits until the bootstrap signer has signed the
// cluster-info ConfigMap for the bed's token. kubeadm join would wait too,
// but polls every 5 s; right after init that costs a join 10 s.
func (b *Bed) waitClusterInfoSigned(ctx context.Context) error {
	cs, err := b.Client()
	if err != nil {
		return err
	}
	key := "jws-kubeconfig-" + strings.SplitN(b.Token, ".", 2)[0]
	return poll(ctx, 2*time.Minute, "cluster-info to be signed for the bootstrap token", func() (bool, error) {
		cm, err := cs.CoreV1().ConfigMaps("kube-public").Get(ctx, "cluster-info", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		_, ok := cm.Data[key]
		return ok, nil
	})
}

// Init runs the real `kubeadm init` on h and writes the workstation kubeconfig.
func (b *Bed) Init(ctx context.Context, h *Host) error {
	cfg, err := renderKubeadm("init", b.params(h))
	if err != nil {
		return err
	}
	if err := h.WriteFile(hostKubeadmConfig, cfg, 0o600); err != nil {
		return err
	}
	start := time.Now()
	b.logf("%s: kubeadm init", h.Name)
	if err := b.kubeadm(ctx, h, "init", "init", "--config", hostKubeadmConfig, "--upload-certs"); err != nil {
		return fmt.Errorf("kubeadm init: %w", err)
	}
	b.logf("%s: kubeadm init done (%s)", h.Name, time.Since(start).Round(100*time.Millisecond))
	return b.writeKubeconfig(h)
}

var serverLine = regexp.MustCompile(`(?m)^(\s*server:\s*).*$`)

func (b *Bed) writeKubeconfig(h *Host) error {
	admin, err := h.ReadFile("/etc/kubernetes/admin.conf")
	if err != nil {
		return err
	}
	kc := serverLine.ReplaceAll(admin, []byte("${1}https://"+b.ProxyAddr))
	return os.WriteFile(b.Kubeconfig(), kc, 0o600)
}

func (b *Bed) joinConfig(h *Host, controlPlane bool) error {
	ca, err := b.Hosts[0].ReadFile("/etc/kubernetes/pki/ca.crt")
	if err != nil {
		return err
	}
	p := b.params(h)
	p.ControlPlane = controlPlane
	if p.CACertHash, err = caCertHash(ca); err != nil {
		return err
	}
	cfg, err := renderKubeadm("join", p)
	if err != nil {
		return err
	}
	return h.WriteFile(hostKubeadmConfig, cfg, 0o600)
}

// JoinControlPlane joins h the normal kubeadm 1.37 way: with its stacked etcd
// member (learner add, then promote, inside kubeadm's etcd-join phase).
func (b *Bed) JoinControlPlane(ctx context.Context, h *Host) error {
	if err := b.joinConfig(h, true); err != nil {
		return err
	}
	start := time.Now()
	b.logf("%s: kubeadm join --control-plane", h.Name)
	if err := b.kubeadm(ctx, h, "join", "join", "--config", hostKubeadmConfig, "--v=1"); err != nil {
		return fmt.Errorf("kubeadm join --control-plane: %w", err)
	}
	b.logf("%s: joined as control plane with etcd (%s)", h.Name, time.Since(start).Round(100*time.Millisecond))
	return b.setRole(h, RoleControlPlane)
}

// setRole records that a bare host has joined (a host added after the bed
// came up, e.g. to replace hosts gone for good), so that bed.json, `testbed
// status` and WaitNodesReady see it as what it now is.
func (b *Bed) setRole(h *Host, r Role) error {
	if h.Role != RoleBare {
		return nil
	}
	h.Role = r
	for i := range b.State.Hosts {
		if b.State.Hosts[i].Name == h.Name {
			b.State.Hosts[i].Role = r
		}
	}
	return b.save()
}

// JoinControlPlaneWithoutEtcd makes h a control-plane host with no etcd
// member. kubeadm 1.37 cannot do this in one command: a control-plane join
// points the kubelet's bootstrap kubeconfig at the host's own apiserver, which
// reads only the local etcd, so skipping etcd-join leaves the kubelet
// bootstrapping against a dead apiserver. So the join runs phase by phase,
// and before kubelet-wait-bootstrap the bootstrap kubeconfig is pointed at the
// load balancer. The host's own apiserver keeps waiting for a local member
// (that is what `kubectl etcd scale` gives it).
func (b *Bed) JoinControlPlaneWithoutEtcd(ctx context.Context, h *Host) error {
	if err := b.joinConfig(h, true); err != nil {
		return err
	}
	start := time.Now()
	b.logf("%s: kubeadm join --control-plane, without etcd (phased)", h.Name)
	if err := b.kubeadm(ctx, h, "join", "join", "--config", hostKubeadmConfig,
		"--skip-phases=etcd-join,kubelet-wait-bootstrap,control-plane-join,wait-control-plane"); err != nil {
		return fmt.Errorf("kubeadm join (preflight to kubelet-start): %w", err)
	}
	boot, err := h.ReadFile("/etc/kubernetes/bootstrap-kubelet.conf")
	if err != nil {
		return err
	}
	boot = serverLine.ReplaceAll(boot, []byte("${1}https://"+b.ControlPlaneEndpoint()))
	if err := h.WriteFile("/etc/kubernetes/bootstrap-kubelet.conf", boot, 0o600); err != nil {
		return err
	}
	if _, err := h.Exec(ctx, "systemctl", "restart", "kubelet"); err != nil {
		return err
	}
	for _, phase := range [][]string{{"kubelet-wait-bootstrap"}, {"control-plane-join", "mark-control-plane"}} {
		args := append([]string{"join", "phase"}, phase...)
		if err := b.kubeadm(ctx, h, "join-"+phase[0], append(args, "--config", hostKubeadmConfig)...); err != nil {
			return fmt.Errorf("kubeadm join phase %s: %w", strings.Join(phase, " "), err)
		}
	}
	b.logf("%s: joined as control plane without etcd (%s)", h.Name, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// StandaloneKubelet starts a kubelet without any cluster on a bare host: it
// runs the static pods in /etc/kubernetes/manifests and nothing else, as on a
// host being bootstrapped before kubeadm (or kubectl-etcd init) made an
// apiserver. It uses the same kubelet settings as the kubeadm hosts.
func (b *Bed) StandaloneKubelet(ctx context.Context, h *Host) error {
	init, err := renderKubeadm("init", b.params(h))
	if err != nil {
		return err
	}
	docs := strings.Split(string(init), "\n---\n")
	kubelet := docs[len(docs)-1] + "staticPodPath: /etc/kubernetes/manifests\n" + string(kubeletPatch(h.CgroupRoot())) +
		"authentication:\n  anonymous:\n    enabled: false\n  webhook:\n    enabled: false\nauthorization:\n  mode: AlwaysAllow\n"
	if err := h.WriteFile("/var/lib/kubelet/config.yaml", []byte(kubelet), 0o644); err != nil {
		return err
	}
	flags := fmt.Sprintf("KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/containerd.sock --node-ip=%s --hostname-override=%s\"\n", h.Address, h.NodeName())
	if err := h.WriteFile("/var/lib/kubelet/kubeadm-flags.env", []byte(flags), 0o644); err != nil {
		return err
	}
	if err := h.WriteFile("/etc/testbed/kubelet-standalone", nil, 0o644); err != nil {
		return err
	}
	return poll(ctx, 30*time.Second, "the standalone kubelet on "+h.Name+" to start", func() (bool, error) {
		_, err := h.Exec(ctx, "sh", "-c", "test -f /run/testbed/kubelet.pid && kill -0 $(cat /run/testbed/kubelet.pid)")
		return err == nil, nil
	})
}

// JoinWorker runs a plain `kubeadm join`.
func (b *Bed) JoinWorker(ctx context.Context, h *Host) error {
	if err := b.joinConfig(h, false); err != nil {
		return err
	}
	b.logf("%s: kubeadm join (worker)", h.Name)
	if err := b.kubeadm(ctx, h, "join", "join", "--config", hostKubeadmConfig); err != nil {
		return fmt.Errorf("kubeadm join: %w", err)
	}
	return nil
}

// Client is a clientset for the bed's apiservers through the proxy.
func (b *Bed) Client() (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", b.Kubeconfig())
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", b.Kubeconfig(), err)
	}
	cfg.Timeout = 10 * time.Second
	return kubernetes.NewForConfig(cfg)
}

// WaitNodesReady waits until every joined host's node is Ready.
func (b *Bed) WaitNodesReady(ctx context.Context, timeout time.Duration) error {
	cs, err := b.Client()
	if err != nil {
		return err
	}
	var want []string
	for _, h := range b.Hosts {
		if h.Role != RoleBare {
			want = append(want, h.NodeName())
		}
	}
	var notReady []string
	err = poll(ctx, timeout, "nodes to be Ready", func() (bool, error) {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		ready := map[string]bool{}
		for _, n := range nodes.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready[n.Name] = true
				}
			}
		}
		notReady = notReady[:0]
		for _, w := range want {
			if !ready[w] {
				notReady = append(notReady, w)
			}
		}
		return len(notReady) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("%w (not Ready: %s)", err, strings.Join(notReady, ","))
	}
	return nil
}
