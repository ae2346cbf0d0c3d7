package doctor

import (
	"strings"
	"testing"
)

func TestFinishOrdersAndJudges(t *testing.T) {
	r := &Report{Face: "workstation", Checked: []string{"members", "backups"}, Findings: []Finding{
		{Check: "node-without-member", Severity: Note, Subject: "h4", Problem: "h4 has no member"},
		{Check: "backups-unscheduled", Severity: Warning, Problem: "no backup is scheduled", Fix: "kubectl etcd backup schedule --every 1h --keep 24"},
		{Check: "member-down", Severity: Critical, Subject: "h3", Problem: "member h3 does not answer", Fix: "kubectl etcd replace h3\nor this"},
		{Check: "member-down", Severity: Critical, Subject: "h2", Problem: "member h2 does not answer"},
	}}
	r.Finish()
	var order []string
	for _, f := range r.Findings {
		order = append(order, f.Check+" "+f.Subject)
	}
	if got := strings.Join(order, ", "); got != "member-down h2, member-down h3, backups-unscheduled , node-without-member h4" {
		t.Errorf("order: %s", got)
	}
	if r.Healthy || r.ExitCode() != 2 || r.Summary != "2 critical, 1 warning(s): fix the critical ones first, in the order listed" {
		t.Errorf("verdict: healthy %v, exit %d, %q", r.Healthy, r.ExitCode(), r.Summary)
	}
	var b strings.Builder
	Print(&b, r)
	for _, want := range []string{
		"doctor (workstation) checked: members, backups\n",
		"CRITICAL [member-down] h3: member h3 does not answer\n         fix: kubectl etcd replace h3\n         fix: or this\n",
		"WARNING  [backups-unscheduled] no backup is scheduled\n",
		"NOTE     [node-without-member] h4: h4 has no member\n",
		"\n2 critical, 1 warning(s)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("printed report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestNotesAreHealthy(t *testing.T) {
	r := &Report{Face: "host-local", Host: "h1", Findings: []Finding{{Check: "node-without-member", Severity: Note, Problem: "x"}}}
	r.Finish()
	if !r.Healthy || r.ExitCode() != 0 || r.Summary != "healthy: no problem found (1 note(s))" {
		t.Errorf("notes only: healthy %v, exit %d, %q", r.Healthy, r.ExitCode(), r.Summary)
	}
	empty := &Report{}
	empty.Finish()
	if !empty.Healthy || empty.Findings == nil || empty.Summary != "healthy: no problem found" {
		t.Errorf("no findings: %+v", empty)
	}
	var b strings.Builder
	Print(&b, r)
	if !strings.Contains(b.String(), "doctor (host-local on h1)") {
		t.Errorf("printed: %s", b.String())
	}
}
