package hostapi

import (
	"fmt"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

// MemberRow is one etcd member in a status report, the same on both faces:
// the plugin's `status -o json` and the host-local `status --local -o json`.
// It lives with the other types both faces' output shares rather than in
// etcdcluster, since a row says more than etcd knows: which control-plane
// node the member runs on (Host) and whether it is the reporting host's own
// (ThisHost).
//
// A field only one face fills is left out when empty, so the other face's
// rows carry no empty noise; so are the fields of the member's own answer
// (raft index and term, revision, DB size, version), which a member that
// did not answer has none of (Error says why).
type MemberRow struct {
	// Host is the control-plane node the member runs on (the plugin's).
	Host      string `json:"host,omitempty"`
	Name      string `json:"name"`
	ID        string `json:"id"`
	PeerURL   string `json:"peerURL"`
	ClientURL string `json:"clientURL"`
	Leader    bool   `json:"leader"`
	Learner   bool   `json:"learner"`
	// Started: the member's etcd has run and published its name.
	Started bool  `json:"started,omitempty"`
	Healthy bool  `json:"healthy"`
	DBSize  int64 `json:"dbSize,omitempty"`
	// ServerCertNotAfter is the plugin's.
	DBSizeInUse int64    `json:"dbSizeInUse,omitempty"`
	RaftIndex   uint64   `json:"raftIndex,omitempty"`
	RaftTerm    uint64   `json:"raftTerm,omitempty"`
	Revision    int64    `json:"revision,omitempty"`
	Version     string   `json:"version,omitempty"`
	Alarms      []string `json:"alarms,omitempty"`
	// ServerCertNotAfter is when the member's serving certificate expires,
	// read from the TLS handshake (kubeadm's etcd certificates last a year,
	// and an expired one takes the member out).
	ServerCertNotAfter *time.Time `json:"serverCertNotAfter,omitempty"`
	Error              string     `json:"error,omitempty"`
	// ThisHost: the member is the reporting host's own (host-local's).
	ThisHost bool `json:"thisHost,omitempty"`
}

// MemberRowOf is m's row with what both faces take from its status s (nil
// when it has none); each face then adds its own fields.
func MemberRowOf(m etcdcluster.Member, s *etcdcluster.Status) MemberRow {
	r := MemberRow{Name: m.String(), ID: fmt.Sprintf("%x", m.ID), Learner: m.IsLearner, Started: m.Started()}
	if len(m.PeerURLs) > 0 {
		r.PeerURL = m.PeerURLs[0]
	}
	if len(m.ClientURLs) > 0 {
		r.ClientURL = m.ClientURLs[0]
	}
	if s == nil {
		return r
	}
	r.Healthy, r.Leader = s.Healthy, s.IsLeader
	r.RaftIndex, r.RaftTerm, r.Revision, r.DBSize, r.Version = s.RaftIndex, s.RaftTerm, s.Revision, s.DBSize, s.Version
	r.DBSizeInUse, r.Alarms = s.DBSizeInUse, s.Alarms
	if s.Err != nil {
		r.Error = s.Err.Error()
	}
	return r
}
