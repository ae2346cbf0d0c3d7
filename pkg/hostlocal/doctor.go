package hostlocal

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/backup"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/doctor"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcddata"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/maintenance"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// BackupMaxAge is how old the newest backup on a member host may be before
// doctor warns: a day, and an hour's grace for a daily schedule's run.
const BackupMaxAge = 25 * time.Hour

// Doctor is host-local doctor: one read-only pass over this host and, through whatever member answers, the cluster.
//
// It reads what `status --local` reads (ReadState) and, besides, this host's
// etcd certificates, its backup directory and the cluster's recovery marker;
// when no quorum answers, every member's own status (which needs none). It
// writes nothing, takes no lock, and never fails: what it could not look at
// is a finding of its own. diagnose makes every decision.
func (e *Env) Doctor(ctx context.Context, extraEndpoints []string, now time.Time) *doctor.Report {
	f := e.gatherDoctor(ctx, extraEndpoints, now)
	r := &doctor.Report{Face: "host-local", Host: e.Config.NodeName()}
	r.Checked, r.Findings = diagnose(f)
	r.Finish()
	return r
}

// doctorFacts is everything diagnose decides on, gathered by gatherDoctor.
type doctorFacts struct {
	Now     time.Time
	Node    string
	PeerURL string
	// LocalClient is the loopback client URL kubeadm's apiserver reads its
	// local member at (https://127.0.0.1:2379).
	LocalClient string
	DataDir     string
	State       *State
	// RunningData is the identity in the data dir of a running etcd, read
	// from its WAL (State.DataDirFacts is read only while etcd is stopped).
	RunningData *etcddata.State
	// Survey is every member's own status when no quorum answered (the
	// membership then comes from a member's own copy); nil otherwise.
	Survey      []hostapi.MemberRow
	SurveyError string
	Marker      *RecoveryMarker
	// ClientErr says why no client certificate could be made here (no
	// etcd CA): then the cluster was not asked at all.
	ClientErr string
	// APIServer: this host has a kube-apiserver manifest.
	APIServer bool
	Certs     []hostapi.CertReport
	CertsErr  error
	BackupDir string
	Backups   []backup.Entry
	BackupErr error
}

// surveyTimeout bounds the look at each member's own status when no quorum
// answered: ReadState has already waited for the cluster.
const surveyTimeout = 8 * time.Second

func (e *Env) gatherDoctor(ctx context.Context, extraEndpoints []string, now time.Time) doctorFacts {
	h, cfg := e.Host, e.Config
	f := doctorFacts{Now: now, Node: cfg.NodeName(), PeerURL: cfg.PeerURL(), LocalClient: staticpod.LocalEtcdServer(cfg),
		DataDir: cfg.DataDir(), BackupDir: backup.Dir, APIServer: h.APIServerManifestExists()}
	f.State = e.ReadState(ctx, extraEndpoints)
	if f.State.EtcdRunning {
		// The WAL's head names member and cluster, and takes no lock.
		if member, cluster, err := etcddata.ReadIdentity(h.Path(cfg.DataDir())); err == nil {
			f.RunningData = &etcddata.State{HasData: true, MemberID: member, ClusterID: cluster}
		}
	}
	if tlsCfg, err := h.EphemeralClientTLS(cfg); err != nil {
		f.ClientErr = err.Error()
	} else {
		if len(f.State.Members) > 0 {
			// A quorum answered: read the marker from the healthy members.
			var eps []string
			for _, m := range f.State.Members {
				if m.Healthy && m.ClientURL != "" {
					eps = append(eps, m.ClientURL)
				}
			}
			if c, err := e.connect(ctx, eps, tlsCfg); err == nil {
				f.Marker = recoveryMarker(ctx, c)
				c.Close()
			}
		} else {
			f.Survey, f.SurveyError = e.surveyMembers(ctx, e.candidateEndpoints(extraEndpoints, f.State.EtcdRunning), tlsCfg)
		}
	}
	f.Certs, f.CertsErr = h.CheckCerts(cfg, now)
	f.Backups, f.BackupErr = backup.List(h.Path(backup.Dir), false)
	return f
}

// surveyMembers asks each member for its own status, which a member answers
// without a quorum (the membership too, from its own copy).
func (e *Env) surveyMembers(ctx context.Context, endpoints []string, tlsCfg *tls.Config) ([]hostapi.MemberRow, string) {
	if len(endpoints) == 0 {
		return nil, "no etcd endpoints to reach the cluster"
	}
	ctx, cancel := context.WithTimeout(ctx, surveyTimeout)
	defer cancel()
	c, err := etcdcluster.New(etcdcluster.Config{Endpoints: endpoints, TLS: tlsCfg, DialTimeout: 3 * time.Second, MemberTimeout: 3 * time.Second})
	if err != nil {
		return nil, err.Error()
	}
	defer c.Close()
	statuses, err := c.Statuses(ctx)
	if err != nil {
		return nil, err.Error()
	}
	return rows(etcdcluster.MembersOf(statuses), statuses, e.Config.PeerURL()), ""
}

// diagnose is doctor's every decision: the findings on what was gathered,
// each with the exact command that fixes it, and what was looked at.
func diagnose(f doctorFacts) (checked []string, findings []doctor.Finding) {
	d := &diagnosis{doctorFacts: f}
	d.init()
	d.localEtcd()
	d.quorum()
	d.members()
	d.alarms()
	d.recoveryMarker()
	d.apiserver()
	d.certificates()
	d.backups()
	return d.checked, d.findings
}

type diagnosis struct {
	doctorFacts
	checked  []string
	findings []doctor.Finding

	rows     []hostapi.MemberRow // the members, from a quorum or (without one) from the survey
	quorate  bool                // a quorum answered, and is healthy
	votes    etcdcluster.Votes
	self     *hostapi.MemberRow // this host's member, if the cluster has one
	endpoint string             // client URLs of the healthy voters but this host's, for a join here
	// elsewhere is every healthy voter's client URL, this host's too: for
	// a join on another host (after a recover, this host's may be all).
	elsewhere string
	// localProblem: localEtcd found this host's etcd broken; its fix
	// (join) points this host's apiserver back at it too.
	localProblem bool
}

func (d *diagnosis) add(check string, sev doctor.Severity, subject, problem, fix string) {
	d.findings = append(d.findings, doctor.Finding{Check: check, Severity: sev, Subject: subject, Problem: oneLine(problem), Fix: fix})
}

func (d *diagnosis) init() {
	st := d.State
	d.rows = st.Members
	if len(d.rows) == 0 {
		d.rows = d.Survey
	}
	for i := range d.rows {
		if d.rows[i].ThisHost {
			d.self = &d.rows[i]
		}
	}
	d.votes = etcdcluster.CountVotes(d.rows, func(m hostapi.MemberRow) bool { return m.Learner }, func(m hostapi.MemberRow) bool { return m.Healthy })
	d.quorate = len(st.Members) > 0 && d.votes.Quorate()
	var here, all []string
	for _, m := range d.rows {
		if m.Healthy && !m.Learner && m.ClientURL != "" {
			all = append(all, m.ClientURL)
			if !m.ThisHost {
				here = append(here, m.ClientURL)
			}
		}
	}
	d.endpoint, d.elsewhere = strings.Join(here, ","), strings.Join(all, ",")
	if d.endpoint == "" {
		d.endpoint = "<a healthy member's client URL>"
	}
	if d.elsewhere == "" {
		d.elsewhere = d.endpoint
	}
}

// marginSeverity is how much one more voter down matters: Critical when the
// quorum is at stake (no failure tolerated now), else Warning.
func (d *diagnosis) marginSeverity() doctor.Severity {
	if d.votes.Tolerates() == 0 {
		return doctor.Critical
	}
	return doctor.Warning
}

// here says where a host-local command runs: as root on this host.
func (d *diagnosis) here() string { return "as root on " + d.Node }

func (d *diagnosis) joinHere(extra string) string {
	return fmt.Sprintf("kubectl-etcd join --endpoints %s%s   # %s", d.endpoint, extra, d.here())
}

// localData is what this host's data dir holds: offline facts while etcd is
// stopped, the WAL's identity while it runs.
func (d *diagnosis) localData() *etcddata.State {
	if d.State.DataDirFacts != nil {
		return d.State.DataDirFacts
	}
	return d.RunningData
}

func (d *diagnosis) localEtcd() {
	d.checked = append(d.checked, "local etcd")
	before := len(d.findings)
	defer func() {
		d.localProblem = slices.ContainsFunc(d.findings[before:], func(f doctor.Finding) bool { return f.Severity != doctor.Note })
	}()
	st, node := d.State, d.Node
	data := d.localData()
	clusterID, _ := strconv.ParseUint(st.ClusterID, 16, 64)
	switch {
	case st.Stale != "":
		d.add("cut-off-by-recovery", doctor.Critical, node,
			fmt.Sprintf("%s's etcd data is of a member the last recovery cut off (%s)", node, st.Stale),
			d.joinHere("")+": moves the stale data aside and joins as a new member")
		return
	case data != nil && data.HasData && data.ClusterID != 0 && clusterID != 0 && data.ClusterID != clusterID:
		// Critical when an etcd runs, or is to run, on it: this host's
		// apiserver reads it. Otherwise it is in the way of a join only.
		sev := doctor.Warning
		if st.ManifestPresent || st.EtcdRunning {
			sev = doctor.Critical
		}
		d.add("foreign-data-dir", sev, node,
			fmt.Sprintf("data dir %s holds member %x of etcd cluster %x, not of cluster %x that the members here form", d.DataDir, data.MemberID, data.ClusterID, clusterID),
			d.joinHere(" --move-aside-foreign-data")+": moves that data aside (never deleted) and joins as a new member")
		return
	}
	if !d.quorate {
		// join, leave and remove need a quorum: recover is the way back
		// (quorum-lost), and this host's etcd not running may be why.
		if st.ManifestPresent && !st.EtcdRunning {
			d.add("local-etcd-down", doctor.Critical, node, fmt.Sprintf("%s has an etcd manifest but its etcd does not run", node),
				fmt.Sprintf("systemctl restart kubelet   # %s: kubelet may hold etcd in crash-loop back-off", d.here()))
		}
		return
	}
	switch {
	case d.self != nil && st.ManifestPresent && !st.EtcdRunning && !d.self.Started:
		d.add("member-unstarted", d.voterSeverity(*d.self), node,
			fmt.Sprintf("%s's member %s was added, and its manifest written, but its etcd does not run", node, d.self.ID),
			d.joinHere("")+": writes the manifest again and starts it")
	case d.self != nil && st.ManifestPresent && !st.EtcdRunning:
		d.add("local-etcd-down", d.voterSeverity(*d.self), node,
			fmt.Sprintf("%s has an etcd manifest but its etcd (member %s) does not run", node, d.self.Name),
			fmt.Sprintf("systemctl restart kubelet   # %s: kubelet may hold etcd in crash-loop back-off\n%s", d.here(),
				d.joinHere(" --replace-member "+d.self.ID)+", if it still does not start: a fresh member, its data moved aside"))
	case d.self != nil && st.EtcdRunning && !d.self.Healthy:
		d.add("local-member-unhealthy", d.voterSeverity(*d.self), node,
			fmt.Sprintf("%s's etcd runs but its member %s is not healthy: %s", node, d.self.Name, reason(*d.self)),
			d.joinHere(" --replace-member "+d.self.ID)+", if it stays so: starts the member over (its data moved aside, a fresh learner)")
	case d.self != nil && !st.ManifestPresent && !st.EtcdRunning && data != nil && data.HasData:
		d.add("manifest-missing", d.voterSeverity(*d.self), node,
			fmt.Sprintf("%s's member %s is in the cluster and its data in %s, but %s has no etcd manifest", node, d.self.Name, d.DataDir, node),
			d.joinHere("")+": writes kubeadm's manifest again")
	case d.self != nil && !st.ManifestPresent && !st.EtcdRunning:
		d.add("local-etcd-down", d.voterSeverity(*d.self), node,
			fmt.Sprintf("the cluster has a member for %s (%s), but %s has no etcd manifest and no data", node, d.self.Name, node),
			d.joinHere("")+": brings this host's member back (a fresh one, as its data is gone)")
	case d.self == nil && (st.ManifestPresent || st.EtcdRunning):
		d.add("manifest-without-member", doctor.Critical, node,
			fmt.Sprintf("%s has an etcd manifest or process, but the cluster has no member at %s (stale, or another cluster's data): its kube-apiserver reads no member", node, d.PeerURL),
			d.joinHere("")+", if this host is to have a member\n"+
				fmt.Sprintf("kubectl-etcd leave   # %s, if not: stops it and moves its data aside", d.here()))
	case d.self == nil && data != nil && data.HasData:
		d.add("stale-data-dir", doctor.Note, node,
			fmt.Sprintf("data dir %s holds removed member %x of this cluster (%x), and %s has no member; a join here moves it aside itself", d.DataDir, data.MemberID, data.ClusterID, node),
			fmt.Sprintf("kubectl-etcd leave   # %s, to move it aside now (never deleted)", d.here()))
	case d.self == nil:
		d.add("node-without-member", doctor.Note, node, fmt.Sprintf("%s runs no etcd member", node), "")
	}
}

// voterSeverity: a voter down weighs by the quorum's margin; a learner
// does not vote.
func (d *diagnosis) voterSeverity(m hostapi.MemberRow) doctor.Severity {
	if m.Learner {
		return doctor.Warning
	}
	return d.marginSeverity()
}

func (d *diagnosis) quorum() {
	d.checked = append(d.checked, "quorum")
	const runbook = "kubectl-etcd status --local   # as root on each control-plane host you can reach: its member's raft index\n" +
		"kubectl-etcd recover   # as root on the host with the highest raft index (recover says if another is ahead)"
	if d.ClientErr != "" {
		d.add("etcd-unreadable", doctor.Warning, d.Node, "could not check quorum, members, alarms: "+shorten(d.ClientErr, 200), "")
		return
	}
	if len(d.rows) == 0 {
		why := d.State.ClusterError
		if d.SurveyError != "" {
			why = d.SurveyError
		}
		d.add("quorum-lost", doctor.Critical, "", fmt.Sprintf("no etcd member answered from %s: %s", d.Node, shorten(why, 200)), runbook)
		return
	}
	if d.quorate {
		return
	}
	var down []string
	for _, m := range d.rows {
		if !m.Learner && !m.Healthy {
			down = append(down, m.Name)
		}
	}
	d.add("quorum-lost", doctor.Critical, "",
		fmt.Sprintf("no quorum: %d of %d voting members healthy, %d needed; not healthy: %s", d.votes.Healthy, d.votes.Voters, etcdcluster.Quorum(d.votes.Voters), strings.Join(down, ", ")),
		runbook)
}

// members: every other member that does not answer, never started, or is a
// learner left behind. Without a quorum recover is the fix for all of them
// (quorum-lost says so), and removing one is impossible.
func (d *diagnosis) members() {
	if !d.quorate {
		return
	}
	d.checked = append(d.checked, "members")
	for _, m := range d.rows {
		switch {
		case m.ThisHost:
			if m.Learner && m.Healthy && m.Started {
				d.add("member-learner", doctor.Warning, m.Name,
					fmt.Sprintf("%s's member is still a learner (an interrupted join); etcd allows one learner at a time", d.Node),
					d.joinHere("")+": finishes the join (promotes it)")
			}
		case !m.Started:
			d.add("member-unstarted", d.voterSeverity(m), m.ID,
				fmt.Sprintf("member %s was added (peer URL %s) but its etcd never started", m.ID, m.PeerURL),
				fmt.Sprintf("kubectl-etcd remove --local %s   # %s, if no host is to run it\n", m.ID, d.here())+
					fmt.Sprintf("kubectl-etcd join --endpoints %s   # or as root on the host at %s, to start it", d.elsewhere, hostOfURL(m.PeerURL)))
		case !m.Healthy:
			kind := "voting member"
			if m.Learner {
				kind = "learner"
			}
			d.add("member-down", d.voterSeverity(m), m.Name,
				fmt.Sprintf("%s %s (peer URL %s) does not answer: %s; %s", kind, m.Name, m.PeerURL, reason(m), d.marginWords(m)),
				fmt.Sprintf("kubectl-etcd remove --local %s   # %s, if %s is gone for good\n", m.Name, d.here(), m.Name)+
					fmt.Sprintf("kubectl-etcd status --local   # or as root on %s once it is back: its member catches up by itself", m.Name))
		case m.Learner:
			d.add("member-learner", doctor.Warning, m.Name,
				fmt.Sprintf("member %s is still a learner (an interrupted join); etcd allows one learner at a time", m.Name),
				fmt.Sprintf("kubectl-etcd join --endpoints %s   # as root on %s: finishes the join (promotes it)", d.elsewhere, m.Name))
		}
	}
}

// marginWords says what a down member leaves of the quorum.
func (d *diagnosis) marginWords(m hostapi.MemberRow) string {
	if m.Learner {
		return "learners do not vote"
	}
	if t := d.votes.Tolerates(); t > 0 {
		return fmt.Sprintf("%d of %d voters healthy, %d more may fail", d.votes.Healthy, d.votes.Voters, t)
	}
	return fmt.Sprintf("%d of %d voters healthy: one more failure loses the quorum", d.votes.Healthy, d.votes.Voters)
}

// alarms: etcd's alarms stop every write; the words are those of `alarm
// list --local`, the commands its host-local ones.
func (d *diagnosis) alarms() {
	if !d.quorate {
		return // the alarm list is read through raft
	}
	d.checked = append(d.checked, "alarms")
	n := maintenance.HostNames
	for _, m := range d.rows {
		id, _ := strconv.ParseUint(m.ID, 16, 64)
		for _, t := range m.Alarms {
			a := etcdcluster.Alarm{MemberID: id, Type: t}
			var fix string
			switch t {
			case etcdcluster.AlarmNoSpace:
				fix = fmt.Sprintf("%s   # %s: frees the space\n%s   # then clears the alarm", n.Defrag, d.here(), n.Disarm)
			case etcdcluster.AlarmCorrupt:
				where := d.here()
				if m.ThisHost {
					where = "as root on another control-plane host with a member"
					if other := d.otherHealthy(); other != "" {
						where = "as root on " + other
					}
				}
				var others []string
				for _, o := range d.rows {
					if o.Healthy && !o.Learner && o.ClientURL != "" && o.ID != m.ID {
						others = append(others, o.ClientURL)
					}
				}
				rejoin := strings.Join(others, ",")
				fix = fmt.Sprintf("%s %s   # %s: the member with differing data\n%s   # then clears the alarm\n", n.Remove, m.Name, where, n.Disarm) +
					fmt.Sprintf("kubectl-etcd join --endpoints %s   # then as root on %s: a fresh member (its old data moved aside)", rejoin, m.Name)
			default:
				fix = n.Disarm + "   # " + d.here() + ", once its cause is gone"
			}
			d.add("alarm", doctor.Critical, m.Name, maintenance.Advice(a, "member "+m.Name, n), fix)
		}
	}
}

// otherHealthy names a healthy voter other than this host's.
func (d *diagnosis) otherHealthy() string {
	for _, m := range d.rows {
		if m.Healthy && !m.Learner && !m.ThisHost {
			return m.Name
		}
	}
	return ""
}

// recoveryMarker: the members the last recover or restore cut off whose
// hosts have not joined again (a host that rejoined has a member at the same
// peer URL). The marker stays for good, so a host that is gone for good
// stays listed: a Warning while the cluster is smaller than before the
// recovery, a Note once it is as big again.
func (d *diagnosis) recoveryMarker() {
	if !d.quorate {
		return
	}
	d.checked = append(d.checked, "recovery marker")
	m := d.Marker
	if m == nil {
		return
	}
	current := map[string]bool{}
	for _, r := range d.rows {
		current[r.PeerURL] = true
		current["name:"+r.Name] = true
	}
	sev := doctor.Note
	if d.votes.Voters < 1+len(m.RemovedMembers) {
		sev = doctor.Warning
	}
	for _, r := range m.RemovedMembers {
		if len(r.PeerURLs) > 0 && current[r.PeerURLs[0]] || r.Name != "" && current["name:"+r.Name] {
			continue
		}
		if d.State.Stale != "" && slices.Contains(r.PeerURLs, d.PeerURL) {
			continue // said for this host by localEtcd
		}
		name := r.Name
		if name == "" {
			name = fmt.Sprintf("%x", r.ID)
		}
		d.add("cut-off-by-recovery", sev, name,
			fmt.Sprintf("the %s on %s at %s cut off member %s (%x), whose host has not joined again", m.Verb, m.Host, m.Time.UTC().Format(time.RFC3339), name, r.ID),
			fmt.Sprintf("kubectl-etcd join --endpoints %s   # as root on %s when it is back: moves its stale data aside, joins as a new member\n", d.elsewhere, name)+
				fmt.Sprintf("kubectl etcd remove %s --delete-node   # from a workstation, if %s is gone for good", name, name))
	}
}

// apiserver: this host's kube-apiserver must read etcd at URLs a healthy
// member serves. A URL that no member has any more (removed, or this host's
// member gone) leaves it one loss from no etcd, or with none: leave (no
// member here) or join (one here) points it at the members. A URL of a
// member that is down is member-down's, unless it is all the apiserver has.
func (d *diagnosis) apiserver() {
	if !d.APIServer {
		return
	}
	d.checked = append(d.checked, "apiserver etcd-servers")
	servers := d.State.APIServerEtcdServers
	if len(servers) == 0 {
		d.add("apiserver-unread", doctor.Warning, d.Node, "could not check apiserver etcd-servers: none read from its manifest", "")
		return
	}
	if !d.quorate {
		return // quorum-lost is the finding; every URL fails now
	}
	var gone, working, down []string
	for _, s := range servers {
		if s == d.LocalClient && d.localProblem {
			continue // the local finding's fix (join) points it back too
		}
		switch m := d.memberServing(s); {
		case m == nil:
			gone = append(gone, s)
		case m.Healthy:
			working = append(working, s)
		default:
			down = append(down, m.Name)
		}
	}
	repoint := d.joinHere("") + ": points it back at the local member"
	if d.self == nil {
		repoint = fmt.Sprintf("kubectl-etcd leave   # %s: points it at the members (this host has none)", d.here())
	}
	switch {
	case len(working) > 0 && len(gone) > 0:
		d.add("apiserver-stale-servers", doctor.Warning, d.Node,
			fmt.Sprintf("kube-apiserver on %s reads etcd at %s too, which no member serves any more (removed): one more loss leaves it without etcd", d.Node, strings.Join(gone, ",")), repoint)
	case len(working) == 0 && len(gone) > 0:
		d.add("apiserver-orphaned", doctor.Critical, d.Node,
			fmt.Sprintf("kube-apiserver on %s reads etcd at %s, which no healthy member serves: it cannot work", d.Node, strings.Join(servers, ",")), repoint)
	case len(working) == 0 && len(down) > 0:
		// Only members that are down: once removed, their URLs are gone.
		var fix []string
		for _, n := range down {
			fix = append(fix, fmt.Sprintf("kubectl-etcd remove --local %s   # %s, if %s is gone for good", n, d.here(), n))
		}
		d.add("apiserver-orphaned", doctor.Critical, d.Node,
			fmt.Sprintf("kube-apiserver on %s reads etcd only at %s, of members that do not answer (%s): it cannot work", d.Node, strings.Join(servers, ","), strings.Join(down, ", ")),
			strings.Join(append(fix, repoint+", once they are removed"), "\n"))
	}
}

// memberServing is the member that serves client URL u: the one advertising
// it, or this host's for the loopback URL kubeadm's apiserver reads.
func (d *diagnosis) memberServing(u string) *hostapi.MemberRow {
	if u == d.LocalClient {
		if d.self != nil && d.State.EtcdRunning {
			return d.self
		}
		return nil
	}
	for i := range d.rows {
		if d.rows[i].ClientURL == u {
			return &d.rows[i]
		}
	}
	return nil
}

// certificates: this host's etcd certificates, as `certs check --local`
// reads them. A host without a member has no serving certificates to check.
func (d *diagnosis) certificates() {
	d.checked = append(d.checked, "certificates")
	if d.CertsErr != nil {
		d.add("certs-unread", doctor.Warning, d.Node, "could not check certificates: "+d.CertsErr.Error(), "")
		return
	}
	member := d.self != nil || d.State.ManifestPresent || d.State.EtcdRunning
	renew := fmt.Sprintf("%s   # %s", RenewHint, d.here())
	caFix := "# kubectl-etcd does not renew the etcd CA: rotate it as kubeadm documents (https://kubernetes.io/docs/tasks/tls/manual-rotation-of-ca-certificates/), then " + RenewHint + " on every control-plane host"
	for _, c := range d.Certs {
		memberCert := c.Name != "etcd-ca" && c.Name != "apiserver-etcd-client"
		if !member && memberCert {
			continue
		}
		fix := renew
		if c.Name == "etcd-ca" {
			fix = caFix
		}
		what := fmt.Sprintf("%s certificate %s", c.Name, c.Path)
		switch c.Status {
		case hostapi.CertExpired:
			d.add("cert-expired", doctor.Critical, d.Node, fmt.Sprintf("%s expired on %s", what, c.NotAfter.Format("2006-01-02")), fix)
		case hostapi.CertRenew:
			in := fmt.Sprintf("in %d days", c.DaysLeft)
			if c.DaysLeft < 1 {
				in = "in less than a day"
			}
			d.add("cert-expiring", doctor.Warning, d.Node, fmt.Sprintf("%s expires on %s, %s", what, c.NotAfter.Format("2006-01-02"), in), fix)
		case hostapi.CertMismatch:
			d.add("cert-mismatch", doctor.Critical, d.Node, fmt.Sprintf("%s is not what kubeadm would issue for %s: %s", what, d.Node, c.Reason), fix)
		case hostapi.CertMissing:
			if c.Name == "etcd-ca" {
				fix = "# copy the etcd CA (ca.crt, ca.key) from another control-plane host, as kubeadm join --control-plane does; then " + RenewHint
			}
			d.add("cert-missing", doctor.Critical, d.Node, fmt.Sprintf("%s is missing", what), fix)
		}
	}
}

// backups: a member host keeps verified snapshots in backup.Dir (the
// scheduled runs, and one before each membership change).
func (d *diagnosis) backups() {
	if d.self == nil && !d.State.ManifestPresent {
		return // backups snapshot this host's member: none here
	}
	d.checked = append(d.checked, "backups")
	if d.BackupErr != nil {
		d.add("backups-unread", doctor.Warning, d.Node, "could not check backups: "+d.BackupErr.Error(), "")
		return
	}
	run := fmt.Sprintf("kubectl-etcd backup run   # %s: one now", d.here())
	schedule := "kubectl etcd backup schedule --every 1h --keep 24   # from a workstation: hourly, the newest 24 kept"
	if len(d.Backups) == 0 {
		d.add("backups-missing", doctor.Warning, d.Node, fmt.Sprintf("no backup in %s on %s", d.BackupDir, d.Node), schedule+"\n"+run)
		return
	}
	newest := d.Backups[0]
	if age := d.Now.Sub(newest.Time); age > BackupMaxAge {
		d.add("backups-stale", doctor.Warning, d.Node,
			fmt.Sprintf("the newest backup on %s, %s, is %s old", d.Node, newest.Name, formatAge(age)), run+"\n"+schedule+" (or check why the scheduled runs fail)")
	}
}

func formatAge(d time.Duration) string {
	days := int(d / (24 * time.Hour))
	hours := int(d % (24 * time.Hour) / time.Hour)
	if days > 0 {
		return fmt.Sprintf("%dd%dh", days, hours)
	}
	return fmt.Sprintf("%dh", hours)
}

// reason is why a member is not healthy, short: the finding names the
// member already, as the status error does again.
func reason(m hostapi.MemberRow) string {
	if m.Error == "" {
		return "no leader"
	}
	why := m.Error
	if rest, ok := strings.CutPrefix(why, "status of member "); ok {
		if _, after, ok := strings.Cut(rest, ": "); ok {
			why = after
		}
	}
	return shorten(why, 120)
}

// hostOfURL is the host part of a peer URL.
func hostOfURL(u string) string {
	if p, err := url.Parse(u); err == nil && p.Hostname() != "" {
		return p.Hostname()
	}
	return u
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
