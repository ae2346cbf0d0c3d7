// Package doctor is what `kubectl etcd doctor` and host-local
// `kubectl-etcd doctor` report: findings, each a problem named in one line
// with the exact command that fixes it, and the verdict (exit code) a
// script or a pager runbook acts on. The checks themselves live with each
// face (pkg/workstation, pkg/hostlocal), which see different things; this
// package only gives them one shape and one way of printing.
package doctor

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Severity says how much a finding matters.
type Severity string

const (
	// Critical: the cluster cannot write, or is one failure from that
	// (quorum lost or at stake, an alarm, an expired certificate).
	Critical Severity = "critical"
	// Warning: it works now, and will hurt later or on the next failure.
	Warning Severity = "warning"
	// Note: worth knowing, not a problem (a deliberate shape, say); it
	// does not change the verdict.
	Note Severity = "note"
)

func (s Severity) rank() int {
	switch s {
	case Critical:
		return 0
	case Warning:
		return 1
	}
	return 2
}

// Finding is one problem: what, where, and the command that fixes it.
type Finding struct {
	// Check names the kind of problem, stable for scripts:
	// member-down, member-unstarted, quorum-lost, alarm, cert-expired, ...
	Check    string   `json:"check"`
	Severity Severity `json:"severity"`
	// Subject is the node or member it is about, when there is one.
	Subject string `json:"subject,omitempty"`
	Problem string `json:"problem"`
	// Fix is the exact command (or commands, one per line) that fixes it,
	// with where to run it when that is not the workstation.
	Fix string `json:"fix,omitempty"`
}

// Report is one doctor pass.
type Report struct {
	// Face is "workstation" or "host-local", and Host the host a
	// host-local pass ran on.
	Face string `json:"face"`
	Host string `json:"host,omitempty"`
	// Checked lists what was looked at, so that a clean report says what
	// it is clean of, and a check that could not run says so.
	Checked  []string  `json:"checked"`
	Findings []Finding `json:"findings"`
	Healthy  bool      `json:"healthy"`
	Summary  string    `json:"summary"`
}

// Finish sorts the findings (worst first, then by subject) and sets the
// verdict and summary.
func (r *Report) Finish() {
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if a.Severity.rank() != b.Severity.rank() {
			return a.Severity.rank() < b.Severity.rank()
		}
		return a.Subject < b.Subject
	})
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	count := map[Severity]int{}
	for _, f := range r.Findings {
		count[f.Severity]++
	}
	r.Healthy = count[Critical] == 0 && count[Warning] == 0
	switch {
	case r.Healthy && count[Note] == 0:
		r.Summary = "healthy: no problem found"
	case r.Healthy:
		r.Summary = fmt.Sprintf("healthy: no problem found (%d note(s))", count[Note])
	default:
		r.Summary = fmt.Sprintf("%d critical, %d warning(s): fix the critical ones first, in the order listed", count[Critical], count[Warning])
	}
}

// ExitCode is the verdict for scripts: 0 healthy, 2 a problem found (1 is
// left to errors: the pass itself could not run).
func (r *Report) ExitCode() int {
	if r.Healthy {
		return 0
	}
	return 2
}

// Print writes the report for people: one block per finding, the fix
// indented under it, the summary last.
func Print(w io.Writer, r *Report) {
	where := r.Face
	if r.Host != "" {
		where += " on " + r.Host
	}
	fmt.Fprintf(w, "doctor (%s) checked: %s\n\n", where, strings.Join(r.Checked, ", "))
	for _, f := range r.Findings {
		subject := ""
		if f.Subject != "" {
			subject = f.Subject + ": "
		}
		fmt.Fprintf(w, "%-8s [%s] %s%s\n", strings.ToUpper(string(f.Severity)), f.Check, subject, f.Problem)
		for _, line := range strings.Split(f.Fix, "\n") {
			if line != "" {
				fmt.Fprintf(w, "         fix: %s\n", line)
			}
		}
	}
	if len(r.Findings) > 0 {
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, r.Summary)
}
