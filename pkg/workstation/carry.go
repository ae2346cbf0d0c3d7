package workstation

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/drift"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// carryFor is what a member added or rebuilt on node must run to agree
// with the members that stay (the voting members on other nodes, but those
// in leaving): their MustAgree settings where kubeadm-config's rendering
// differs. Membership verbs keep what the cluster runs; changing it is an
// edit of kubeadm-config and every member's manifest, not a side effect of
// adding one member. The members' settings are their mirror pods', which
// lag a hand edit of a manifest by a minute or two.
func (obs *observed) carryFor(node string, leaving ...string) (drift.Carried, error) {
	cc := obs.manifests.cc
	if cc == nil {
		// The host cannot read kubeadm-config either: it writes kubeadm's
		// defaults.
		var err error
		if cc, err = staticpod.DefaultClusterConfiguration(); err != nil {
			return drift.Carried{}, err
		}
	}
	staying := map[string]*corev1.Pod{}
	for _, n := range obs.nodes {
		if n.Name == node || contains(leaving, n.Name) {
			continue
		}
		m := memberAt(obs.members, n)
		if p := obs.manifests.pods[n.Name]; m != nil && !m.IsLearner && p != nil {
			staying[n.Name] = p
		}
	}
	return drift.CarryFor(staying, drift.Render(cc, node, "127.0.0.1")), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkCarry refuses a member on node that could not agree with the
// members that stay, unless acceptDrift; it returns the flags to carry
// (as `--etcd-arg` takes them) and, for the plan, what it carries.
func checkCarry(c drift.Carried, node string, acceptDrift bool) (args []string, note string, err error) {
	if len(c.Conflicts) > 0 && !acceptDrift {
		return nil, "", fmt.Errorf("a member on %s would not agree with the members that stay: %s. "+
			"Make the members agree first (the setting in kubeadm-config's etcd.local.extraArgs, and in every member's manifest), "+
			"or rerun with --accept-drift to give it kubeadm-config's value; nothing was changed",
			node, strings.Join(c.Conflicts, "; "))
	}
	for _, a := range c.Args {
		args = append(args, a.Name+"="+a.Value)
	}
	if len(args) > 0 {
		note = fmt.Sprintf("%s's member carries the members' %s, which kubeadm-config does not give it (put them into etcd.local.extraArgs so that kubeadm join and kubeadm upgrade keep them too)", node, c)
	}
	if len(c.Conflicts) > 0 {
		note = strings.TrimPrefix(note+"; ", "; ") + fmt.Sprintf("--accept-drift: %s's member gets kubeadm-config's value where the members disagree: %s", node, strings.Join(c.Conflicts, "; "))
	}
	return args, note, nil
}
