package workstation

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/backup"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/doctor"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostpod"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/runlock"
)

// doctorFacts is everything the workstation's doctor judges, gathered
// first so that judging is a pure function (diagnose), tested with tables.
type doctorFacts struct {
	status *ClusterStatus
	// certs are every host's, or why one's could not be read.
	certs *CertsCheck
	// cronJob is nil when backups are not scheduled (or cronJobErr).
	cronJob    *CronJobState
	cronJobErr error
	// hostStates are the member-less Ready hosts' own views (their data
	// dirs), by node; hostStateErrs why one could not be read.
	hostStates    map[string]*hostapi.HostState
	hostStateErrs map[string]error
	// leftovers are host pods no run will delete: spent, or of a run that
	// holds no lock any more.
	leftovers    []string
	leftoversErr error
	now          time.Time
}

// Doctor is `kubectl etcd doctor`: one read-only pass over the cluster
// (members, hosts, drift, alarms, certificates, backups, leftover host
// pods) naming each problem and the command that fixes it. A cluster whose
// etcd cannot be read at all is a report too (a critical finding with the
// host-local next step), not an error: doctor is what a person runs when
// paged, and it must say what to do.
func (s *Session) Doctor(ctx context.Context) *doctor.Report {
	f := doctorFacts{now: time.Now()}
	r := &doctor.Report{Face: "workstation"}
	s.SkipCertExpiry = true // the certificate check below reads every host's files
	st, err := s.Status(ctx)
	if err != nil {
		r.Checked = []string{"etcd (through the apiserver)"}
		r.Findings = append(r.Findings, doctor.Finding{Check: "etcd-unreadable", Severity: doctor.Critical,
			Problem: "etcd cannot be read through the apiserver: " + firstLine(err.Error()),
			Fix:     "kubectl-etcd doctor --local   # as root on each control-plane host: it works without the apiserver, and says what to run where"})
		r.Finish()
		return r
	}
	f.status = st
	var wg sync.WaitGroup
	wg.Go(func() { f.hostStates, f.hostStateErrs = s.memberlessHostStates(ctx, st) })
	// The certificates of the hosts status just listed: no second LIST.
	nodes := make([]Node, 0, len(st.Hosts))
	for _, h := range st.Hosts {
		nodes = append(nodes, Node{Name: h.Node, Address: h.Address, Ready: h.Ready})
	}
	f.certs = s.checkCertsOn(ctx, nodes)
	wg.Wait()
	f.cronJob, f.cronJobErr = s.cronJobState(ctx)
	f.leftovers, f.leftoversErr = s.leftoverHostPods(ctx, f.now)
	r.Checked = []string{"members", "quorum", "alarms", "hosts", "member-less hosts' data dirs", "apiservers' etcd-servers", "manifest drift", "recovery marker", "certificates", "backup schedule", "leftover host pods"}
	r.Findings = diagnose(f)
	r.Finish()
	return r
}

// memberlessHostStates reads, in read-only host pods, the data dir of each
// Ready control-plane host that runs no etcd: data left there (a removed
// member's, or another cluster's) decides what a join there will do.
func (s *Session) memberlessHostStates(ctx context.Context, st *ClusterStatus) (map[string]*hostapi.HostState, map[string]error) {
	states, errs := map[string]*hostapi.HostState{}, map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range st.Hosts {
		if h.Member != "" || h.EtcdPod || !h.Ready {
			continue
		}
		wg.Go(func() {
			hs, err := s.Hosts.HostState(ctx, h.Node)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[h.Node] = err
				return
			}
			states[h.Node] = hs
		})
	}
	wg.Wait()
	return states, errs
}

// leftoverHostPods are the kubectl-etcd host pods no run will delete: done
// or past their deadline, or, while no run holds the run lock, any pod of
// a run that changed something (a killed run's). Read-only runs' pods of
// a live run are not leftovers.
func (s *Session) leftoverHostPods(ctx context.Context, now time.Time) ([]string, error) {
	list, err := s.Clientset.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{
		LabelSelector: labels.Set{hostpod.ManagedByLabel: hostpod.ManagedByValue}.String() + "," + hostpod.RunLabel})
	if err != nil {
		return nil, fmt.Errorf("listing kubectl-etcd host pods: %w", err)
	}
	_, lerr := s.Clientset.CoordinationV1().Leases(runlock.Namespace).Get(ctx, runlock.Name, metav1.GetOptions{})
	locked := lerr == nil || !apierrors.IsNotFound(lerr)
	var out []string
	for _, p := range list.Items {
		young := now.Sub(p.CreationTimestamp.Time) < 2*time.Minute
		if hostpod.Spent(&p, now) || (!locked && !young && p.Labels[hostpod.ReadOnlyLabel] != "true") {
			out = append(out, p.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// diagnose turns the facts into findings.
func diagnose(f doctorFacts) []doctor.Finding {
	st := f.status
	var out []doctor.Finding
	add := func(check string, sev doctor.Severity, subject, problem, fix string) {
		out = append(out, doctor.Finding{Check: check, Severity: sev, Subject: subject, Problem: problem, Fix: fix})
	}
	v := etcdcluster.CountVotes(st.Members, func(m hostapi.MemberRow) bool { return m.Learner }, func(m hostapi.MemberRow) bool { return m.Healthy })
	hosts := map[string]HostRow{}
	for _, h := range st.Hosts {
		hosts[h.Node] = h
	}
	endpoints := healthyVoterURLs(st.Members)
	join := fmt.Sprintf("kubectl-etcd join --endpoints %s", strings.Join(endpoints, ","))

	if !v.Quorate() {
		add("quorum-lost", doctor.Critical, "", fmt.Sprintf("%d of %d voting members healthy: etcd has lost quorum and takes no writes", v.Healthy, v.Voters),
			"kubectl-etcd status --local   # as root on each control-plane host you can reach: its member's raft index\nkubectl-etcd recover   # as root on the host with the highest raft index (recover says if another is ahead)")
	}

	// Members.
	for _, m := range st.Members {
		subject := m.Name
		if m.Host != "" {
			subject = m.Host
		}
		h, onHost := hosts[m.Host]
		switch {
		case !m.Started || (!m.Healthy && m.ClientURL == ""):
			sev := doctor.Critical // a voter that cannot vote: the quorum carries a dead weight
			role := "voting member"
			if m.Learner {
				sev, role = doctor.Warning, "learner"
			}
			fix := fmt.Sprintf("kubectl etcd remove %s", m.ID)
			where := "whose peer URL " + m.PeerURL + " is no control-plane node's"
			if onHost {
				where = "on " + m.Host
				if h.Ready {
					fix = fmt.Sprintf("kubectl etcd scale --replicas %d   # starts it on %s, as join would (or: kubectl etcd remove %s)", max(v.Voters, 1), m.Host, m.ID)
				}
			}
			add("member-unstarted", sev, subject, fmt.Sprintf("%s %s was added %s but never started (a failed join)", role, m.ID, where), fix)
		case !m.Healthy && onHost && h.Ready:
			add("member-down", doctor.Critical, subject, fmt.Sprintf("member %s (%s) does not answer: %s", m.Name, m.ClientURL, firstLine(orText(m.Error, "no answer"))),
				fmt.Sprintf("kubectl etcd replace %s   # its data moved aside, a fresh member copies the others'; if %s cannot run pods, it prints the command to run there", m.Host, m.Host))
		case !m.Healthy && onHost:
			add("member-down", doctor.Critical, subject, fmt.Sprintf("member %s does not answer and node %s is not Ready (powered off, or its kubelet is down)", m.Name, m.Host),
				fmt.Sprintf("# bring %s back: its member rejoins by itself. If %s is gone for good:\nkubectl etcd remove %s --delete-node\nkubectl etcd scale --replicas %d", m.Host, m.Host, m.Host, max(v.Voters, 1)))
		case !m.Healthy:
			add("member-down", doctor.Critical, subject, fmt.Sprintf("member %s (%s) does not answer and runs on no control-plane node", m.Name, m.PeerURL),
				fmt.Sprintf("kubectl etcd remove %s", m.ID))
		case m.Host == "":
			add("member-without-host", doctor.Warning, subject, fmt.Sprintf("member %s (%s) answers but runs on no control-plane node (its Node object deleted, or a host outside the cluster)", m.Name, m.PeerURL),
				fmt.Sprintf("systemctl restart kubelet   # as root on its host, if that is still a control-plane host: its Node registers again\n"+
					"kubectl label node %s node-role.kubernetes.io/control-plane=   # then the mark kubeadm gave it, which a registering kubelet does not\n"+
					"kubectl taint node %s node-role.kubernetes.io/control-plane:NoSchedule\n"+
					"kubectl etcd remove %s   # instead, if it is not a control-plane host any more", m.Name, m.Name, m.ID))
		case m.Learner:
			add("member-learner", doctor.Warning, subject, fmt.Sprintf("member %s is still a learner (an addition that did not finish)", m.Name),
				fmt.Sprintf("kubectl etcd scale --replicas %d   # finishes adding it (or: kubectl etcd remove %s)", v.Voters+1, m.ID))
		}
	}

	// The shape: fault tolerance and an even count.
	readyNodes := 0
	for _, h := range st.Hosts {
		if h.Ready {
			readyNodes++
		}
	}
	switch {
	case v.Voters == 1 && readyNodes >= 3:
		add("no-fault-tolerance", doctor.Warning, "", fmt.Sprintf("a single voting member, with %d Ready control-plane nodes: losing its host loses etcd", readyNodes),
			"kubectl etcd scale --replicas 3")
	case v.Voters > 1 && v.Voters%2 == 0:
		want := v.Voters - 1
		if readyNodes > v.Voters {
			want = v.Voters + 1
		}
		add("even-members", doctor.Warning, "", fmt.Sprintf("%d voting members tolerate no more failures than %d", v.Voters, v.Voters-1),
			fmt.Sprintf("kubectl etcd scale --replicas %d", want))
	}

	// Alarms stop every write: the advice says what clears each.
	for _, a := range st.Alarms {
		add("alarm", doctor.Critical, orText(a.Host, a.Member), fmt.Sprintf("etcd alarm %s on member %s", a.Type, orText(a.Member, a.MemberID)), a.Advice)
	}

	// Hosts and drift.
	for _, d := range st.Drift {
		switch d.Kind {
		case "member-without-host":
			// Said above, from the member's side, with its health.
		case "manifest-without-member":
			add("manifest-without-member", doctor.Critical, d.Node, fmt.Sprintf("%s runs an etcd static pod that is no member of this cluster (stale, or another cluster's data): its kube-apiserver serves from it", d.Node),
				fmt.Sprintf("kubectl-etcd doctor --local   # as root on %s: whose data it runs\n%s --move-aside-foreign-data   # as root on %s, if that data is not needed (moved aside, never deleted)", d.Node, join, d.Node))
		case "node-without-member":
			add("node-without-member", doctor.Note, d.Node, fmt.Sprintf("control-plane node %s has no etcd member; its kube-apiserver reads the others'", d.Node),
				fmt.Sprintf("kubectl etcd scale --replicas %d   # if you want a member there", v.Voters+1))
		case "cut-off-by-recovery":
			add("cut-off-by-recovery", doctor.Warning, d.Node, d.Detail, "")
		case "manifest-differs":
			add("manifest-drift", doctor.Warning, d.Node, d.Detail, fmt.Sprintf("kubectl etcd reconfigure %s   # kubeadm's manifest from kubeadm-config; a hand edit meant to stay belongs in kubeadm-config or a kubeadm patch", d.Node))
		case "members-disagree":
			add("members-disagree", doctor.Warning, "", d.Detail, "kubectl etcd reconfigure   # every member, one at a time, from kubeadm-config")
		default:
			add(d.Kind, doctor.Warning, d.Node, d.Detail, "")
		}
	}
	for _, h := range st.Hosts {
		if h.APIServerEtcd == "" {
			continue
		}
		served, stale := apiserverTargets(h, st.Members)
		switch {
		case len(served) == 0 && h.Member == "":
			add("apiserver-orphaned", doctor.Critical, h.Node, fmt.Sprintf("kube-apiserver on %s reads etcd at %s, which no healthy member serves", h.Node, h.APIServerEtcd),
				fmt.Sprintf("kubectl-etcd leave   # as root on %s: points it at the members\n%s   # as root on %s instead, to give it a member", h.Node, join, h.Node))
		case len(stale) > 0 && h.Member == "":
			add("apiserver-stale-servers", doctor.Warning, h.Node, fmt.Sprintf("kube-apiserver on %s also reads etcd at %s, which no healthy member serves", h.Node, strings.Join(stale, ",")),
				fmt.Sprintf("kubectl-etcd leave   # as root on %s: points it at the members there are", h.Node))
		}
	}

	// Data left on member-less hosts.
	for _, node := range slices.Sorted(maps.Keys(f.hostStateErrs)) {
		add("host-unread", doctor.Warning, node, "its data dir could not be read: "+firstLine(f.hostStateErrs[node].Error()),
			fmt.Sprintf("kubectl-etcd doctor --local   # as root on %s", node))
	}
	for _, node := range slices.Sorted(maps.Keys(f.hostStates)) {
		hs := f.hostStates[node]
		d := hs.DataDirFacts
		if d == nil || !d.HasData {
			continue
		}
		if cid := fmt.Sprintf("%x", d.ClusterID); st.ClusterID != "" && cid != st.ClusterID {
			add("foreign-data-dir", doctor.Warning, node, fmt.Sprintf("data dir %s holds etcd cluster %s's data (member %x, revision %d), not this cluster's (%s): a join there refuses to touch it",
				hs.DataDir, cid, d.MemberID, d.Revision, st.ClusterID),
				fmt.Sprintf("%s --move-aside-foreign-data   # as root on %s, if that data is not needed: %s becomes a member, the data moved aside (never deleted)", join, node, node))
			continue
		}
		add("stale-data-dir", doctor.Note, node, fmt.Sprintf("data dir %s holds the data of removed member %x of this cluster", hs.DataDir, d.MemberID),
			"# nothing to do: a join there moves it aside itself")
	}

	// Certificates.
	if f.certs != nil {
		for _, h := range f.certs.Hosts {
			if h.Error != "" {
				add("certs-unread", doctor.Warning, h.Node, firstLine(h.Error), fmt.Sprintf("kubectl-etcd certs check --local   # as root on %s", h.Node))
				continue
			}
			hr, known := hosts[h.Node]
			renew := fmt.Sprintf("kubectl etcd certs renew %s", h.Node)
			if known && !hr.Ready {
				renew = fmt.Sprintf("kubectl-etcd certs renew --local   # as root on %s (not Ready: it cannot run the plugin's pod)", h.Node)
			}
			// A host without a member needs no etcd serving, peer or
			// healthcheck certificate (join makes them, and fetches the
			// CA), only its kube-apiserver's etcd client certificate.
			memberless := known && hr.Member == "" && !hr.EtcdPod
			for _, c := range h.Certs {
				if memberless && c.Status == hostapi.CertMissing && c.Name != "apiserver-etcd-client" {
					continue
				}
				switch c.Status {
				case hostapi.CertExpired:
					add("cert-expired", doctor.Critical, h.Node, fmt.Sprintf("%s (%s) expired on %s", c.Name, c.Path, c.NotAfter.UTC().Format("2006-01-02")),
						fmt.Sprintf("kubectl-etcd certs renew --local   # as root on %s (with it expired, its apiserver cannot reach etcd)", h.Node))
				case hostapi.CertMissing, hostapi.CertMismatch:
					add("cert-"+c.Status, doctor.Critical, h.Node, fmt.Sprintf("%s (%s): %s", c.Name, c.Path, orText(c.Reason, c.Status)), renew)
				case hostapi.CertRenew:
					add("cert-expiring", doctor.Warning, h.Node, fmt.Sprintf("%s (%s) expires in %d days, on %s", c.Name, c.Path, c.DaysLeft, c.NotAfter.UTC().Format("2006-01-02")), renew)
				}
			}
		}
	}

	// Backups.
	switch cj := f.cronJob; {
	case f.cronJobErr != nil:
		add("backups-unread", doctor.Warning, "", firstLine(f.cronJobErr.Error()), "kubectl etcd backup list")
	case cj == nil:
		add("backups-unscheduled", doctor.Warning, "", "no backup is scheduled: after a total loss there would be nothing to restore",
			"kubectl etcd backup schedule --every 1h --keep 24")
	default:
		_, every, err := backup.ParseEvery(cj.Every)
		switch {
		case cj.Suspended:
			add("backups-suspended", doctor.Warning, "", fmt.Sprintf("the backup CronJob %s is suspended", cj.Name),
				fmt.Sprintf("kubectl -n %s patch cronjob %s -p '{\"spec\":{\"suspend\":false}}'", backup.CronJobNamespace, backup.CronJobName))
		case err != nil:
			// An interval we cannot read: its runs are still judged below by a day.
			every = 12 * time.Hour
			fallthrough
		default:
			late := 2*every + 10*time.Minute
			switch {
			case cj.LastSuccessfulTime == nil && cj.LastScheduleTime != nil && f.now.Sub(*cj.LastScheduleTime) > 15*time.Minute:
				add("backups-failing", doctor.Warning, "", fmt.Sprintf("no scheduled backup has succeeded (last run %s ago)", f.now.Sub(*cj.LastScheduleTime).Round(time.Minute)),
					fmt.Sprintf("kubectl -n %s get jobs   # the newest %s job's logs say why\nkubectl etcd backup run   # takes one now", backup.CronJobNamespace, backup.CronJobName))
			case cj.LastSuccessfulTime != nil && f.now.Sub(*cj.LastSuccessfulTime) > late:
				add("backups-stale", doctor.Warning, "", fmt.Sprintf("the last successful backup is %s old, scheduled every %s", f.now.Sub(*cj.LastSuccessfulTime).Round(time.Minute), cj.Every),
					fmt.Sprintf("kubectl -n %s get jobs   # the newest job's logs say why\nkubectl etcd backup run   # takes one now", backup.CronJobNamespace))
			}
		}
	}

	// Leftover host pods.
	switch {
	case f.leftoversErr != nil:
		add("host-pods-unread", doctor.Warning, "", firstLine(f.leftoversErr.Error()), "")
	case len(f.leftovers) > 0:
		add("leftover-host-pods", doctor.Warning, "", fmt.Sprintf("%d kubectl-etcd host pod(s) left by runs that ended or were killed: %s", len(f.leftovers), strings.Join(f.leftovers, ", ")),
			fmt.Sprintf("kubectl -n kube-system delete pod %s", strings.Join(f.leftovers, " ")))
	}
	return out
}

// healthyVoterURLs are the client URLs a host-local join is pointed at.
func healthyVoterURLs(members []hostapi.MemberRow) []string {
	var out []string
	for _, m := range members {
		if m.Healthy && !m.Learner && m.ClientURL != "" {
			out = append(out, m.ClientURL)
		}
	}
	if len(out) == 0 {
		out = []string{"<a member's client URL>"}
	}
	return out
}

// apiserverTargets splits a host's kube-apiserver --etcd-servers into those
// a healthy member serves (loopback counts when the host has one) and the
// rest.
func apiserverTargets(h HostRow, members []hostapi.MemberRow) (served, stale []string) {
	healthyAt := map[string]bool{}
	localHealthy := false
	for _, m := range members {
		if !m.Healthy {
			continue
		}
		if m.Host == h.Node {
			localHealthy = true
		}
		if u, err := url.Parse(m.ClientURL); err == nil {
			healthyAt[u.Host] = true
		}
	}
	for _, s := range strings.Split(h.APIServerEtcd, ",") {
		s = strings.TrimSpace(s)
		u, err := url.Parse(s)
		if s == "" || err != nil {
			continue
		}
		ip := net.ParseIP(u.Hostname())
		if healthyAt[u.Host] || (ip != nil && ip.IsLoopback() && localHealthy) || u.Hostname() == "localhost" && localHealthy {
			served = append(served, s)
		} else {
			stale = append(stale, s)
		}
	}
	return served, stale
}

func orText(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}
