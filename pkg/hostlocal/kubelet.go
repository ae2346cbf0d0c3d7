package hostlocal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
)

// KubeletRestartable says whether this run may restart the host's kubelet
// (the short way past kubelet's back-offs, see staticpod.RestartKubelet),
// and if not, why: the operator said no, or the host does not allow it. The
// verbs then take the long way, the bridge, as before.
func (e *Env) KubeletRestartable() error {
	if e.NoKubeletRestart {
		return errors.New("--restart-kubelet=false was given")
	}
	return e.Host.CanRestartKubelet()
}

// kubeletStuck says whether kubelet has to be restarted (or bridged) for a
// changed static pod to start soon: this host's apiserver reads only the
// local member, which is not serving, and it does not answer. Its kubelet is
// then at best in crash-loop back-off for the apiserver, and at worst has not
// reached its apiserver since it booted (it then replaces no static pod).
func (e *Env) kubeletStuck(ctx context.Context) bool { return e.needsBridge(ctx) }

// kubeletStuckLater starts kubeletStuck now and returns its answer when
// asked: on a host whose apiserver hangs, the readiness probe costs up to its
// whole timeout, which then overlaps the calls to the cluster.
func (e *Env) kubeletStuckLater(ctx context.Context) func() bool {
	ch := make(chan bool, 1)
	go func() { ch <- e.kubeletStuck(ctx) }()
	return sync.OnceValue(func() bool { return <-ch })
}

// AddKubeletRestartStep adds "restart kubelet" after the etcd manifest was
// written: why says what the restart buys at this point of the plan. A
// kubelet that started after the manifest was written (an earlier run
// restarted it, then stopped) is not restarted again: see
// staticpod.KubeletStartedAfter.
func (e *Env) AddKubeletRestartStep(p *plan.Plan, why string) {
	p.Add("restart kubelet", fmt.Sprintf("systemctl restart kubelet (as kubeadm's own phases do), so that %s. Running containers keep running; kubelet's probes, status updates and node lease pause for the few seconds of the restart", why),
		func(ctx context.Context) (string, error) {
			if e.Host.KubeletStartedAfter(e.Host.EtcdManifest()) {
				// A rerun after an interruption right after this step.
				return fmt.Sprintf("not restarted again: kubelet started after %s was written", e.Host.EtcdManifest()), nil
			}
			start, was := time.Now(), len(e.Host.KubeletPIDs()) > 0
			if err := e.Host.RestartKubelet(ctx, e.Timeouts.Kubelet); err != nil {
				return "", err
			}
			if !was {
				return fmt.Sprintf("kubelet was not running: started, healthy after %s", time.Since(start).Round(100*time.Millisecond)), nil
			}
			return fmt.Sprintf("kubelet back after %s", time.Since(start).Round(100*time.Millisecond)), nil
		})
}

// kickKubelet adds the kubelet restart after a manifest change when kubelet
// is stuck and may be restarted; it says whether it did.
func (e *Env) kickKubelet(stuck func() bool, p *plan.Plan, res *Result) bool {
	if !stuck() {
		return false
	}
	if err := e.KubeletRestartable(); err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("kubelet is not restarted (%v): the new etcd starts when kubelet's back-off ends (up to 5 min)", err))
		return false
	}
	e.AddKubeletRestartStep(p, "it starts the new etcd member and this host's kube-apiserver at once: it has no apiserver to reach, and holds both in crash-loop back-off")
	return true
}
