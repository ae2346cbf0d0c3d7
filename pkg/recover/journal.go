package recover

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcddata"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// journal records how far a recovery (or restore) got, on the host, so that
// a rerun after a crash carries on instead of starting over: above all, it
// must never run force-new-cluster again over data the recovered member has
// already served, nor take a second "before" copy of a half-recovered dir.
type journal struct {
	Verb      string            `json:"verb"` // recover | restore
	Started   time.Time         `json:"started"`
	Node      string            `json:"node"`
	MemberID  uint64            `json:"memberID,omitempty"`
	ClusterID uint64            `json:"clusterID,omitempty"`
	Old       []etcddata.Member `json:"oldMembers,omitempty"`
	Index     uint64            `json:"raftIndexBefore,omitempty"`
	Revision  int64             `json:"revisionBefore,omitempty"`
	Here      bool              `json:"here,omitempty"`
	Snapshot  string            `json:"snapshot,omitempty"` // restore: the file
	// Steps done, by name.
	Copy          string    `json:"copy,omitempty"`     // the copy (recover) or moved-aside dir (restore)
	Restored      bool      `json:"restored,omitempty"` // restore: the fresh data dir is in place
	Quarantined   bool      `json:"quarantined,omitempty"`
	NormalWritten bool      `json:"normalManifestWritten,omitempty"`
	Done          bool      `json:"done,omitempty"`
	Finished      time.Time `json:"finished,omitempty"`
}

func journalPath(h *staticpod.Host) string { return filepath.Join(h.StateDir(), "recovery.json") }

// loadJournal returns the journal of an unfinished recovery, or nil.
func loadJournal(h *staticpod.Host) (*journal, error) {
	raw, err := os.ReadFile(h.Path(journalPath(h)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the recovery journal %s: %w", journalPath(h), err)
	}
	j := &journal{}
	if err := json.Unmarshal(raw, j); err != nil {
		return nil, fmt.Errorf("the recovery journal %s is damaged (%v): look at it, move it away, and rerun", journalPath(h), err)
	}
	return j, nil
}

// save writes the journal atomically (temp file, fsync, rename).
func (j *journal) save(h *staticpod.Host) error {
	raw, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := h.WriteFile(journalPath(h), raw, 0o600); err != nil {
		return fmt.Errorf("writing the recovery journal: %w", err)
	}
	return nil
}

// retire keeps a finished journal under a dated name, so a later recovery
// starts fresh and the history stays on the host.
func retireJournal(h *staticpod.Host, j *journal) error {
	p := h.Path(journalPath(h))
	to := fmt.Sprintf("%s.%s-%s", p, j.Verb, j.Finished.UTC().Format("20060102T150405Z"))
	if err := os.Rename(p, to); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keeping the finished recovery journal: %w", err)
	}
	return nil
}
