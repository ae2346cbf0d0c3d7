package recover

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	etcdphase "k8s.io/kubernetes/cmd/kubeadm/app/phases/etcd"
	kubeadmutil "k8s.io/kubernetes/cmd/kubeadm/app/util"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// The recovering member runs as its own static pod, "etcd-recovery", not as
// a changed etcd.yaml. A kubelet that has not reached its apiserver since it
// started (the survivor host rebooted while the others were down) never
// finishes terminating a removed static pod — its volume cleanup and
// housekeeping wait for the API pod source — so a replacement pod of the
// same name would never start; a pod of a new name does. Once the member is
// verified, a relay on 127.0.0.1:2379 lets the local apiserver reach it; the
// apiserver answers, kubelet syncs, and the normal etcd.yaml can start.

// QuarantinePodName is the quarantined member's static pod name.
const QuarantinePodName = "etcd-recovery"

func quarantineManifest(h *staticpod.Host) string {
	return filepath.Join(h.ManifestDir(), QuarantinePodName+".yaml")
}

// renderQuarantine is kubeadm's etcd pod (GetEtcdPodSpec) for cfg with the
// client URLs on the quarantine port, --force-new-cluster when force, and
// the quarantine pod name.
func renderQuarantine(cfg *staticpod.Config, force bool) ([]byte, error) {
	q := quarantineConfig(cfg, force)
	pod := etcdphase.GetEtcdPodSpec(&q.Init.ClusterConfiguration, &q.Init.LocalAPIEndpoint, q.NodeName(), nil)
	pod.Name = QuarantinePodName
	out, err := kubeadmutil.MarshalToYaml(&pod, v1.SchemeGroupVersion)
	if err != nil {
		return nil, fmt.Errorf("serialising the quarantine manifest: %w", err)
	}
	return out, nil
}

// addSwitchSteps end the quarantine: the member moves from the quarantine
// pod to kubeadm's normal etcd.yaml. When kubelet may be restarted, the
// restart (in addFinishSteps) starts the new etcd-<node> at once. Otherwise
// a bridge lets the apiserver reach the verified member until it answers (so
// kubelet has synced and will replace the static pod), then the manifest
// changes and the step waits for kubelet.
func (r *Recovery) addSwitchSteps(p *plan.Plan) {
	e := r.env
	h, cfg := e.Host, e.Config
	if r.restartKubelet {
		p.Add("single-member manifest", fmt.Sprintf("stop the quarantine pod, write kubeadm's normal single-member manifest %s (no --force-new-cluster, client port 2379)", h.EtcdManifest()),
			func(ctx context.Context) (string, error) { return "", r.writeNormal(ctx) })
		return
	}
	p.Add("bridge apiserver", fmt.Sprintf("relay %s to the verified member at %s until this host's kube-apiserver is ready (kubelet replaces static pods only after it has reached its apiserver since it started)",
		staticpod.LocalEtcdServer(cfg), quarantineURL()), func(ctx context.Context) (string, error) { return r.bridge(ctx) })
	p.Add("single-member manifest", fmt.Sprintf("stop the quarantine pod, write kubeadm's normal single-member manifest %s (no --force-new-cluster, client port 2379) and wait until it serves", h.EtcdManifest()),
		func(ctx context.Context) (string, error) {
			if err := r.writeNormal(ctx); err != nil {
				return "", err
			}
			return r.waitNormal(ctx)
		})
}

func (r *Recovery) bridge(ctx context.Context) (string, error) {
	e := r.env
	h, cfg := e.Host, e.Config
	servers, err := h.APIServerEtcdServers()
	if err != nil {
		return "no kube-apiserver on this host", nil
	}
	if len(servers) != 1 || servers[0] != staticpod.LocalEtcdServer(cfg) {
		return "kube-apiserver does not read the local member; not needed", nil
	}
	if !fileExists(h.Path(quarantineManifest(h))) {
		return "quarantine already over", nil
	}
	listen := staticpod.LocalEtcdServer(cfg)[len("https://"):]
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return "", fmt.Errorf("listening on %s for the bridge: %w", listen, err)
	}
	stop := hostlocal.Relay(l, fmt.Sprintf("127.0.0.1:%d", QuarantinePort))
	defer stop()
	start := time.Now()
	if err := h.WaitAPIServerReady(ctx, cfg, e.Timeouts.APIServer); err != nil {
		return "", fmt.Errorf("the local apiserver did not become ready through the bridge: %w", err)
	}
	ready := time.Since(start)
	// kubelet backs off up to 30 s between attempts to reach its apiserver;
	// its mirror pod of the quarantine pod shows it got through.
	synced := r.waitMirrorPod(ctx, 90*time.Second)
	note := fmt.Sprintf("apiserver ready after %s", ready.Round(100*time.Millisecond))
	if synced {
		note += fmt.Sprintf(", kubelet's quarantine mirror pod after %s", time.Since(start).Round(100*time.Millisecond))
	} else {
		note += "; kubelet's mirror pod did not show within 90s"
	}
	// That shows kubelet's API client, not yet its pod informer, which the
	// next step needs (kubelet starts the new etcd-<node> only after its
	// housekeeping has forgotten the old one, and housekeeping waits for
	// the informer). Housekeeping also deletes the mirror pod of the old
	// etcd-<node>, whose manifest the first step moved out: its deletion
	// is the proof.
	if r.waitOldMirrorPodGone(ctx, 90*time.Second) {
		note += fmt.Sprintf(", its housekeeping deleted the old etcd mirror pod after %s", time.Since(start).Round(100*time.Millisecond))
	} else {
		note += "; the old etcd mirror pod was not deleted within 90s"
	}
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(5 * time.Second): // kubelet finishes its housekeeping pass
	}
	return note + "; bridge closed", nil
}

// waitOldMirrorPodGone waits until the local apiserver has no mirror pod
// etcd-<node> (kubelet's housekeeping deletes it once the manifest is gone).
func (r *Recovery) waitOldMirrorPodGone(ctx context.Context, timeout time.Duration) bool {
	e := r.env
	err := hostlocal.WaitPod(ctx, e.Host, e.Config, "etcd-"+e.Config.NodeName(), timeout, func(_ *v1.Pod, err error) bool {
		return apierrors.IsNotFound(err)
	})
	return err == nil
}

// waitMirrorPod waits until the local apiserver has kubelet's mirror pod of
// the quarantine pod, made after this recovery started: proof that kubelet
// reaches its apiserver (and so will finish terminating removed static pods).
func (r *Recovery) waitMirrorPod(ctx context.Context, timeout time.Duration) bool {
	e := r.env
	name := QuarantinePodName + "-" + e.Config.NodeName()
	err := hostlocal.WaitPod(ctx, e.Host, e.Config, name, timeout, func(pod *v1.Pod, err error) bool {
		return err == nil && !pod.CreationTimestamp.Time.Before(r.j.Started.Add(-time.Minute))
	})
	return err == nil
}

// stopQuarantine retires the quarantine pod's manifest (kept, not deleted)
// and waits until its etcd is gone.
func (r *Recovery) stopQuarantine(ctx context.Context) error {
	e := r.env
	h := e.Host
	from := h.Path(quarantineManifest(h))
	if fileExists(from) {
		to := h.Path(filepath.Join(h.StateDir(), QuarantinePodName+".yaml.done"))
		if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
			return err
		}
		if err := os.Rename(from, to); err != nil {
			return fmt.Errorf("stopping the quarantine pod: %w", err)
		}
	}
	_, err := h.WaitEtcdGone(ctx, e.Config, e.Timeouts.EtcdStop)
	return err
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
