package hostlocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/internal/etcdtest"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/backup"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/doctor"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster/etcdfake"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcddata"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

var doctorNow = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// healthyFacts is cp-1 (member m1, running, its apiserver on the local
// member) in a cluster of the members statuses describe, with good
// certificates and a backup an hour old.
func healthyFacts(statuses ...etcdcluster.Status) doctorFacts {
	if len(statuses) == 0 {
		statuses = []etcdcluster.Status{etcdfake.Up(m1, 1), etcdfake.Up(m2, 1), etcdfake.Up(m3, 1)}
	}
	st := &State{Node: "cp-1", PeerURL: selfPeer, ManifestPresent: true, EtcdRunning: true, DataDir: "/var/lib/etcd", ClusterID: "c1",
		Members: rows(etcdcluster.MembersOf(statuses), statuses, selfPeer), APIServerEtcdServers: []string{"https://127.0.0.1:2379"}}
	var certs []hostapi.CertReport
	for _, n := range []string{"etcd-ca", "etcd-server", "etcd-peer", "etcd-healthcheck-client", "apiserver-etcd-client"} {
		certs = append(certs, hostapi.CertReport{Name: n, Path: "/etc/kubernetes/pki/" + n + ".crt", NotAfter: doctorNow.AddDate(0, 11, 0), DaysLeft: 330, Status: hostapi.CertOK})
	}
	return doctorFacts{Now: doctorNow, Node: "cp-1", PeerURL: selfPeer, LocalClient: "https://127.0.0.1:2379", DataDir: "/var/lib/etcd",
		State: st, RunningData: &etcddata.State{HasData: true, MemberID: 1, ClusterID: 0xc1}, APIServer: true, Certs: certs, BackupDir: backup.Dir,
		Backups: []backup.Entry{{Name: "etcd-20261206T110000Z-scheduled.db", Time: doctorNow.Add(-time.Hour), Verified: true}}}
}

func unstarted(id uint64) etcdcluster.Member {
	m := etcdfake.Member(id, "")
	m.ClientURLs = nil
	return m
}

const (
	joinOn1 = "kubectl-etcd join --endpoints https://10.0.0.2:2379,https://10.0.0.3:2379"
	runbook = "kubectl-etcd status --local   # as root on each control-plane host you can reach: its member's raft index\n" +
		"kubectl-etcd recover   # as root on the host with the highest raft index (recover says if another is ahead)"
)

func TestDiagnose(t *testing.T) {
	type want struct {
		check    string
		severity doctor.Severity
		subject  string
		problem  string // a part of it
		fix      string // exactly
	}
	m4, m5 := etcdfake.Member(4, "cp-4"), etcdfake.Member(5, "cp-5")
	for _, tc := range []struct {
		name  string
		facts func() doctorFacts
		want  []want
	}{
		{"healthy: nothing to fix", func() doctorFacts { return healthyFacts() }, nil},
		{"a voter down with no failure to spare", func() doctorFacts {
			return healthyFacts(etcdfake.Up(m1, 1), etcdfake.Up(m2, 1), etcdfake.Down(m3))
		}, []want{{"member-down", doctor.Critical, "cp-3", "voting member cp-3 (peer URL https://10.0.0.3:2380) does not answer",
			"kubectl-etcd remove --local cp-3   # as root on cp-1, if cp-3 is gone for good\n" +
				"kubectl-etcd status --local   # or as root on cp-3 once it is back: its member catches up by itself"}}},
		{"a voter down of five is a warning", func() doctorFacts {
			return healthyFacts(etcdfake.Up(m1, 1), etcdfake.Up(m2, 1), etcdfake.Up(m3, 1), etcdfake.Up(m4, 1), etcdfake.Down(m5))
		}, []want{{"member-down", doctor.Warning, "cp-5", "4 of 5 voters healthy, 1 more may fail",
			"kubectl-etcd remove --local cp-5   # as root on cp-1, if cp-5 is gone for good\n" +
				"kubectl-etcd status --local   # or as root on cp-5 once it is back: its member catches up by itself"}}},
		{"no quorum: the recover runbook, no removals", func() doctorFacts {
			f := healthyFacts()
			noLeader := etcdfake.Up(m1, 0)
			noLeader.Healthy = false
			statuses := []etcdcluster.Status{noLeader, etcdfake.Down(m2), etcdfake.Down(m3)}
			f.State.Members, f.State.ClusterID = nil, ""
			f.State.ClusterError = "no etcd endpoint answered (https://127.0.0.1:2379): context deadline exceeded"
			f.Survey = rows(etcdcluster.MembersOf(statuses), statuses, selfPeer)
			return f
		}, []want{{"quorum-lost", doctor.Critical, "", "no quorum: 0 of 3 voting members healthy, 2 needed; not healthy: cp-1, cp-2, cp-3", runbook}}},
		{"no member answers at all", func() doctorFacts {
			f := healthyFacts()
			f.State.Members, f.State.ClusterID, f.State.EtcdRunning = nil, "", false
			f.State.ClusterError = "no etcd endpoint answered"
			f.SurveyError = "listing etcd members via https://10.0.0.2:2379: context deadline exceeded"
			return f
		}, []want{
			{"quorum-lost", doctor.Critical, "", "no etcd member answered from cp-1: listing etcd members", runbook},
			{"local-etcd-down", doctor.Critical, "cp-1", "cp-1 has an etcd manifest but its etcd does not run",
				"systemctl restart kubelet   # as root on cp-1: kubelet may hold etcd in crash-loop back-off"},
		}},
		{"a member added and never started", func() doctorFacts {
			return healthyFacts(etcdfake.Up(m1, 1), etcdfake.Up(m2, 1), etcdfake.Up(m3, 1), etcdfake.Down(etcdfake.Learner(unstarted(0xab))))
		}, []want{{"member-unstarted", doctor.Warning, "ab", "member ab was added (peer URL https://10.0.0.171:2380) but its etcd never started",
			"kubectl-etcd remove --local ab   # as root on cp-1, if no host is to run it\n" +
				"kubectl-etcd join --endpoints https://10.0.0.1:2379,https://10.0.0.2:2379,https://10.0.0.3:2379   # or as root on the host at 10.0.0.171, to start it"}}},
		{"an unstarted voter takes the quorum's margin", func() doctorFacts {
			return healthyFacts(etcdfake.Up(m1, 1), etcdfake.Up(m2, 1), etcdfake.Down(unstarted(0xab)))
		}, []want{{"member-unstarted", doctor.Critical, "ab", "member ab was added",
			"kubectl-etcd remove --local ab   # as root on cp-1, if no host is to run it\n" +
				"kubectl-etcd join --endpoints https://10.0.0.1:2379,https://10.0.0.2:2379   # or as root on the host at 10.0.0.171, to start it"}}},
		{"a learner down", func() doctorFacts {
			return healthyFacts(etcdfake.Up(m1, 1), etcdfake.Up(m2, 1), etcdfake.Up(m3, 1), etcdfake.Down(etcdfake.Learner(m4)))
		}, []want{{"member-down", doctor.Warning, "cp-4", "learner cp-4 (peer URL https://10.0.0.4:2380) does not answer: cannot connect to https://10.0.0.4:2379: connection refused; learners do not vote",
			"kubectl-etcd remove --local cp-4   # as root on cp-1, if cp-4 is gone for good\n" +
				"kubectl-etcd status --local   # or as root on cp-4 once it is back: its member catches up by itself"}}},
		{"this host's member still a learner", func() doctorFacts {
			return healthyFacts(etcdfake.Up(etcdfake.Learner(m1), 2), etcdfake.Up(m2, 2), etcdfake.Up(m3, 2))
		}, []want{{"member-learner", doctor.Warning, "cp-1", "cp-1's member is still a learner",
			joinOn1 + "   # as root on cp-1: finishes the join (promotes it)"}}},
		{"this host's manifest is gone, its member and data are not", func() doctorFacts {
			f := healthyFacts(etcdfake.Up(m2, 2), etcdfake.Up(m3, 2))
			f.State.Members = rows([]etcdcluster.Member{m1, m2, m3}, []etcdcluster.Status{etcdfake.Down(m1), etcdfake.Up(m2, 2), etcdfake.Up(m3, 2)}, selfPeer)
			f.State.ManifestPresent, f.State.EtcdRunning, f.RunningData = false, false, nil
			f.State.DataDirFacts = &etcddata.State{HasData: true, MemberID: 1, ClusterID: 0xc1}
			return f
		}, []want{{"manifest-missing", doctor.Critical, "cp-1", "cp-1's member cp-1 is in the cluster and its data in /var/lib/etcd, but cp-1 has no etcd manifest",
			joinOn1 + "   # as root on cp-1: writes kubeadm's manifest again"}}},
		{"no etcd CA here: the cluster is not asked", func() doctorFacts {
			f := healthyFacts()
			f.State.Members, f.State.ClusterID = nil, ""
			f.ClientErr = "no etcd CA on this host: loading /etc/kubernetes/pki/etcd/ca.crt: no such file"
			f.Certs[0].Status = hostapi.CertMissing
			return f
		}, []want{
			{"cert-missing", doctor.Critical, "cp-1", "etcd-ca certificate /etc/kubernetes/pki/etcd-ca.crt is missing",
				"# copy the etcd CA (ca.crt, ca.key) from another control-plane host, as kubeadm join --control-plane does; then kubectl-etcd certs renew --local"},
			{"etcd-unreadable", doctor.Warning, "cp-1", "could not check quorum, members, alarms: no etcd CA on this host", ""},
		}},
		{"a learner left behind", func() doctorFacts {
			return healthyFacts(etcdfake.Up(m1, 1), etcdfake.Up(m2, 1), etcdfake.Up(etcdfake.Learner(m3), 1))
		}, []want{{"member-learner", doctor.Warning, "cp-3", "member cp-3 is still a learner",
			"kubectl-etcd join --endpoints https://10.0.0.1:2379,https://10.0.0.2:2379   # as root on cp-3: finishes the join (promotes it)"}}},
		{"NOSPACE", func() doctorFacts {
			full := etcdfake.Up(m2, 1)
			full.Alarms = []string{etcdcluster.AlarmNoSpace}
			return healthyFacts(etcdfake.Up(m1, 1), full, etcdfake.Up(m3, 1))
		}, []want{{"alarm", doctor.Critical, "cp-2", "etcd's NOSPACE alarm is raised (by member cp-2)",
			"kubectl-etcd defrag --local --all --compact   # as root on cp-1: frees the space\nkubectl-etcd alarm disarm --local   # then clears the alarm"}}},
		{"CORRUPT", func() doctorFacts {
			bad := etcdfake.Up(m3, 1)
			bad.Alarms = []string{etcdcluster.AlarmCorrupt}
			return healthyFacts(etcdfake.Up(m1, 1), etcdfake.Up(m2, 1), bad)
		}, []want{{"alarm", doctor.Critical, "cp-3", "etcd's CORRUPT alarm is raised (for member cp-3)",
			"kubectl-etcd remove --local cp-3   # as root on cp-1: the member with differing data\nkubectl-etcd alarm disarm --local   # then clears the alarm\n" +
				"kubectl-etcd join --endpoints https://10.0.0.1:2379,https://10.0.0.2:2379   # then as root on cp-3: a fresh member (its old data moved aside)"}}},
		{"cut off by a recovery", func() doctorFacts {
			f := healthyFacts(etcdfake.Up(m2, 2), etcdfake.Up(m3, 2))
			f.State.Stale = "this host's etcd data is of member 1, which the recover on cp-2 at 2026-12-06T10:00:00Z cut off"
			f.State.EtcdRunning, f.State.DataDirFacts, f.RunningData = false, &etcddata.State{HasData: true, MemberID: 1, ClusterID: 0xc1}, nil
			f.Marker = &RecoveryMarker{Verb: "recover", Host: "cp-2", RemovedMembers: []hostapi.Member{{ID: 1, Name: "cp-1", PeerURLs: m1.PeerURLs}}}
			f.State.APIServerEtcdServers = []string{"https://10.0.0.2:2379", "https://10.0.0.3:2379"}
			return f
		}, []want{{"cut-off-by-recovery", doctor.Critical, "cp-1", "the last recovery cut off",
			joinOn1 + "   # as root on cp-1: moves the stale data aside and joins as a new member"}}},
		{"a data dir of another cluster", func() doctorFacts {
			f := healthyFacts(etcdfake.Up(m2, 2), etcdfake.Up(m3, 2))
			f.State.EtcdRunning, f.RunningData = false, nil
			f.State.DataDirFacts = &etcddata.State{HasData: true, MemberID: 0x77, ClusterID: 0xdead}
			return f
		}, []want{{"foreign-data-dir", doctor.Critical, "cp-1", "data dir /var/lib/etcd holds member 77 of etcd cluster dead, not of cluster c1",
			joinOn1 + " --move-aside-foreign-data   # as root on cp-1: moves that data aside (never deleted) and joins as a new member"}}},
		{"this host's manifest is there, its etcd does not run", func() doctorFacts {
			f := healthyFacts(etcdfake.Up(m1, 2), etcdfake.Up(m2, 2), etcdfake.Up(m3, 2))
			f.State.Members = rows([]etcdcluster.Member{m1, m2, m3}, []etcdcluster.Status{etcdfake.Down(m1), etcdfake.Up(m2, 2), etcdfake.Up(m3, 2)}, selfPeer)
			f.State.EtcdRunning, f.RunningData = false, nil
			f.State.DataDirFacts = &etcddata.State{HasData: true, MemberID: 1, ClusterID: 0xc1}
			return f
		}, []want{
			{"local-etcd-down", doctor.Critical, "cp-1", "cp-1 has an etcd manifest but its etcd (member cp-1) does not run",
				"systemctl restart kubelet   # as root on cp-1: kubelet may hold etcd in crash-loop back-off\n" +
					joinOn1 + " --replace-member 1   # as root on cp-1, if it still does not start: a fresh member, its data moved aside"},
			// Its apiserver reads the local member: this fix is its too.
		}},
		{"this host's etcd runs, its member is not healthy", func() doctorFacts {
			f := healthyFacts(etcdfake.Up(m1, 2), etcdfake.Up(m2, 2), etcdfake.Up(m3, 2))
			noLeader := etcdfake.Up(m1, 0)
			noLeader.Healthy = false
			f.State.Members = rows([]etcdcluster.Member{m1, m2, m3}, []etcdcluster.Status{noLeader, etcdfake.Up(m2, 2), etcdfake.Up(m3, 2)}, selfPeer)
			return f
		}, []want{{"local-member-unhealthy", doctor.Critical, "cp-1", "cp-1's etcd runs but its member cp-1 is not healthy: no leader",
			joinOn1 + " --replace-member 1   # as root on cp-1, if it stays so: starts the member over (its data moved aside, a fresh learner)"}}},
		{"data left behind by a member that moved away", func() doctorFacts {
			f := healthyFacts(etcdfake.Up(m2, 2), etcdfake.Up(m3, 2))
			f.State.ManifestPresent, f.State.EtcdRunning, f.RunningData = false, false, nil
			f.State.DataDirFacts = &etcddata.State{HasData: true, MemberID: 1, ClusterID: 0xc1}
			f.State.APIServerEtcdServers = []string{"https://10.0.0.2:2379", "https://10.0.0.3:2379"}
			return f
		}, []want{{"stale-data-dir", doctor.Note, "cp-1", "data dir /var/lib/etcd holds removed member 1 of this cluster (c1), and cp-1 has no member",
			"kubectl-etcd leave   # as root on cp-1, to move it aside now (never deleted)"}}},
		{"a stopped etcd of another member here", func() doctorFacts {
			f := healthyFacts(etcdfake.Up(m2, 2), etcdfake.Up(m3, 2))
			f.State.EtcdRunning, f.RunningData = false, nil
			f.State.DataDirFacts = &etcddata.State{HasData: true, MemberID: 9, ClusterID: 0xc1}
			return f
		}, []want{{"manifest-without-member", doctor.Critical, "cp-1", "cp-1 has an etcd manifest or process, but the cluster has no member at https://10.0.0.1:2380",
			joinOn1 + "   # as root on cp-1, if this host is to have a member\n" +
				"kubectl-etcd leave   # as root on cp-1, if not: stops it and moves its data aside"}}},
		{"another cluster's data on a host without etcd", func() doctorFacts {
			f := healthyFacts(etcdfake.Up(m2, 2), etcdfake.Up(m3, 2))
			f.State.ManifestPresent, f.State.EtcdRunning, f.RunningData = false, false, nil
			f.State.DataDirFacts = &etcddata.State{HasData: true, MemberID: 0x77, ClusterID: 0xdead}
			f.State.APIServerEtcdServers = []string{"https://10.0.0.2:2379", "https://10.0.0.3:2379"}
			return f
		}, []want{{"foreign-data-dir", doctor.Warning, "cp-1", "data dir /var/lib/etcd holds member 77 of etcd cluster dead",
			joinOn1 + " --move-aside-foreign-data   # as root on cp-1: moves that data aside (never deleted) and joins as a new member"}}},
		{"an apiserver without a member here reads a removed member only", func() doctorFacts {
			f := healthyFacts(etcdfake.Up(m2, 2), etcdfake.Up(m3, 2))
			f.State.ManifestPresent, f.State.EtcdRunning, f.RunningData = false, false, nil
			f.State.APIServerEtcdServers = []string{"https://10.0.0.9:2379"}
			return f
		}, []want{
			{"apiserver-orphaned", doctor.Critical, "cp-1", "reads etcd at https://10.0.0.9:2379, which no healthy member serves",
				"kubectl-etcd leave   # as root on cp-1: points it at the members (this host has none)"},
			{"node-without-member", doctor.Note, "cp-1", "cp-1 runs no etcd member", ""},
		}},
		{"an apiserver without a member here reads a dead member only", func() doctorFacts {
			f := healthyFacts(etcdfake.Up(m2, 2), etcdfake.Down(m3), etcdfake.Up(m4, 2))
			f.State.ManifestPresent, f.State.EtcdRunning, f.RunningData = false, false, nil
			f.State.APIServerEtcdServers = []string{"https://10.0.0.3:2379"}
			return f
		}, []want{
			{"apiserver-orphaned", doctor.Critical, "cp-1", "kube-apiserver on cp-1 reads etcd only at https://10.0.0.3:2379, of members that do not answer (cp-3)",
				"kubectl-etcd remove --local cp-3   # as root on cp-1, if cp-3 is gone for good\n" +
					"kubectl-etcd leave   # as root on cp-1: points it at the members (this host has none), once they are removed"},
			{"member-down", doctor.Critical, "cp-3", "voting member cp-3 (peer URL https://10.0.0.3:2380) does not answer",
				"kubectl-etcd remove --local cp-3   # as root on cp-1, if cp-3 is gone for good\n" +
					"kubectl-etcd status --local   # or as root on cp-3 once it is back: its member catches up by itself"},
			{"node-without-member", doctor.Note, "cp-1", "cp-1 runs no etcd member", ""},
		}},
		{"an apiserver that also reads a removed member", func() doctorFacts {
			f := healthyFacts()
			f.State.APIServerEtcdServers = []string{"https://127.0.0.1:2379", "https://10.0.0.9:2379"}
			return f
		}, []want{{"apiserver-stale-servers", doctor.Warning, "cp-1", "reads etcd at https://10.0.0.9:2379 too, which no member serves any more",
			joinOn1 + "   # as root on cp-1: points it back at the local member"}}},
		{"certificates expired and expiring", func() doctorFacts {
			f := healthyFacts()
			f.Certs[1].Status, f.Certs[1].NotAfter = hostapi.CertExpired, doctorNow.AddDate(0, 0, -2)
			f.Certs[4].Status, f.Certs[4].NotAfter, f.Certs[4].DaysLeft = hostapi.CertRenew, doctorNow.AddDate(0, 0, 12), 12
			return f
		}, []want{
			{"cert-expired", doctor.Critical, "cp-1", "etcd-server certificate /etc/kubernetes/pki/etcd-server.crt expired on 2026-12-04",
				"kubectl-etcd certs renew --local   # as root on cp-1"},
			{"cert-expiring", doctor.Warning, "cp-1", "apiserver-etcd-client certificate /etc/kubernetes/pki/apiserver-etcd-client.crt expires on 2026-12-18, in 12 days",
				"kubectl-etcd certs renew --local   # as root on cp-1"},
		}},
		{"a certificate not what kubeadm would issue", func() doctorFacts {
			f := healthyFacts()
			f.Certs[2].Status, f.Certs[2].Reason = hostapi.CertMismatch, "not signed by the etcd CA here"
			return f
		}, []want{{"cert-mismatch", doctor.Critical, "cp-1", "etcd-peer certificate /etc/kubernetes/pki/etcd-peer.crt is not what kubeadm would issue for cp-1: not signed by the etcd CA here",
			"kubectl-etcd certs renew --local   # as root on cp-1"}}},
		{"certificates that could not be read", func() doctorFacts {
			f := healthyFacts()
			f.Certs, f.CertsErr = nil, errors.New("etcd-server config: boom")
			return f
		}, []want{{"certs-unread", doctor.Warning, "cp-1", "could not check certificates: etcd-server config: boom", ""}}},
		{"no backup", func() doctorFacts {
			f := healthyFacts()
			f.Backups = nil
			return f
		}, []want{{"backups-missing", doctor.Warning, "cp-1", "no backup in /var/lib/kubectl-etcd/backups on cp-1",
			"kubectl etcd backup schedule --every 1h --keep 24   # from a workstation: hourly, the newest 24 kept\nkubectl-etcd backup run   # as root on cp-1: one now"}}},
		{"the newest backup is three days old", func() doctorFacts {
			f := healthyFacts()
			f.Backups[0].Time = doctorNow.Add(-75 * time.Hour)
			return f
		}, []want{{"backups-stale", doctor.Warning, "cp-1", "the newest backup on cp-1, etcd-20261206T110000Z-scheduled.db, is 3d3h old",
			"kubectl-etcd backup run   # as root on cp-1: one now\nkubectl etcd backup schedule --every 1h --keep 24   # from a workstation: hourly, the newest 24 kept (or check why the scheduled runs fail)"}}},
		{"hosts a recovery cut off that have not joined again", func() doctorFacts {
			// cp-1 recovered alone; cp-2 rejoined (a new member at its peer URL), cp-3 not.
			f := healthyFacts(etcdfake.Up(m1, 1), etcdfake.Up(etcdfake.Member(0x44, "cp-2"), 1))
			f.State.Members[1].PeerURL = m2.PeerURLs[0]
			f.Marker = &RecoveryMarker{Verb: "recover", Host: "cp-1", Time: doctorNow.Add(-time.Hour),
				RemovedMembers: []hostapi.Member{{ID: 0x22, Name: "cp-2", PeerURLs: m2.PeerURLs}, {ID: 0x33, Name: "cp-3", PeerURLs: m3.PeerURLs}}}
			return f
		}, []want{{"cut-off-by-recovery", doctor.Warning, "cp-3", "the recover on cp-1 at 2026-12-06T11:00:00Z cut off member cp-3 (33), whose host has not joined again",
			"kubectl-etcd join --endpoints https://10.0.0.1:2379,https://10.0.0.68:2379   # as root on cp-3 when it is back: moves its stale data aside, joins as a new member\n" +
				"kubectl etcd remove cp-3 --delete-node   # from a workstation, if cp-3 is gone for good"}}},
		{"right after a recovery, this host's member is all there is", func() doctorFacts {
			f := healthyFacts(etcdfake.Up(m1, 1))
			f.Marker = &RecoveryMarker{Verb: "recover", Host: "cp-1", Time: doctorNow.Add(-time.Hour),
				RemovedMembers: []hostapi.Member{{ID: 0x33, Name: "cp-3", PeerURLs: m3.PeerURLs}}}
			return f
		}, []want{{"cut-off-by-recovery", doctor.Warning, "cp-3", "cut off member cp-3 (33)",
			"kubectl-etcd join --endpoints https://10.0.0.1:2379   # as root on cp-3 when it is back: moves its stale data aside, joins as a new member\n" +
				"kubectl etcd remove cp-3 --delete-node   # from a workstation, if cp-3 is gone for good"}}},
		{"hosts a recovery cut off, the cluster as big again", func() doctorFacts {
			f := healthyFacts()
			f.Marker = &RecoveryMarker{Verb: "restore", Host: "cp-1", Time: doctorNow.Add(-time.Hour),
				RemovedMembers: []hostapi.Member{{ID: 0x55, Name: "cp-5", PeerURLs: m5.PeerURLs}}}
			return f
		}, []want{{"cut-off-by-recovery", doctor.Note, "cp-5", "the restore on cp-1",
			"kubectl-etcd join --endpoints https://10.0.0.1:2379,https://10.0.0.2:2379,https://10.0.0.3:2379   # as root on cp-5 when it is back: moves its stale data aside, joins as a new member\n" +
				"kubectl etcd remove cp-5 --delete-node   # from a workstation, if cp-5 is gone for good"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checked, got := diagnose(tc.facts())
			r := doctor.Report{Findings: got}
			r.Finish() // in the order printed
			got = r.Findings
			if len(got) != len(tc.want) {
				t.Fatalf("%d findings, want %d:\n%s", len(got), len(tc.want), dump(got))
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Check != w.check || g.Severity != w.severity || g.Subject != w.subject || !strings.Contains(g.Problem, w.problem) || g.Fix != w.fix {
					t.Errorf("finding %d:\n%s\nwant %s %s %q, problem with %q, fix:\n%s", i, dump(got[i:i+1]), w.severity, w.check, w.subject, w.problem, w.fix)
				}
				if strings.Contains(g.Problem, "\n") {
					t.Errorf("problem of %s is not one line: %q", g.Check, g.Problem)
				}
			}
			if len(checked) == 0 {
				t.Error("nothing listed as checked")
			}
		})
	}
}

// TestDiagnoseChecked: a healthy pass says what it is clean of.
func TestDiagnoseChecked(t *testing.T) {
	checked, _ := diagnose(healthyFacts())
	want := "local etcd, quorum, members, alarms, recovery marker, apiserver etcd-servers, certificates, backups"
	if got := strings.Join(checked, ", "); got != want {
		t.Errorf("checked %q, want %q", got, want)
	}
}

func dump(fs []doctor.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s %s %q: %s\n    fix: %q\n", f.Severity, f.Check, f.Subject, f.Problem, f.Fix)
	}
	return b.String()
}

// TestDoctorOnRealMembers is Doctor's gathering against real etcd members
// (etcdtest), from a host holding the cluster's CA and no member: a killed
// member is named with the command that removes it from here; with a second
// one gone, the members' own statuses (no quorum answers) give quorum-lost
// and the recover runbook. The host is left byte for byte as it was.
func TestDoctorOnRealMembers(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	e, _ := testEnv(t, false)
	e.Timeouts.ClusterCall = 2 * time.Second
	certPEM, keyPEM := c.PKI.CAPEM(t)
	if _, err := e.Host.InstallEtcdCA(e.Config, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before := tree(t, e.Host.Root)

	// etcdtest's CA lasts a day: that is all there is to say.
	if r := e.Doctor(ctx, c.Endpoints(), time.Now()); r.ExitCode() != 2 || len(r.Findings) != 2 ||
		r.Findings[0].Check != "cert-expiring" || !strings.HasPrefix(r.Findings[0].Problem, "etcd-ca certificate /etc/kubernetes/pki/etcd/ca.crt expires on ") ||
		r.Findings[1].Check != "node-without-member" {
		t.Errorf("all members up: %s", report(r))
	}
	c.Members[2].Kill()
	r := e.Doctor(ctx, c.Endpoints(), time.Now())
	if r.ExitCode() != 2 || len(r.Findings) == 0 || r.Findings[0].Check != "member-down" || r.Findings[0].Subject != "m3" ||
		r.Findings[0].Severity != doctor.Critical || !strings.HasPrefix(r.Findings[0].Fix, "kubectl-etcd remove --local m3   # as root on cp-1, if m3 is gone for good\n") {
		t.Errorf("m3 killed: %s", report(r))
	}
	c.Members[1].Kill()
	r = e.Doctor(ctx, c.Endpoints(), time.Now())
	if r.ExitCode() != 2 || len(r.Findings) == 0 || r.Findings[0].Check != "quorum-lost" || r.Findings[0].Fix != runbook ||
		!strings.Contains(r.Findings[0].Problem, "no quorum: 0 of 3 voting members healthy, 2 needed; not healthy: m1, m2, m3") {
		t.Errorf("m2 and m3 killed: %s", report(r))
	}
	if tree(t, e.Host.Root) != before {
		t.Error("doctor changed the host")
	}
}

func report(r *doctor.Report) string {
	var b bytes.Buffer
	doctor.Print(&b, r)
	return b.String()
}
