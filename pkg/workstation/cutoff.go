package workstation

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
)

// Hosts a recovery cut off. `recover` (and `restore`) start a new
// single-member cluster and leave the marker hostapi.RecoveryMarkerKey
// naming the members they cut off. Those members are no longer in the member
// list, but their hosts' Node objects and mirror pods stay until someone
// deletes them: without the marker they would look like a control-plane node
// whose etcd pod is "not a member", which tells the operator nothing about
// what happened or what to do.

// readMarker reads the recovery marker; nil when there is none or it cannot
// be read (status must not fail over it, nor wait the client's whole
// CallTimeout for it: the members have answered already).
func readMarker(ctx context.Context, c *etcdcluster.Client) *hostapi.RecoveryMarker {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	raw, found, err := c.Get(cctx, hostapi.RecoveryMarkerKey)
	if err != nil || !found {
		return nil
	}
	return hostapi.ParseRecoveryMarker(raw)
}

// nodeLease is when a node's kubelet last renewed its lease, and for how long.
type nodeLease struct {
	renewed  time.Time
	duration time.Duration
}

// nodeLeases reads the kubelets' node leases; none when they cannot be read.
func (s *Session) nodeLeases(ctx context.Context) map[string]nodeLease {
	out := map[string]nodeLease{}
	list, err := s.Clientset.CoordinationV1().Leases("kube-node-lease").List(ctx, metav1.ListOptions{})
	if err != nil {
		return out
	}
	for _, l := range list.Items {
		if l.Spec.RenewTime == nil {
			continue
		}
		d := 40 * time.Second // kubelet's default nodeLeaseDurationSeconds
		if l.Spec.LeaseDurationSeconds != nil {
			d = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
		}
		out[l.Name] = nodeLease{renewed: l.Spec.RenewTime.Time, duration: d}
	}
	return out
}

// leaseSlack allows for clock skew between this workstation and the host.
const leaseSlack = 20 * time.Second

// lagging reports whether the kubelet on node has missed two renewals of its
// node lease (it renews every quarter of the lease's duration): its host is
// likely down, though its node and pods may show Ready for a minute more.
// Status asks such a host's member apart from the others (see
// observeByExec). Without a lease nothing is known, and nothing lags; a
// workstation clock far ahead of the hosts' makes live hosts lag, which
// costs only an exec more each.
func (o *observed) lagging(node string) bool {
	l, ok := o.leases[node]
	return ok && o.now.Sub(l.renewed) > l.duration/2
}

// down reports whether n's host looks down or gone, and why. A node's Ready
// condition lags: the node lifecycle controller marks a silent node NotReady
// only after its grace period, and a kube-controller-manager that restarts
// (as after a recovery) grants every node a fresh one; so a host powered off
// minutes ago can still show Ready. Its kubelet's lease says it directly.
// A Ready node without a lease cannot be told either way: it counts as down
// (nothing shows its kubelet alive), and why says so.
func (o *observed) down(n Node) (bool, string) {
	l, ok := o.leases[n.Name]
	if !ok {
		if n.Ready {
			return true, "it shows Ready, but has no node lease showing its kubelet alive; Ready lags minutes behind a host's loss"
		}
		return true, "NotReady"
	}
	since := o.now.Sub(l.renewed).Round(time.Second)
	if since > l.duration+leaseSlack {
		return true, fmt.Sprintf("its kubelet last renewed its node lease %s ago", since)
	}
	if !n.Ready {
		return false, fmt.Sprintf("NotReady, though its kubelet renewed its node lease %s ago", since)
	}
	return false, fmt.Sprintf("Ready, its kubelet renewed its node lease %s ago", since)
}

// cutOff is a member the last recovery cut off, and its node if it still has one.
type cutOff struct {
	member hostapi.Member
	node   *Node
	marker *hostapi.RecoveryMarker
}

func (c cutOff) name() string {
	if c.member.Name != "" {
		return c.member.Name
	}
	return fmt.Sprintf("%x", c.member.ID)
}

// why says what cut the member off, for messages.
func (c cutOff) why() string {
	from := c.marker.Host + "'s data alone"
	if c.marker.Snapshot != "" {
		from = "the snapshot " + c.marker.Snapshot
	}
	return fmt.Sprintf("the %s on %s at %s cut it off (it started a new cluster from %s)",
		c.marker.Verb, c.marker.Host, c.marker.Time.UTC().Format(time.RFC3339), from)
}

// cutOffOn returns the cut-off member that ran on node n, if n has no member
// now (a host that rejoined has a new member and is not cut off any more).
func (o *observed) cutOffOn(n Node) (cutOff, bool) {
	if o.marker == nil || memberAt(o.members, n) != nil {
		return cutOff{}, false
	}
	for _, r := range o.marker.RemovedMembers {
		if o.isMember(r.ID) {
			continue
		}
		if _, ok := NodeOf(etcdcluster.Member{ID: r.ID, Name: r.Name, PeerURLs: r.PeerURLs}, []Node{n}); ok {
			return cutOff{member: r, node: &n, marker: o.marker}, true
		}
	}
	return cutOff{}, false
}

// cutOffTarget resolves what an operator named (a node, or a member name or
// hex ID) to a member the recovery cut off. Names that are a node with a
// member, or a current member, are not cut off.
func (o *observed) cutOffTarget(arg string) (cutOff, bool) {
	if o.marker == nil {
		return cutOff{}, false
	}
	if n, ok := nodeNamed(o.nodes, arg); ok {
		return o.cutOffOn(n)
	}
	id, idErr := strconv.ParseUint(arg, 16, 64)
	for _, r := range o.marker.RemovedMembers {
		if (r.Name != arg || r.Name == "") && (idErr != nil || r.ID != id) {
			continue
		}
		if o.isMember(r.ID) {
			return cutOff{}, false
		}
		c := cutOff{member: r, marker: o.marker}
		if n, ok := NodeOf(etcdcluster.Member{ID: r.ID, Name: r.Name, PeerURLs: r.PeerURLs}, o.nodes); ok && memberAt(o.members, n) == nil {
			c.node = &n
		}
		return c, true
	}
	return cutOff{}, false
}

func (o *observed) isMember(id uint64) bool {
	for _, m := range o.members {
		if m.ID == id {
			return true
		}
	}
	return false
}

// joinEndpoints are the voters' client URLs, for the `kubectl-etcd join`
// command a returning host needs.
func (o *observed) joinEndpoints() string {
	var eps []string
	for _, m := range o.members {
		if !m.IsLearner {
			eps = append(eps, m.ClientURLs...)
		}
	}
	return strings.Join(eps, ",")
}

// cutOffDrift is how status shows a host whose member a recovery cut off.
func (o *observed) cutOffDrift(c cutOff) Drift {
	n := c.node
	join := fmt.Sprintf("`kubectl-etcd join --endpoints %s` on it as root (its etcd data is stale; join moves it aside and adds a new member)", o.joinEndpoints())
	down, why := o.down(*n)
	next := fmt.Sprintf("%s is down (%s). Gone for good: `kubectl etcd remove %s --delete-node` (deletes its Node and mirror pods). Back again: run %s", n.Name, why, n.Name, join)
	if !down {
		next = fmt.Sprintf("%s is up (%s), so its host is back: run %s", n.Name, why, join)
	}
	return Drift{Kind: "cut-off-by-recovery", Node: n.Name, Member: c.name(),
		Detail: fmt.Sprintf("%s's etcd member %s (%x) is no longer a member: %s. %s", n.Name, c.name(), c.member.ID, c.why(), next)}
}

// removeCutOff is `remove` for a member the recovery already cut off:
// nothing is left to remove in etcd. Deleting the host's Node object is the
// operator's call (kubeadm's own advice for a removed control-plane host is
// `kubectl delete node`), so it happens only with --delete-node, and never
// for a host that is up (see down): a host that is back must rejoin, not
// disappear.
func (s *Session) removeCutOff(ctx context.Context, obs *observed, c cutOff, o MemberOptions) (*Result, error) {
	var down bool
	var why string
	if c.node != nil {
		down, why = obs.down(*c.node)
	}
	if o.DeleteNode && c.node != nil && !down {
		return nil, fmt.Errorf("--delete-node: node %s is up (%s), so its host is not gone: its member %s (%x) was cut off by the %s on %s; run `kubectl-etcd join --endpoints %s` on it as root to give it a new member (its stale data is moved aside), or `kubeadm reset` it before deleting its node",
			c.node.Name, why, c.name(), c.member.ID, c.marker.Verb, c.marker.Host, obs.joinEndpoints())
	}
	where := "whose node is gone"
	if c.node != nil {
		where = "on " + c.node.Name
	}
	p := &plan.Plan{Title: fmt.Sprintf("remove member %s (%x) %s", c.name(), c.member.ID, where)}
	note := func(format string, args ...any) { p.Notes = append(p.Notes, fmt.Sprintf(format, args...)) }
	note("member %s (%x) is not in the member list any more: %s; nothing to remove in etcd", c.name(), c.member.ID, c.why())
	switch {
	case c.node == nil:
		note("no control-plane node %s is left either", c.name())
	case o.DeleteNode:
		name := c.node.Name
		p.Add("delete node "+name, fmt.Sprintf("delete node %s (down: %s) and its control-plane mirror pods", name, why), func(ctx context.Context) (string, error) {
			return "", s.deleteNode(ctx, name)
		})
	case down:
		note("node %s stays (down: %s): if its host is gone for good, delete it with `kubectl delete node %s` (or rerun with --delete-node); kubeadm upgrade refuses while a control-plane node is NotReady",
			c.node.Name, why, c.node.Name)
		note("if the host comes back: run `kubectl-etcd join --endpoints %s` on it as root (its etcd data is stale; join moves it aside and adds a new member)", obs.joinEndpoints())
	default:
		note("node %s is up (%s): its host is back; run `kubectl-etcd join --endpoints %s` on it as root (its etcd data is stale; join moves it aside and adds a new member)",
			c.node.Name, why, obs.joinEndpoints())
	}
	return s.execute(ctx, "remove", p, o.DryRun, obs)
}

// deleteNode deletes a gone host's Node object and the mirror pods of its
// static pods. The pod garbage collector would delete the pods of a deleted
// node too, but only after a while; until then status and the host pods'
// choice of etcd hosts would still see the gone host's etcd pod. Other pods
// bound to the node are left to the pod garbage collector. Rerunnable: what
// is already gone is skipped.
func (s *Session) deleteNode(ctx context.Context, name string) error {
	if err := s.Clientset.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting node %s: %w", name, err)
	}
	fmt.Fprintf(s.Out, "      node %s deleted\n", name)
	pods, err := s.Clientset.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + name})
	if err != nil {
		return fmt.Errorf("listing node %s's pods: %w", name, err)
	}
	for _, p := range pods.Items {
		if _, mirror := p.Annotations[corev1.MirrorPodAnnotationKey]; !mirror {
			continue
		}
		// Its kubelet is gone: nothing would ever confirm a graceful deletion.
		zero := int64(0)
		if err := s.Clientset.CoreV1().Pods("kube-system").Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting mirror pod kube-system/%s: %w", p.Name, err)
		}
		fmt.Fprintf(s.Out, "      mirror pod kube-system/%s deleted\n", p.Name)
	}
	return nil
}
