// Package etcdcluster is the membership logic kubectl-etcd's verbs share: a
// narrow wrapper over etcd's client for listing members and their status and
// for the idempotent steps of adding (as a learner), promoting and removing a
// member, plus pure functions that decide whether a change is safe.
//
// Every change is idempotent so that a verb interrupted half-way (a host
// rebooting, a user pressing ^C) can simply be run again.
package etcdcluster

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Member is one etcd cluster member as the cluster's membership lists it.
type Member struct {
	ID         uint64
	Name       string
	PeerURLs   []string
	ClientURLs []string
	IsLearner  bool
}

// Started reports whether the member's etcd has ever run and published itself.
// etcd has no such field: a member added with member add has no name (and no
// client URLs) until its process joins and publishes them through raft.
func (m Member) Started() bool { return m.Name != "" }

// String names the member: its name, or its hex ID until it has started.
func (m Member) String() string {
	if m.Name != "" {
		return m.Name
	}
	return fmt.Sprintf("%x", m.ID)
}

// describe is the form errors use: name and ID, or ID and peer URL for a
// member that has not started (its ID alone means little to a reader).
func describe(m Member) string {
	if m.Started() {
		return fmt.Sprintf("%s (%x)", m.Name, m.ID)
	}
	return fmt.Sprintf("%x (not started, peer URLs %v)", m.ID, m.PeerURLs)
}

func fromPB(m *etcdserverpb.Member) Member {
	return Member{
		ID:         m.GetID(),
		Name:       m.GetName(),
		PeerURLs:   slices.Clone(m.GetPeerURLs()),
		ClientURLs: slices.Clone(m.GetClientURLs()),
		IsLearner:  m.GetIsLearner(),
	}
}

// fromPBs converts and sorts by ID, so callers see a stable order whatever
// member answered.
func fromPBs(ms []*etcdserverpb.Member) []Member {
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, fromPB(m))
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// MembersOf returns the members of a Statuses answer. Without a quorum,
// Members cannot answer (it reads linearizably) but Statuses can, and the
// checks below can still explain why nothing may be changed.
func MembersOf(statuses []Status) []Member {
	out := make([]Member, 0, len(statuses))
	for _, s := range statuses {
		out = append(out, s.Member)
	}
	return out
}

// Find returns the member with the given ID.
func Find(members []Member, id uint64) (Member, bool) {
	for _, m := range members {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// FindByPeerURL returns the member that has peerURL among its peer URLs. etcd
// compares peer URLs as plain strings, and so does this.
func FindByPeerURL(members []Member, peerURL string) (Member, bool) {
	for _, m := range members {
		if slices.Contains(m.PeerURLs, peerURL) {
			return m, true
		}
	}
	return Member{}, false
}

// Status is what one member reports about itself, or why it could not be asked.
type Status struct {
	Member   Member
	Endpoint string // the client URL that was queried; empty if the member has none
	// Healthy: the member answered and knows a leader, so it takes part in
	// the quorum. Err is set when it did not answer.
	Healthy bool
	Err     error

	ClusterID        uint64 // the cluster the answering member belongs to
	Leader           uint64 // the leader this member follows
	IsLeader         bool
	RaftIndex        uint64 // committed index
	RaftAppliedIndex uint64
	RaftTerm         uint64
	Revision         int64
	DBSize           int64
	DBSizeInUse      int64
	Version          string
	// Alarms raised for this member (NOSPACE, CORRUPT). The alarm list is
	// read through raft, so without a quorum it stays empty; the alarms then
	// still show, in etcd's words, in Errors.
	Alarms []string
	Errors []string // etcd's own error list from the status response
	// ServerCertNotAfter is when the certificate the member serves its
	// client port with expires, as seen in the TLS handshake of the probe;
	// zero when there was no TLS or no answer.
	ServerCertNotAfter time.Time
}

// Reason says in a few words why a status is not healthy.
func (s Status) Reason() string {
	switch {
	case s.Healthy:
		return "healthy"
	case s.Err != nil:
		return s.Err.Error()
	case s.Leader == 0:
		return "has no leader"
	}
	return "unhealthy"
}
