package etcdcluster

import (
	"context"
	"fmt"
	"io"
)

// SnapshotStream is a point-in-time snapshot of one member's database being
// streamed to us: the bytes of its bolt file followed by the sha256 of those
// bytes, which etcd appends so a copy can be checked end to end.
type SnapshotStream struct {
	io.Reader
	// Endpoint is the client URL of the member that takes the snapshot.
	Endpoint string
	// MemberID and ClusterID are what that member answered as.
	MemberID, ClusterID uint64
	// Revision is the member's revision just before the stream started.
	Revision int64
	// Version is the storage version etcd reports for the snapshot
	// (empty before etcd 3.6).
	Version string
	// DBSize is the member's database file size just before the stream
	// started: about what the stream holds (etcd sends the whole file).
	DBSize int64

	close func() error
}

// Close ends the stream and the connection it came through.
func (s *SnapshotStream) Close() error { return s.close() }

// Snapshot opens a snapshot stream from the member at endpoint, one of its
// client URLs. The connection is pinned to that member (a client of its own,
// not the balancer, which would pick any endpoint), since a snapshot is one
// member's copy and the caller chose which. It needs no quorum: a member
// serves its own database, which is what an operator wants when the cluster
// is in trouble. ctx bounds the whole stream, not only the opening; no
// CallTimeout applies, as a large database takes minutes to stream.
func (c *Client) Snapshot(ctx context.Context, endpoint string) (*SnapshotStream, error) {
	cli, err := newEtcdClient(c.cfg, []string{endpoint})
	if err != nil {
		return nil, err
	}
	// The snapshot stream's header carries no member identity; a status
	// call to the same member names it (and fails fast if it is down).
	sctx, cancel := context.WithTimeout(ctx, c.cfg.MemberTimeout)
	st, err := cli.Status(sctx, endpoint)
	cancel()
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("status of the member at %s before its snapshot: %w", endpoint, c.explainAt(endpoint, err))
	}
	resp, err := cli.SnapshotWithVersion(ctx)
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("opening a snapshot stream from %s: %w", endpoint, c.explainAt(endpoint, err))
	}
	s := &SnapshotStream{Reader: resp.Snapshot, Endpoint: endpoint, Version: resp.Version,
		MemberID: st.Header.GetMemberId(), ClusterID: st.Header.GetClusterId(), Revision: st.Header.GetRevision(), DBSize: st.DbSize}
	s.close = func() error {
		rerr := resp.Snapshot.Close()
		cerr := cli.Close()
		if rerr != nil {
			return rerr
		}
		return cerr
	}
	return s, nil
}

// explainAt is explain for one endpoint.
func (c *Client) explainAt(endpoint string, err error) error {
	one := &Client{cfg: c.cfg}
	one.cfg.Endpoints = []string{endpoint}
	return one.explain(err)
}
