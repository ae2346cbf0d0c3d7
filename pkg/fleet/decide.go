// Package fleet drives a host-level operation across every control-plane
// host from the workstation, over a host transport (hostapi), for when no
// apiserver is there to do it through: the recovery after quorum loss. It
// decides nothing a host would not: each host surveys itself with its own
// `recover --dry-run`, the host the survey puts furthest ahead recovers
// with its own `recover`, and every other host comes back with its own
// `join`; the hosts' journals make each step safe to run again.
package fleet

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// Survey is one host's answer to `recover --dry-run`, or why it gave none.
type Survey struct {
	// Host is the host as the transport names it (a node name or an
	// address).
	Host string `json:"host"`
	// Address is where the transport reaches it, when known.
	Address string `json:"address,omitempty"`
	// Node is its node name, as the host itself reports it.
	Node string `json:"node,omitempty"`
	// Unreachable says why the host could not be asked (powered off, no
	// SSH): nothing ran there.
	Unreachable string `json:"unreachable,omitempty"`
	// Failed says why a host that was reached could not survey itself (no
	// sudo, not a control-plane host, an unknown host key, a name that
	// does not resolve): the whole run is refused until it is fixed.
	Failed string                 `json:"failed,omitempty"`
	Report *hostapi.RecoverReport `json:"recover,omitempty"`
}

func (s Survey) name() string {
	if s.Node != "" && s.Node != s.Host {
		return fmt.Sprintf("%s (%s)", s.Node, s.Host)
	}
	return s.Host
}

// Plan is what the cross-host recovery does, decided from the surveys.
type Plan struct {
	Surveys []Survey `json:"surveys"`
	// Survivor is the host that recovers (""when etcd has a quorum already:
	// a recovery done before, whose hosts only need to join).
	Survivor string `json:"survivor,omitempty"`
	// Resume: the survivor has an unfinished recovery, carried on.
	Resume bool `json:"resume,omitempty"`
	// Anchor is the host whose member the others join: the survivor, or a
	// member of the cluster that has a quorum.
	Anchor string `json:"anchor"`
	// Endpoint is the anchor's client URL, for join ("" until known).
	Endpoint string `json:"endpoint,omitempty"`
	// Join are the hosts that answered and join, in order; Wait the hosts
	// that did not answer, joined as they come back.
	Join []string `json:"join,omitempty"`
	Wait []string `json:"wait,omitempty"`
	// Why says, for people, why the survivor or the anchor was chosen.
	Why string `json:"why"`
}

// Decide plans the recovery from every host's survey, refusing where a
// host's own recover would refuse:
//   - a host with an unfinished recovery is the survivor (its journal says
//     what is left to do); two such hosts are refused;
//   - a host whose survey sees a quorum means etcd is up: nothing is
//     recovered, and listed hosts that are not members of it join it (the
//     end of an earlier run that stopped before its joins); when there are
//     none, there is nothing to do, as recover on a host says;
//   - else, of the hosts whose recover would proceed, the one furthest
//     ahead (raft index, then revision; then the order given) recovers.
//     Hosts that hold data of another etcd cluster are refused.
func Decide(surveys []Survey) (*Plan, error) {
	p := &Plan{Surveys: surveys}
	var failed []string
	for _, s := range surveys {
		if s.Failed != "" {
			failed = append(failed, fmt.Sprintf("  %s: %s", s.Host, s.Failed))
		}
	}
	if len(failed) > 0 {
		return nil, fmt.Errorf("nothing was changed on any host: %d host(s) could not be surveyed; fix that, or leave them out of --hosts if they are not control-plane hosts:\n%s",
			len(failed), strings.Join(failed, "\n"))
	}
	if err := distinctNodes(surveys); err != nil {
		return nil, err
	}
	if err := unknownUnreachable(surveys); err != nil {
		return nil, err
	}
	var resuming, live, candidates []Survey
	for _, s := range surveys {
		r := s.Report
		switch {
		case r == nil:
		case r.Resuming:
			resuming = append(resuming, s)
		case r.Survey != nil && r.Survey.Quorum:
			live = append(live, s)
		case r.Error == "" && r.Survey != nil:
			candidates = append(candidates, s)
		}
	}
	switch {
	case len(resuming) > 1:
		return nil, fmt.Errorf("%s and %s both have an unfinished recovery (journal /etc/kubernetes/kubectl-etcd/recovery.json): only one may be carried on; look at both with `kubectl-etcd status --local` as root there",
			resuming[0].name(), resuming[1].name())
	case len(resuming) == 1:
		p.Survivor, p.Anchor, p.Resume = resuming[0].Host, resuming[0].Host, true
		p.Why = fmt.Sprintf("%s has an unfinished recovery: it is carried on there", resuming[0].name())
	case len(live) > 0:
		return p, p.joinLive(live[0])
	default:
		best, err := furthest(surveys, candidates)
		if err != nil {
			return nil, err
		}
		p.Survivor, p.Anchor = best.Host, best.Host
		p.Endpoint = advertisedClientURL(best.Report.Survey.Local)
		p.Why = fmt.Sprintf("%s is the furthest ahead of the hosts whose recover would proceed (raft index %d, revision %d)",
			best.name(), best.Report.Survey.Local.RaftIndex, best.Report.Survey.Local.Revision)
	}
	for _, s := range surveys {
		switch {
		case s.Host == p.Anchor:
		case s.Unreachable != "":
			p.Wait = append(p.Wait, s.Host)
		default:
			p.Join = append(p.Join, s.Host)
		}
	}
	return p, nil
}

// joinLive plans the joins to the cluster anchor's survey found with a
// quorum: every listed host that is not one of its members.
func (p *Plan) joinLive(anchor Survey) error {
	sv := anchor.Report.Survey
	p.Anchor = anchor.Host
	p.Endpoint = liveEndpoint(sv)
	var members []string
	for _, m := range sv.Members {
		members = append(members, m.Name)
	}
	for _, s := range p.Surveys {
		if s.Host == anchor.Host {
			continue
		}
		member := slices.Contains(members, s.Node) || (s.Node == "" && slices.Contains(members, s.Host))
		switch {
		case member:
		case s.Unreachable != "":
			p.Wait = append(p.Wait, s.Host)
		default:
			p.Join = append(p.Join, s.Host)
		}
	}
	if len(p.Join)+len(p.Wait) == 0 {
		return fmt.Errorf("etcd has a quorum (seen from %s; members: %s): there is nothing to recover, and every host listed is a member", anchor.name(), strings.Join(members, ", "))
	}
	p.Why = fmt.Sprintf("etcd has a quorum (seen from %s; members: %s): nothing to recover; the hosts that are not members join it", anchor.name(), strings.Join(members, ", "))
	return nil
}

// liveEndpoint is a client URL of a member that answered the survey.
func liveEndpoint(sv *hostapi.RecoverSurvey) string {
	if sv.Local.Running {
		if u := advertisedClientURL(sv.Local); u != "" {
			return u
		}
	}
	for _, o := range sv.Others {
		if o.Running && o.ClientURL != "" {
			return o.ClientURL
		}
	}
	return ""
}

// advertisedClientURL is where other hosts reach a host's own member: its
// survey asked it at its local address (127.0.0.1), but kubeadm's member
// serves clients on its advertise address too, the host of its peer URL.
func advertisedClientURL(local hostapi.Survivor) string {
	if h := urlHost(local.PeerURL); h != "" {
		return ClientURL(h)
	}
	return ""
}

// furthest picks the candidate furthest ahead, or says why no host can
// recover.
func furthest(all, candidates []Survey) (*Survey, error) {
	if len(candidates) == 0 {
		var why []string
		for _, s := range all {
			switch {
			case s.Unreachable != "":
				why = append(why, fmt.Sprintf("  %s: not reachable: %s", s.name(), s.Unreachable))
			case s.Report != nil && s.Report.Error != "":
				why = append(why, fmt.Sprintf("  %s: %s", s.name(), s.Report.Error))
			default:
				why = append(why, fmt.Sprintf("  %s: no survey", s.name()))
			}
		}
		return nil, fmt.Errorf("no host can recover; each one's recover said:\n%s", strings.Join(why, "\n"))
	}
	cluster := candidates[0].Report.Survey.Local.ClusterID
	best := candidates[0]
	for _, c := range candidates[1:] {
		l := c.Report.Survey.Local
		if l.ClusterID != cluster {
			return nil, fmt.Errorf("%s holds data of etcd cluster %s and %s of cluster %s: these hosts are not one cluster's control plane; check --hosts",
				candidates[0].name(), cluster, c.name(), l.ClusterID)
		}
		b := best.Report.Survey.Local
		if l.RaftIndex > b.RaftIndex || (l.RaftIndex == b.RaftIndex && l.Revision > b.Revision) {
			best = c
		}
	}
	return &best, nil
}

// distinctNodes refuses a host listed twice (by name and by address).
func distinctNodes(surveys []Survey) error {
	seen := map[string]string{}
	for _, s := range surveys {
		if s.Node == "" {
			continue
		}
		if other, ok := seen[s.Node]; ok {
			return fmt.Errorf("%s and %s are the same host (node %s): list each host once", other, s.Host, s.Node)
		}
		seen[s.Node] = s.Host
	}
	return nil
}

// unknownUnreachable refuses a host that does not answer and that no
// answering host knows as a member: a powered-off member is waited for,
// but a mistyped --hosts entry looks the same from here (through a proxy
// or a jump host, even a name that does not resolve is just a failed
// connection), and must not be waited for while the others recover.
func unknownUnreachable(surveys []Survey) error {
	known := map[string]bool{}
	for _, s := range surveys {
		if s.Report == nil || s.Report.Survey == nil {
			continue
		}
		sv := s.Report.Survey
		for _, m := range sv.Members {
			known[m.Name] = true
			for _, u := range m.PeerURLs {
				known[urlHost(u)] = true
			}
		}
		for _, x := range append([]hostapi.Survivor{sv.Local}, sv.Others...) {
			known[x.Name], known[urlHost(x.PeerURL)] = true, true
		}
	}
	if len(known) == 0 {
		return nil // no answering host read a membership: nothing to check against
	}
	var unknown []string
	for _, s := range surveys {
		if s.Unreachable != "" && !known[s.Host] && (s.Address == "" || !known[s.Address]) {
			unknown = append(unknown, s.Host)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	var members []string
	for k := range known {
		if k != "" {
			members = append(members, k)
		}
	}
	slices.Sort(members)
	return fmt.Errorf("nothing was changed on any host: %s does not answer and is no member the other hosts know (by name or peer address: %s); check --hosts, or leave out a host that was never a member",
		strings.Join(unknown, ", "), strings.Join(members, ", "))
}

func urlHost(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Hostname()
}

// ClientURL is the client URL of etcd on a host at address (kubeadm's
// port 2379).
func ClientURL(address string) string {
	return "https://" + net.JoinHostPort(address, "2379")
}
