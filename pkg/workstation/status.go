package workstation

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/drift"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/maintenance"
)

// HostRow is one control-plane host: its member (if any) and which etcd its
// kube-apiserver reads.
type HostRow struct {
	Node          string `json:"node"`
	Address       string `json:"address"`
	Ready         bool   `json:"ready"`
	EtcdPod       bool   `json:"etcdPod"`
	Member        string `json:"member,omitempty"`
	APIServerEtcd string `json:"apiserverEtcdServers,omitempty"`
	// CutOffBy is set when the host's old member was cut off by a recover or
	// restore (the cluster's recovery marker names it) and it has no member
	// since: "recover on h1 at <time>".
	CutOffBy string `json:"cutOffBy,omitempty"`
}

// Drift is a disagreement between the member list and the hosts.
type Drift struct {
	// member-without-host | manifest-without-member | node-without-member |
	// cut-off-by-recovery | manifest-differs | members-disagree |
	// no-kubeadm-config
	Kind   string `json:"kind"`
	Node   string `json:"node,omitempty"`
	Member string `json:"member,omitempty"`
	Detail string `json:"detail"`
	// Differences are a manifest-differs' items; Disagreement is a
	// members-disagree's setting and who runs which value.
	Differences  []drift.Difference  `json:"differences,omitempty"`
	Disagreement *drift.Disagreement `json:"disagreement,omitempty"`
}

// ClusterStatus is what `kubectl etcd status` reports.
type ClusterStatus struct {
	Members []hostapi.MemberRow `json:"members"`
	Hosts   []HostRow           `json:"hosts"`
	Drift   []Drift             `json:"drift,omitempty"`
	// Alarms are etcd's active alarms, with what clears each.
	Alarms []maintenance.AlarmRow `json:"alarms,omitempty"`
	// ClusterID is the etcd cluster's (hex), as its healthy members report it.
	ClusterID string `json:"clusterID,omitempty"`
	Summary   string `json:"summary"`
}

// observed is one consistent look at the cluster.
type observed struct {
	nodes    []Node
	etcdPods []string
	// pods are the etcd pods the exec path read through (observeByExec
	// only), ready ones on Ready nodes first: the later execs and metrics
	// reads of the same run go to them without listing them again.
	pods     []etcdPod
	apis     map[string]string
	client   *etcdcluster.Client
	members  []etcdcluster.Member
	statuses []etcdcluster.Status
	// marker is the last recover's or restore's marker, if any.
	marker *hostapi.RecoveryMarker
	// leases are the control-plane nodes' kubelet leases (kube-node-lease),
	// read at time now: whether a host is alive right now (see down).
	leases map[string]nodeLease
	now    time.Time
	// manifests are the etcd mirror pods and kubeadm-config, for the
	// manifests' drift.
	manifests manifests
}

func (s *Session) observe(ctx context.Context) (*observed, error) {
	o, err := s.observeAPI(ctx)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := s.Credentials(ctx, o.etcdPods)
	if err != nil {
		return nil, explainWriteRefused(err)
	}
	if o.client, err = s.Etcd(ctx, tlsCfg, EndpointsOf(o.nodes, o.etcdPods)); err != nil {
		return nil, err
	}
	if err := o.readEtcd(ctx, o.client); err != nil {
		o.client.Close()
		return nil, err
	}
	o.marker = readMarker(ctx, o.client)
	o.manifests = s.readManifests(ctx)
	o.leases, o.now = s.nodeLeases(ctx), time.Now()
	return o, nil
}

// observeAPI is the part of observe read from the apiserver alone: the
// control-plane nodes, the etcd pods' nodes and the apiservers' etcd servers.
// It is split off so that the decisions made from an observation can be
// tested against a fake clientset, without the host pods and the tunnel
// that reaching etcd takes.
func (s *Session) observeAPI(ctx context.Context) (*observed, error) {
	o := &observed{}
	var err error
	if o.nodes, err = s.ControlPlaneNodes(ctx); err != nil {
		return nil, err
	}
	if o.etcdPods, err = s.EtcdPodNodes(ctx); err != nil {
		return nil, err
	}
	if o.apis, err = s.APIServerEtcdServers(ctx); err != nil {
		return nil, err
	}
	if len(o.etcdPods) == 0 {
		return nil, fmt.Errorf("no etcd static pod in kube-system: this is not a kubeadm cluster with stacked etcd, or every member's host is down")
	}
	return o, nil
}

// readEtcd fills in the membership and every member's status.
func (o *observed) readEtcd(ctx context.Context, c etcdcluster.Cluster) error {
	var err error
	if o.members, err = c.Members(ctx); err != nil {
		return err
	}
	if o.statuses, err = c.Statuses(ctx); err != nil {
		return err
	}
	return nil
}

// StatusVia says how Status reads etcd.
type StatusVia string

const (
	// StatusAuto tries StatusExec and falls back to StatusHostPod, saying why.
	StatusAuto StatusVia = "auto"
	// StatusExec runs etcdctl in the etcd static pods (kubectl exec's way,
	// with the host's healthcheck-client certificate): no pod is created.
	StatusExec StatusVia = "exec"
	// StatusHostPod has a host pod sign a client certificate and reaches
	// the members through the apiserver's port-forward, as the verbs that
	// change something do.
	StatusHostPod StatusVia = "host-pod"
)

// ParseStatusVia checks a --via value.
func ParseStatusVia(v string) (StatusVia, error) {
	switch via := StatusVia(v); via {
	case StatusAuto, StatusExec, StatusHostPod:
		return via, nil
	}
	return "", fmt.Errorf("unknown --via %q (auto, exec, host-pod)", v)
}

// Status reads members, hosts and drift.
func (s *Session) Status(ctx context.Context) (*ClusterStatus, error) {
	if s.StatusVia != StatusHostPod {
		o, err := s.observeByExec(ctx)
		var ee *execError
		switch {
		case err == nil:
			return o.report(), nil
		case s.StatusVia == StatusExec || !errors.As(err, &ee) || ctx.Err() != nil:
			return nil, err
		}
		w := s.Warn
		if w == nil {
			w = s.Out
		}
		fmt.Fprintf(w, "status: etcdctl in the etcd pods did not answer (%s); reading etcd through a host pod instead\n",
			strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	o, err := s.observe(ctx)
	if err != nil {
		return nil, err
	}
	defer o.client.Close()
	return o.report(), nil
}

func (o *observed) report() *ClusterStatus {
	st := &ClusterStatus{}
	byID := map[uint64]etcdcluster.Status{}
	for _, x := range o.statuses {
		byID[x.Member.ID] = x
		if x.Healthy && x.ClusterID != 0 && st.ClusterID == "" {
			st.ClusterID = fmt.Sprintf("%x", x.ClusterID)
		}
	}
	memberOn := map[string]string{}
	for _, m := range o.members {
		var x *etcdcluster.Status
		if s, ok := byID[m.ID]; ok {
			x = &s
		}
		r := hostapi.MemberRowOf(m, x)
		if n, ok := NodeOf(m, o.nodes); ok {
			r.Host = n.Name
			memberOn[n.Name] = r.Name
		} else {
			st.Drift = append(st.Drift, Drift{Kind: "member-without-host", Member: r.Name,
				Detail: fmt.Sprintf("member %s (%s) runs on no control-plane node: remove it with `kubectl etcd remove %s`", r.Name, r.PeerURL, r.ID)})
		}
		if x != nil {
			if !x.ServerCertNotAfter.IsZero() {
				t := x.ServerCertNotAfter.UTC()
				r.ServerCertNotAfter = &t
			}
		}
		st.Members = append(st.Members, r)
	}
	sort.Slice(st.Members, func(i, j int) bool {
		return st.Members[i].Host+st.Members[i].Name < st.Members[j].Host+st.Members[j].Name
	})
	pods := map[string]bool{}
	for _, n := range o.etcdPods {
		pods[n] = true
	}
	for _, n := range o.nodes {
		h := HostRow{Node: n.Name, Address: n.Address, Ready: n.Ready, EtcdPod: pods[n.Name], Member: memberOn[n.Name], APIServerEtcd: o.apis[n.Name]}
		c, cut := o.cutOffOn(n)
		if cut {
			h.CutOffBy = fmt.Sprintf("%s on %s at %s", c.marker.Verb, c.marker.Host, c.marker.Time.UTC().Format(time.RFC3339))
		}
		st.Hosts = append(st.Hosts, h)
		switch {
		case cut:
			st.Drift = append(st.Drift, o.cutOffDrift(c))
		case h.EtcdPod && h.Member == "":
			st.Drift = append(st.Drift, Drift{Kind: "manifest-without-member", Node: n.Name,
				Detail: fmt.Sprintf("%s runs an etcd static pod that is not a member of the cluster", n.Name)})
		case !h.EtcdPod && h.Member == "":
			st.Drift = append(st.Drift, Drift{Kind: "node-without-member", Node: n.Name,
				Detail: fmt.Sprintf("control-plane node %s has no etcd member (kubectl etcd scale adds one)", n.Name)})
		}
	}
	st.Drift = append(st.Drift, o.manifests.drifts(o.nodes)...)
	v := etcdcluster.CountVotes(st.Members, func(m hostapi.MemberRow) bool { return m.Learner }, func(m hostapi.MemberRow) bool { return m.Healthy })
	st.Summary = fmt.Sprintf("%d voting members, %d healthy (%s, tolerates %d failure(s)); %d control-plane nodes",
		v.Voters, v.Healthy, v.QuorumWord(), v.Tolerates(), len(o.nodes))
	var cut []string
	for _, h := range st.Hosts {
		if h.CutOffBy != "" {
			cut = append(cut, h.Node)
		}
	}
	if len(cut) > 0 {
		st.Summary += fmt.Sprintf(", %d of them cut off by the %s (%s)", len(cut), o.marker.Verb+" on "+o.marker.Host, strings.Join(cut, ", "))
	}
	// An alarm changes what the cluster can do (NOSPACE and CORRUPT stop
	// every write), so the summary says it, with the fix, not only -o wide.
	alarms := maintenance.ActiveAlarms(o.statuses)
	st.Alarms = maintenance.AlarmRows(alarms, o.members, o.hostOf, maintenance.WorkstationNames)
	for _, a := range st.Alarms {
		st.Summary += "\nALARM: " + a.Advice
	}
	return st
}

// explainWriteRefused adds what to do when the apiserver could not create a
// host pod because etcd takes no writes: under its NOSPACE or CORRUPT alarm
// (the verbs that change the membership refuse then anyway, and say so;
// the maintenance verbs, which fix it, need no pod).
func explainWriteRefused(err error) error {
	var a etcdcluster.Alarm
	switch msg := err.Error(); {
	case strings.Contains(msg, "database space exceeded"):
		a.Type = etcdcluster.AlarmNoSpace
	case strings.Contains(msg, "corrupt cluster"):
		a.Type = etcdcluster.AlarmCorrupt
	default:
		return err
	}
	return fmt.Errorf("refusing to change anything under an active alarm (nothing was changed): %s (the apiserver could not create a pod: %w)",
		maintenance.Advice(a, "a member; `kubectl etcd alarm list` says which", maintenance.WorkstationNames), err)
}
