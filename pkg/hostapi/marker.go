package hostapi

import (
	"encoding/json"
	"time"
)

// RecoveryMarkerKey is the etcd key `recover` and `restore` leave on the
// cluster they bring back: when, where, and which members they cut off. A
// host whose data belongs to one of those members holds stale data: join
// moves it aside and never lets it rejoin with it, and the workstation's
// status names such hosts.
const RecoveryMarkerKey = "/kubectl-etcd/recovery"

// RecoveryMarker is the value of RecoveryMarkerKey.
type RecoveryMarker struct {
	Verb           string    `json:"verb"`
	Time           time.Time `json:"time"`
	Host           string    `json:"host"`
	MemberID       string    `json:"memberID"`
	ClusterID      string    `json:"clusterID"`
	RemovedMembers []Member  `json:"removedMembers,omitempty"`
	RevisionBefore int64     `json:"revisionBefore,omitempty"`
	RaftIndex      uint64    `json:"raftIndexBefore,omitempty"`
	Copy           string    `json:"dataCopy,omitempty"`
	Snapshot       string    `json:"snapshot,omitempty"`
}

// ParseRecoveryMarker decodes a RecoveryMarkerKey value; nil when it is
// not one (a marker that cannot be read must not fail the verb reading it).
func ParseRecoveryMarker(raw []byte) *RecoveryMarker {
	m := &RecoveryMarker{}
	if json.Unmarshal(raw, m) != nil {
		return nil
	}
	return m
}

// Cut reports whether the marker names member id as cut off.
func (m *RecoveryMarker) Cut(id uint64) bool {
	for _, r := range m.RemovedMembers {
		if r.ID == id {
			return true
		}
	}
	return false
}

// Member is an etcd member as a data dir or a marker records it.
type Member struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name,omitempty"`
	PeerURLs   []string `json:"peerURLs,omitempty"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	IsLearner  bool     `json:"isLearner,omitempty"`
}
