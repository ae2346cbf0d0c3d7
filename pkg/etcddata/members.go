package etcddata

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.etcd.io/etcd/server/v3/storage/datadir"
	"go.etcd.io/etcd/server/v3/storage/schema"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
)

// Member is one member as a stopped member's database records it (the host
// API's type: recovery markers carry the members they cut off).
type Member = hostapi.Member

// Membership is what a stopped member's database says about the cluster's
// membership as of the last entry it applied.
type Membership struct {
	Members []Member `json:"members"`
	// Removed are the IDs this member knows were removed: etcd refuses their
	// peer traffic for good (HTTP 410 Gone), so they can never come back.
	Removed []uint64 `json:"removed,omitempty"`
}

// ReadMembership reads the membership from the database of a stopped
// member's data dir (etcd's "members" and "members_removed" buckets). The
// member list of a running member is better asked over the network.
func ReadMembership(dataDir string) (*Membership, error) {
	return ReadMembershipDB(datadir.ToBackendFileName(dataDir))
}

// ReadMembershipDB is ReadMembership for an etcd database file (a member's
// db, or a snapshot: etcd snapshots carry the membership of their time).
func ReadMembershipDB(dbPath string) (_ *Membership, err error) {
	dataDir := dbPath
	db, err := bolt.Open(dbPath, 0o400, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("data dir %s is in use by a running etcd (its database %s is locked); stop that member first", dataDir, dbPath)
	}
	if err != nil {
		return nil, fmt.Errorf("data dir %s: opening database %s: %w", dataDir, dbPath, err)
	}
	defer db.Close()
	defer damaged(fmt.Sprintf("data dir %s: database %s", dataDir, dbPath), &err)
	out := &Membership{}
	err = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(schema.Members.Name()); b != nil {
			if err := b.ForEach(func(k, v []byte) error {
				var m membership.Member
				if err := json.Unmarshal(v, &m); err != nil {
					return fmt.Errorf("member %s: %w", k, err)
				}
				out.Members = append(out.Members, Member{ID: uint64(m.ID), Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
				return nil
			}); err != nil {
				return err
			}
		}
		if b := tx.Bucket(schema.MembersRemoved.Name()); b != nil {
			return b.ForEach(func(k, _ []byte) error {
				id, err := strconv.ParseUint(string(k), 16, 64)
				if err != nil {
					return fmt.Errorf("removed member key %q: %w", k, err)
				}
				out.Removed = append(out.Removed, id)
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("data dir %s: reading the membership from %s: %w", dataDir, dbPath, err)
	}
	slices.SortFunc(out.Members, func(a, b Member) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	slices.Sort(out.Removed)
	return out, nil
}
