package hostlocal

import (
	"context"
	"fmt"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// RecoveryMarkerKey is the key `recover` and `restore` leave on the cluster
// they bring back (see hostapi.RecoveryMarkerKey).
const RecoveryMarkerKey = hostapi.RecoveryMarkerKey

// RecoveryMarker is the value of RecoveryMarkerKey.
type RecoveryMarker = hostapi.RecoveryMarker

// recoveryMarker reads the marker; nil when there is none or it cannot be read.
func recoveryMarker(ctx context.Context, c *etcdcluster.Client) *RecoveryMarker {
	raw, found, err := c.Get(ctx, RecoveryMarkerKey)
	if err != nil || !found {
		return nil
	}
	return hostapi.ParseRecoveryMarker(raw)
}

func describeMarker(m *RecoveryMarker, id uint64) string {
	return fmt.Sprintf("this host's etcd data is of member %x, which the %s on %s at %s cut off: it is stale, so it is moved aside (never used) and this host joins as a new member",
		id, m.Verb, m.Host, m.Time.Format(time.RFC3339))
}
