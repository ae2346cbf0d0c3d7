package workstation

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/snapshot"
)

// SnapshotSource is the member a workstation snapshot streams from.
type SnapshotSource struct {
	Member   string `json:"member"`
	Node     string `json:"node,omitempty"`
	Endpoint string `json:"endpoint"`
	Revision int64  `json:"revision"`
	Leader   bool   `json:"leader"`
}

// Snapshot streams a snapshot of the most advanced healthy member (see
// PickSnapshotSource) through the apiserver to path on this machine, written
// and verified by pkg/snapshot. With dryRun it only says which member.
func (s *Session) Snapshot(ctx context.Context, path string, opts snapshot.SaveOptions, dryRun bool) (*SnapshotSource, *snapshot.Info, error) {
	o, err := s.observe(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer o.client.Close()
	src, err := PickSnapshotSource(o.statuses, o.nodes)
	if err != nil {
		return nil, nil, err
	}
	if dryRun {
		return src, nil, nil
	}
	fmt.Fprintf(s.Out, "streaming a snapshot from member %s on %s (%s, revision %d) to %s\n", src.Member, nodeOrNone(src.Node), src.Endpoint, src.Revision, path)
	info, err := snapshot.Save(ctx, snapshot.Member{Client: o.client, Endpoint: src.Endpoint}, path, opts)
	if err != nil {
		return src, nil, err
	}
	info.Member, info.Node = src.Member, src.Node
	return src, info, nil
}

// PickSnapshotSource chooses the healthy member with the highest revision
// (its copy holds every write the others have), the leader on a tie, then the
// lowest raft-index lag and name for a stable choice. Learners qualify only
// when no voter does: they may lag.
func PickSnapshotSource(statuses []etcdcluster.Status, nodes []Node) (*SnapshotSource, error) {
	var cands []etcdcluster.Status
	var down []string
	for _, st := range statuses {
		if st.Healthy && st.Err == nil && st.Endpoint != "" {
			cands = append(cands, st)
		} else {
			down = append(down, fmt.Sprintf("%s: %s", st.Member, st.Reason()))
		}
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("no healthy etcd member to take a snapshot from (%s)", strings.Join(down, "; "))
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.Member.IsLearner != b.Member.IsLearner {
			return !a.Member.IsLearner
		}
		if a.Revision != b.Revision {
			return a.Revision > b.Revision
		}
		if a.IsLeader != b.IsLeader {
			return a.IsLeader
		}
		if a.RaftAppliedIndex != b.RaftAppliedIndex {
			return a.RaftAppliedIndex > b.RaftAppliedIndex
		}
		return a.Member.String() < b.Member.String()
	})
	best := cands[0]
	src := &SnapshotSource{Member: best.Member.String(), Endpoint: best.Endpoint, Revision: best.Revision, Leader: best.IsLeader}
	if n, ok := NodeOf(best.Member, nodes); ok {
		src.Node = n.Name
	}
	return src, nil
}

func nodeOrNone(s string) string {
	if s == "" {
		return "no control-plane node"
	}
	return s
}
