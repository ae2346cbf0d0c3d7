package fleet

import (
	"strings"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// survivor builds a host's survey answer: its own member at index/revision,
// running or read offline, in cluster "c1", refusing with refusal ("" =
// it would proceed).
func survivor(host string, index uint64, rev int64, refusal string) Survey {
	return Survey{Host: host, Node: host, Report: &hostapi.RecoverReport{
		VerbResult: hostapi.VerbResult{Verb: "recover", Node: host, Error: refusal},
		Survey: &hostapi.RecoverSurvey{Local: hostapi.Survivor{Name: host, ID: "id-" + host, ClusterID: "c1",
			ClientURL: "https://127.0.0.1:2379", PeerURL: "https://" + testAddr[host] + ":2380", RaftIndex: index, Revision: rev, Running: true},
			// The old membership: h1, h2, h3 at 10.0.0.11-13.
			Members: []hostapi.Member{{Name: "h1", PeerURLs: []string{"https://10.0.0.11:2380"}},
				{Name: "h2", PeerURLs: []string{"https://10.0.0.12:2380"}}, {Name: "h3", PeerURLs: []string{"https://10.0.0.13:2380"}}}}}}
}

// testAddr are the hosts' advertise addresses.
var testAddr = map[string]string{"h1": "10.0.0.11", "h2": "10.0.0.12", "h3": "10.0.0.13"}

func unreachable(host string) Survey {
	return Survey{Host: host, Unreachable: "the host cannot be reached: ssh to " + host + ": connection refused"}
}

func noData(host string) Survey {
	return Survey{Host: host, Node: host, Report: &hostapi.RecoverReport{VerbResult: hostapi.VerbResult{Verb: "recover", Node: host,
		Error: host + " has no etcd data in /var/lib/etcd and no etcd running: there is nothing here to recover from"}}}
}

func live(host string, members ...string) Survey {
	s := survivor(host, 500, 400, "the cluster has a quorum (h1 follows leader h1): there is nothing to recover")
	s.Report.Survey.Quorum, s.Report.Survey.Members = true, nil
	for _, m := range members {
		s.Report.Survey.Members = append(s.Report.Survey.Members, hostapi.Member{Name: m})
	}
	return s
}

func TestDecide(t *testing.T) {
	resuming := survivor("h2", 0, 0, "")
	resuming.Report.Survey, resuming.Report.Resuming = nil, true
	otherCluster := survivor("h3", 900, 800, "")
	otherCluster.Report.Survey.Local.ClusterID = "c2"
	byAddress := survivor("10.0.0.11", 100, 90, "")
	byAddress.Node = "h1"
	for _, tc := range []struct {
		name         string
		surveys      []Survey
		wantSurvivor string
		wantAnchor   string
		wantJoin     string
		wantWait     string
		wantErr      string
	}{
		{name: "the one ahead recovers, the other joins, the powered-off one is waited for",
			surveys:      []Survey{survivor("h1", 100, 90, "h2 is further ahead"), survivor("h2", 120, 95, ""), unreachable("h3")},
			wantSurvivor: "h2", wantAnchor: "h2", wantJoin: "h1", wantWait: "h3"},
		{name: "only the hosts whose own recover proceeds are candidates, even with a higher index",
			surveys:      []Survey{survivor("h1", 300, 90, "h2 (member x) is up but its etcd does not answer"), survivor("h2", 120, 95, "")},
			wantSurvivor: "h2", wantAnchor: "h2", wantJoin: "h1"},
		{name: "same index: the higher revision",
			surveys:      []Survey{survivor("h1", 100, 90, ""), survivor("h2", 100, 95, "")},
			wantSurvivor: "h2", wantAnchor: "h2", wantJoin: "h1"},
		{name: "a tie keeps the order given",
			surveys:      []Survey{survivor("h1", 100, 95, ""), survivor("h2", 100, 95, "")},
			wantSurvivor: "h1", wantAnchor: "h1", wantJoin: "h2"},
		{name: "a host without data joins",
			surveys:      []Survey{survivor("h1", 100, 95, ""), noData("h2"), unreachable("h3")},
			wantSurvivor: "h1", wantAnchor: "h1", wantJoin: "h2", wantWait: "h3"},
		{name: "an unfinished recovery is carried on where it is, even behind",
			surveys:      []Survey{survivor("h1", 900, 800, ""), resuming, unreachable("h3")},
			wantSurvivor: "h2", wantAnchor: "h2", wantJoin: "h1", wantWait: "h3"},
		{name: "a quorum: nothing recovered, the hosts that are not members join (a rerun after the recovery)",
			surveys:    []Survey{live("h1", "h1"), survivor("h2", 50, 40, "h1 is further ahead"), unreachable("h3")},
			wantAnchor: "h1", wantJoin: "h2", wantWait: "h3"},
		{name: "a quorum with every host a member: nothing to do",
			surveys: []Survey{live("h1", "h1", "h2", "h3"), live("h2", "h1", "h2", "h3"), live("h3", "h1", "h2", "h3")},
			wantErr: "etcd has a quorum (seen from h1; members: h1, h2, h3): there is nothing to recover"},
		{name: "no candidate: every host's reason",
			surveys: []Survey{survivor("h1", 100, 90, "h2 is further ahead"), unreachable("h2"), noData("h3")},
			wantErr: "no host can recover; each one's recover said:\n  h1: h2 is further ahead\n  h2: not reachable: the host cannot be reached"},
		{name: "hosts of two clusters",
			surveys: []Survey{survivor("h1", 100, 90, ""), otherCluster},
			wantErr: "h1 holds data of etcd cluster c1 and h3 of cluster c2: these hosts are not one cluster's control plane; check --hosts"},
		{name: "one host listed by name and by address",
			surveys: []Survey{byAddress, survivor("h1", 100, 90, "")},
			wantErr: "10.0.0.11 and h1 are the same host (node h1): list each host once"},
		{name: "a host that answered but could not survey itself refuses the whole run",
			surveys: []Survey{survivor("h1", 100, 90, ""), {Host: "h2", Failed: "forbidden: user ops on h2 cannot run sudo without a password"}, unreachable("h3")},
			wantErr: "nothing was changed on any host: 1 host(s) could not be surveyed; fix that, or leave them out of --hosts if they are not control-plane hosts:\n  h2: forbidden: user ops"},
		{name: "a host that does not answer and is no member: refused (a typo looks like a powered-off host)",
			surveys: []Survey{survivor("h1", 100, 90, ""), survivor("h2", 90, 90, "h1 is further ahead"), unreachable("h9")},
			wantErr: "nothing was changed on any host: h9 does not answer and is no member the other hosts know (by name or peer address: 10.0.0.11, 10.0.0.12, 10.0.0.13, h1, h2, h3); check --hosts"},
		{name: "a host that does not answer, named by its peer address, is waited for",
			surveys:      []Survey{survivor("h1", 100, 90, ""), func() Survey { s := unreachable("cp-3"); s.Address = "10.0.0.13"; return s }()},
			wantSurvivor: "h1", wantAnchor: "h1", wantWait: "cp-3"},
		{name: "two unfinished recoveries",
			surveys: []Survey{resuming, func() Survey { s := resuming; s.Host, s.Node = "h3", "h3"; return s }()},
			wantErr: "h2 and h3 both have an unfinished recovery"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Decide(tc.surveys)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := []string{p.Survivor, p.Anchor, strings.Join(p.Join, ","), strings.Join(p.Wait, ",")}
			want := []string{tc.wantSurvivor, tc.wantAnchor, tc.wantJoin, tc.wantWait}
			for i, what := range []string{"survivor", "anchor", "join", "wait"} {
				if got[i] != want[i] {
					t.Errorf("%s %q, want %q (plan: %s)", what, got[i], want[i], p.Why)
				}
			}
			if want := "https://" + testAddr[p.Anchor] + ":2379"; p.Endpoint != want && !p.Resume {
				t.Errorf("endpoint to join %q, want the anchor's advertised %q", p.Endpoint, want)
			}
		})
	}
}

// The survivor's recover skips the kubeadm-config read only when its own
// survey, a moment before, could not read it; the call carries the flag.
func TestRecoverRequest(t *testing.T) {
	withSource := func(s Survey, src string) Survey { s.Report.ConfigSource = src; return s }
	for _, tc := range []struct {
		name    string
		surveys []Survey
		want    bool
	}{
		{"unreadable: manifests", []Survey{unreachable("h1"), withSource(survivor("h2", 10, 5, ""), "the host's existing static-pod manifests and kubeadm defaults")}, true},
		{"read from the ConfigMap", []Survey{withSource(survivor("h2", 10, 5, ""), "ConfigMap kube-system/kubeadm-config (via /etc/kubernetes/admin.conf)")}, false},
		{"an older host binary says nothing", []Survey{survivor("h2", 10, 5, "")}, false},
		{"another host's source does not count", []Survey{withSource(survivor("h1", 10, 5, ""), "kubeadm defaults"), survivor("h2", 10, 5, "")}, false},
		{"the survivor was not surveyed", []Survey{unreachable("h2")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := recoverRequest(tc.surveys, "h2")
			if req.SkipKubeadmConfig != tc.want {
				t.Fatalf("skip = %v, want %v", req.SkipKubeadmConfig, tc.want)
			}
			args := strings.Join(hostapi.RecoverCall(req).Args(), " ")
			if got := strings.Contains(args, "--"+hostapi.SkipKubeadmConfigFlag); got != tc.want {
				t.Errorf("recover's command line %q", args)
			}
		})
	}
}
