package hostlocal

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcddata"
)

// RecoveryMarkerKey is the key `recover` and `restore` leave on the cluster
// they bring back: when, where, and which members they cut off. A host whose
// data belongs to one of those members holds stale data: join moves it
// aside and never lets it rejoin with it.
const RecoveryMarkerKey = "/kubectl-etcd/recovery"

// RecoveryMarker is the value of RecoveryMarkerKey.
type RecoveryMarker struct {
	Verb           string            `json:"verb"`
	Time           time.Time         `json:"time"`
	Host           string            `json:"host"`
	MemberID       string            `json:"memberID"`
	ClusterID      string            `json:"clusterID"`
	RemovedMembers []etcddata.Member `json:"removedMembers,omitempty"`
	RevisionBefore int64             `json:"revisionBefore,omitempty"`
	RaftIndex      uint64            `json:"raftIndexBefore,omitempty"`
	Copy           string            `json:"dataCopy,omitempty"`
	Snapshot       string            `json:"snapshot,omitempty"`
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

// recoveryMarker reads the marker; nil when there is none or it cannot be read.
func (e *Env) recoveryMarker(ctx context.Context, c *etcdcluster.Client) *RecoveryMarker {
	cctx, cancel := context.WithTimeout(ctx, e.Timeouts.ClusterCall)
	defer cancel()
	raw, found, err := c.Get(cctx, RecoveryMarkerKey)
	if err != nil || !found {
		return nil
	}
	m := &RecoveryMarker{}
	if json.Unmarshal(raw, m) != nil {
		return nil
	}
	return m
}

func (m *RecoveryMarker) describe(id uint64) string {
	return fmt.Sprintf("this host's etcd data is of member %x, which the %s on %s at %s cut off: it is stale, so it is moved aside (never used) and this host joins as a new member",
		id, m.Verb, m.Host, m.Time.Format(time.RFC3339))
}
