package workstation

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/doctor"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostpod"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/maintenance"
)

func row(host, id string, healthy bool) hostapi.MemberRow {
	return hostapi.MemberRow{Host: host, Name: host, ID: id, Started: true, Healthy: healthy,
		PeerURL: "https://10.0.0." + id + ":2380", ClientURL: "https://10.0.0." + id + ":2379"}
}

func hostRow(node string, ready bool, member string) HostRow {
	h := HostRow{Node: node, Ready: ready, EtcdPod: member != "", Member: member, APIServerEtcd: "https://127.0.0.1:2379"}
	return h
}

// healthyFacts: three healthy members on three Ready hosts, certificates
// fine, backups every hour, the last one 20 minutes ago.
func healthyFacts() doctorFacts {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	last := now.Add(-20 * time.Minute)
	okCert := func(node string) HostCerts {
		return HostCerts{Node: node, Certs: []hostapi.CertReport{{Name: "etcd-server", Path: "/etc/kubernetes/pki/etcd/server.crt", Status: hostapi.CertOK, DaysLeft: 300}}}
	}
	return doctorFacts{
		now: now,
		status: &ClusterStatus{
			Members:   []hostapi.MemberRow{row("h1", "1", true), row("h2", "2", true), row("h3", "3", true)},
			Hosts:     []HostRow{hostRow("h1", true, "h1"), hostRow("h2", true, "h2"), hostRow("h3", true, "h3")},
			ClusterID: "c1",
		},
		certs:   &CertsCheck{Hosts: []HostCerts{okCert("h1"), okCert("h2"), okCert("h3")}},
		cronJob: &CronJobState{Name: "kube-system/kubectl-etcd-backup", Every: "1h", LastScheduleTime: &last, LastSuccessfulTime: &last},
	}
}

// findings lists "severity check subject" and the fixes.
func findings(fs []doctor.Finding) (list []string, fixes map[string]string) {
	fixes = map[string]string{}
	for _, f := range fs {
		k := string(f.Severity) + " " + f.Check + " " + f.Subject
		list = append(list, strings.TrimSpace(k))
		fixes[f.Check+" "+f.Subject] = f.Fix
	}
	return list, fixes
}

func TestDiagnose(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*doctorFacts)
		want   []string
		fix    map[string]string // check+" "+subject → a part of its fix
	}{
		{name: "healthy", change: func(*doctorFacts) {}},
		{name: "member down on a Ready node", change: func(f *doctorFacts) {
			f.status.Members[1].Healthy, f.status.Members[1].Error = false, "context deadline exceeded\nmore"
		}, want: []string{"critical member-down h2"}, fix: map[string]string{"member-down h2": "kubectl etcd replace h2"}},
		{name: "member down, its node not Ready", change: func(f *doctorFacts) {
			f.status.Members[2].Healthy, f.status.Hosts[2].Ready = false, false
		}, want: []string{"critical member-down h3"}, fix: map[string]string{"member-down h3": "kubectl etcd remove h3 --delete-node"}},
		{name: "unstarted voter on a Ready node", change: func(f *doctorFacts) {
			f.status.Members = append(f.status.Members, hostapi.MemberRow{Host: "h4", Name: "7", ID: "7", PeerURL: "https://10.0.0.4:2380"})
			f.status.Hosts = append(f.status.Hosts, hostRow("h4", true, "7"))
		}, want: []string{"critical member-unstarted h4", "warning even-members"},
			fix: map[string]string{"member-unstarted h4": "kubectl etcd scale --replicas 4", "even-members ": "kubectl etcd scale --replicas 3"}},
		{name: "unstarted voter without a host", change: func(f *doctorFacts) {
			f.status.Members = append(f.status.Members, hostapi.MemberRow{Name: "8", ID: "8", PeerURL: "https://10.0.0.9:2380"})
		}, want: []string{"critical member-unstarted 8", "warning even-members"}, fix: map[string]string{"member-unstarted 8": "kubectl etcd remove 8"}},
		{name: "quorum lost", change: func(f *doctorFacts) {
			f.status.Members[1].Healthy, f.status.Members[2].Healthy = false, false
		}, want: []string{"critical quorum-lost", "critical member-down h2", "critical member-down h3"},
			fix: map[string]string{"quorum-lost ": "kubectl-etcd recover"}},
		{name: "NOSPACE", change: func(f *doctorFacts) {
			f.status.Alarms = []maintenance.AlarmRow{{Type: "NOSPACE", MemberID: "1", Member: "h1", Host: "h1", Advice: "kubectl etcd defrag --all --compact, then kubectl etcd alarm disarm"}}
		}, want: []string{"critical alarm h1"}, fix: map[string]string{"alarm h1": "alarm disarm"}},
		{name: "a member-less host whose apiserver reads a removed member", change: func(f *doctorFacts) {
			f.status.Hosts = append(f.status.Hosts, HostRow{Node: "h4", Ready: true, APIServerEtcd: "https://10.0.0.4:2379"})
			f.status.Drift = append(f.status.Drift, Drift{Kind: "node-without-member", Node: "h4", Detail: "x"})
		}, want: []string{"critical apiserver-orphaned h4", "note node-without-member h4"},
			fix: map[string]string{"apiserver-orphaned h4": "kubectl-etcd leave   # as root on h4", "node-without-member h4": "kubectl etcd scale --replicas 4"}},
		{name: "a member-less host reading the members and a removed one", change: func(f *doctorFacts) {
			f.status.Hosts = append(f.status.Hosts, HostRow{Node: "h4", Ready: true, APIServerEtcd: "https://10.0.0.1:2379,https://10.0.0.4:2379"})
		}, want: []string{"warning apiserver-stale-servers h4"}},
		{name: "a stale etcd on a host", change: func(f *doctorFacts) {
			f.status.Drift = append(f.status.Drift, Drift{Kind: "manifest-without-member", Node: "h4", Detail: "x"})
		}, want: []string{"critical manifest-without-member h4"},
			fix: map[string]string{"manifest-without-member h4": "kubectl-etcd join --endpoints https://10.0.0.1:2379,https://10.0.0.2:2379,https://10.0.0.3:2379 --move-aside-foreign-data"}},
		{name: "drift", change: func(f *doctorFacts) {
			f.status.Drift = append(f.status.Drift, Drift{Kind: "manifest-differs", Node: "h2", Detail: "h2's manifest differs"})
		}, want: []string{"warning manifest-drift h2"}, fix: map[string]string{"manifest-drift h2": "kubectl etcd reconfigure h2"}},
		{name: "certificates", change: func(f *doctorFacts) {
			f.certs.Hosts[0].Certs = append(f.certs.Hosts[0].Certs, hostapi.CertReport{Name: "etcd-peer", Path: "/p", Status: hostapi.CertRenew, DaysLeft: 9})
			f.certs.Hosts[1].Certs = []hostapi.CertReport{{Name: "etcd-peer", Path: "/p", Status: hostapi.CertExpired}}
			f.certs.Hosts[2].Error = "h3 is NotReady and cannot run a host pod"
		}, want: []string{"critical cert-expired h2", "warning cert-expiring h1", "warning certs-unread h3"},
			fix: map[string]string{"cert-expiring h1": "kubectl etcd certs renew h1", "cert-expired h2": "kubectl-etcd certs renew --local   # as root on h2"}},
		{name: "a member-less host lacks etcd's own certificates, not the apiserver's", change: func(f *doctorFacts) {
			f.status.Hosts = append(f.status.Hosts, HostRow{Node: "h4", Ready: true, APIServerEtcd: "https://10.0.0.1:2379"})
			f.certs.Hosts = append(f.certs.Hosts, HostCerts{Node: "h4", Certs: []hostapi.CertReport{
				{Name: "etcd-server", Status: hostapi.CertMissing}, {Name: "etcd-peer", Status: hostapi.CertMissing},
				{Name: "apiserver-etcd-client", Path: "/etc/kubernetes/pki/apiserver-etcd-client.crt", Status: hostapi.CertMissing, Reason: "no such file"}}})
		}, want: []string{"critical cert-missing h4"}, fix: map[string]string{"cert-missing h4": "kubectl etcd certs renew h4"}},
		{name: "data left on member-less hosts", change: func(f *doctorFacts) {
			f.hostStates = map[string]*hostapi.HostState{"h4": {DataDir: "/var/lib/etcd"}, "h5": {DataDir: "/var/lib/etcd"}, "h6": {DataDir: "/var/lib/etcd"}}
			f.hostStates["h5"].DataDirFacts = &hostapi.DataDirFacts{HasData: true, MemberID: 0x9, ClusterID: 0xf00, Revision: 12}
			f.hostStates["h6"].DataDirFacts = &hostapi.DataDirFacts{HasData: true, MemberID: 0x8, ClusterID: 0xc1}
			f.hostStateErrs = map[string]error{"h7": errors.New("the kubelet on node h7 cannot start pods")}
		}, want: []string{"warning foreign-data-dir h5", "warning host-unread h7", "note stale-data-dir h6"},
			fix: map[string]string{"foreign-data-dir h5": "kubectl-etcd join --endpoints https://10.0.0.1:2379,https://10.0.0.2:2379,https://10.0.0.3:2379 --move-aside-foreign-data   # as root on h5"}},
		{name: "no backups scheduled", change: func(f *doctorFacts) { f.cronJob = nil },
			want: []string{"warning backups-unscheduled"}, fix: map[string]string{"backups-unscheduled ": "kubectl etcd backup schedule --every 1h --keep 24"}},
		{name: "backups stale", change: func(f *doctorFacts) {
			old := f.now.Add(-5 * time.Hour)
			f.cronJob.LastSuccessfulTime = &old
		}, want: []string{"warning backups-stale"}},
		{name: "backups never succeeded", change: func(f *doctorFacts) {
			f.cronJob.LastSuccessfulTime = nil
		}, want: []string{"warning backups-failing"}},
		{name: "a member answering whose Node is gone", change: func(f *doctorFacts) {
			f.status.Members[2].Host = ""
			f.status.Hosts = f.status.Hosts[:2]
			f.status.Drift = append(f.status.Drift, Drift{Kind: "member-without-host", Member: "h3", Detail: "x"})
		}, want: []string{"warning member-without-host h3"}, fix: map[string]string{"member-without-host h3": "systemctl restart kubelet   # as root on its host, if that is still a control-plane host: its Node registers again\nkubectl label node h3 node-role.kubernetes.io/control-plane="}},
		{name: "leftover host pods", change: func(f *doctorFacts) { f.leftovers = []string{"kubectl-etcd-h2-abc"} },
			want: []string{"warning leftover-host-pods"}, fix: map[string]string{"leftover-host-pods ": "kubectl -n kube-system delete pod kubectl-etcd-h2-abc"}},
		{name: "single member with room for three", change: func(f *doctorFacts) {
			f.status.Members = f.status.Members[:1]
			f.status.Drift = []Drift{{Kind: "node-without-member", Node: "h2"}, {Kind: "node-without-member", Node: "h3"}}
		}, want: []string{"warning no-fault-tolerance", "note node-without-member h2", "note node-without-member h3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := healthyFacts()
			tc.change(&f)
			r := &doctor.Report{Findings: diagnose(f)}
			r.Finish()
			got, fixes := findings(r.Findings)
			if strings.Join(got, "; ") != strings.Join(tc.want, "; ") {
				t.Fatalf("findings:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			for k, want := range tc.fix {
				if !strings.Contains(fixes[k], want) {
					t.Errorf("fix of %q = %q, want it to contain %q", k, fixes[k], want)
				}
			}
			onlyNotes := true
			for _, g := range got {
				onlyNotes = onlyNotes && strings.HasPrefix(g, "note ")
			}
			if r.Healthy != onlyNotes || (r.ExitCode() == 0) != onlyNotes {
				t.Errorf("healthy %v, exit %d, with findings %v", r.Healthy, r.ExitCode(), got)
			}
			for _, fd := range r.Findings {
				if strings.Contains(fd.Problem, "\n") {
					t.Errorf("a problem of more than one line: %q", fd.Problem)
				}
			}
		})
	}
}

func TestLeftoverHostPods(t *testing.T) {
	now := time.Now()
	pod := func(name string, age time.Duration, readOnly bool, phase corev1.PodPhase) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system", CreationTimestamp: metav1.NewTime(now.Add(-age)),
			Labels: map[string]string{hostpod.ManagedByLabel: hostpod.ManagedByValue, hostpod.RunLabel: name}},
			Status: corev1.PodStatus{Phase: phase}}
		if readOnly {
			p.Labels[hostpod.ReadOnlyLabel] = "true"
		}
		return p
	}
	objs := []runtime.Object{
		pod("done", time.Minute, false, corev1.PodSucceeded),                                  // spent: always left over
		pod("killed-run", 10*time.Minute, false, corev1.PodRunning),                           // a change, no lock held
		pod("just-started", 30*time.Second, false, corev1.PodRunning),                         // its run may not have locked yet
		pod("colleagues-read", 10*time.Minute, true, corev1.PodRunning),                       // a read of a live run
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "etcd-h1", Namespace: "kube-system"}}, // not ours
	}
	s := &Session{Clientset: fake.NewClientset(objs...)}
	got, err := s.leftoverHostPods(context.Background(), now)
	if err != nil || strings.Join(got, ",") != "done,killed-run" {
		t.Errorf("no run lock: %v, %v; want done,killed-run", got, err)
	}
	// While a run holds the lock, its running pods are its own.
	s = &Session{Clientset: fake.NewClientset(append(objs, heldLease())...)}
	if got, err := s.leftoverHostPods(context.Background(), now); err != nil || strings.Join(got, ",") != "done" {
		t.Errorf("a run holds the lock: %v, %v; want done", got, err)
	}
}
