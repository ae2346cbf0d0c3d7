package etcdcluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Alarm types as etcd names them (etcdserverpb.AlarmType's String()).
const (
	AlarmNoSpace = "NOSPACE"
	AlarmCorrupt = "CORRUPT"
)

// defaultDefragTimeout bounds one member's defragmentation. etcd rewrites
// the whole database file, at disk speed; a 2 GiB (quota-sized) file on a slow
// disk takes minutes, so this is generous on purpose.
const defaultDefragTimeout = 10 * time.Minute

// Alarm is one active alarm: which member raised it and what it is.
type Alarm struct {
	MemberID uint64 `json:"memberID"`
	Type     string `json:"type"` // NOSPACE | CORRUPT
}

func (a Alarm) String() string { return fmt.Sprintf("%s on member %x", a.Type, a.MemberID) }

// Alarms lists the cluster's active alarms. The list is read through raft,
// so it needs a quorum. CallTimeout bounds it.
func (c *Client) Alarms(ctx context.Context) ([]Alarm, error) {
	ctx, cancel := bound(ctx, c.cfg.CallTimeout)
	defer cancel()
	resp, err := c.cli.AlarmList(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing etcd alarms via %s: %w", c.via(), c.explain(err))
	}
	return alarmsOf(resp.Alarms), nil
}

func alarmsOf(ms []*etcdserverpb.AlarmMember) []Alarm {
	var out []Alarm
	for _, a := range ms {
		if a.Alarm != etcdserverpb.AlarmType_NONE {
			out = append(out, Alarm{MemberID: a.MemberID, Type: a.Alarm.String()})
		}
	}
	SortAlarms(out)
	return out
}

// SortAlarms orders alarms by member, then type, so every way of reading
// them (the client, etcdctl's output, the members' statuses) lists them alike.
func SortAlarms(as []Alarm) {
	slices.SortFunc(as, func(a, b Alarm) int {
		return cmp.Or(cmp.Compare(a.MemberID, b.MemberID), cmp.Compare(a.Type, b.Type))
	})
}

// Disarm clears one alarm; clearing one that is no longer raised is not an
// error (a rerun). It does not remove the cause: etcd raises NOSPACE again
// on the next write that would not fit. CallTimeout bounds it.
func (c *Client) Disarm(ctx context.Context, a Alarm) error {
	t, ok := etcdserverpb.AlarmType_value[a.Type]
	if !ok || etcdserverpb.AlarmType(t) == etcdserverpb.AlarmType_NONE {
		return fmt.Errorf("unknown etcd alarm %q (NOSPACE, CORRUPT)", a.Type)
	}
	ctx, cancel := bound(ctx, c.cfg.CallTimeout)
	defer cancel()
	_, err := c.cli.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: a.MemberID, Alarm: etcdserverpb.AlarmType(t)})
	if err != nil {
		return fmt.Errorf("disarming %s via %s: %w", a, c.via(), c.explain(err))
	}
	return nil
}

// Compact discards the key history before rev, and waits until every
// member has applied it to its database (physical), so that the
// defragmentation that follows finds the freed pages. Compacting to a
// revision already compacted is not an error (a rerun). CallTimeout bounds it.
func (c *Client) Compact(ctx context.Context, rev int64) error {
	ctx, cancel := bound(ctx, c.cfg.CallTimeout)
	defer cancel()
	_, err := c.cli.Compact(ctx, rev, clientv3.WithCompactPhysical())
	if err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("compacting etcd to revision %d via %s: %w", rev, c.via(), c.explain(err))
	}
	return nil
}

// Defragment rewrites the database file of the member serving endpoint,
// giving its free pages back to the filesystem. The member answers nothing
// else meanwhile (reads and writes to it wait), so callers do one member at
// a time. DefragTimeout bounds it (10 minutes unless set).
func (c *Client) Defragment(ctx context.Context, endpoint string) error {
	d := c.cfg.DefragTimeout
	if d <= 0 {
		d = defaultDefragTimeout
	}
	ctx, cancel := bound(ctx, d)
	defer cancel()
	if _, err := c.cli.Defragment(ctx, endpoint); err != nil {
		return fmt.Errorf("defragmenting the member at %s: %w", endpoint, err)
	}
	return nil
}
