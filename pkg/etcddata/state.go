// Package etcddata reads facts about an etcd data dir while its member is
// stopped, and moves data dirs aside instead of deleting them: kubectl-etcd
// never deletes etcd data, since a data dir that looks useless may be the
// last copy of a cluster.
package etcddata

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/storage/datadir"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// lockTimeout is how long Read waits for the database's file lock. etcd
// holds it exclusively for as long as it runs, so waiting longer only delays
// the answer "in use".
const lockTimeout = 500 * time.Millisecond

// State is what a stopped member's data dir says about it.
type State struct {
	// HasData is false for a missing or empty dir; every other field is
	// then zero.
	HasData bool
	// MemberID and ClusterID are the identity the member was created with,
	// from the WAL's metadata.
	MemberID, ClusterID uint64
	// RaftTerm and RaftCommit are the last raft hard state in the WAL.
	RaftTerm, RaftCommit uint64
	// ConsistentIndex is the last raft index applied to the database.
	ConsistentIndex uint64
	// Revision is the highest key-value revision in the database (or the
	// compaction point, if later: compaction may have dropped the newest
	// tombstones).
	Revision int64
	DBSize   int64 // bytes
}

// Read returns the state of the data dir of a stopped member. A missing or
// empty dir has no data (and is no error); a dir with something other than
// complete etcd data in it is an error, as is one a running etcd has open.
func Read(dataDir string) (*State, error) { return read(dataDir, true) }

// ReadQuick is Read without the WAL's raft state (RaftTerm and RaftCommit
// stay zero): the IDs come from the head of the newest WAL file (see
// ReadIdentity), the rest from the database. It is for deciding what to do
// with a member's data (keep it, or move it aside), on a host where reading
// a long-lived member's whole WAL would cost seconds.
func ReadQuick(dataDir string) (*State, error) { return read(dataDir, false) }

func read(dataDir string, fullWAL bool) (*State, error) {
	empty, err := IsEmpty(dataDir)
	if err != nil {
		return nil, err
	}
	if empty {
		return &State{}, nil
	}
	walDir, dbPath := datadir.ToWALDir(dataDir), datadir.ToBackendFileName(dataDir)
	hasWAL := wal.Exist(walDir)
	_, err = os.Stat(dbPath)
	hasDB := err == nil
	switch {
	case !hasWAL && !hasDB:
		return nil, fmt.Errorf("data dir %s is not empty but holds no etcd data (no WAL files in %s, no database %s)", dataDir, walDir, dbPath)
	case !hasWAL:
		return nil, fmt.Errorf("data dir %s is incomplete or damaged: it has a database but no WAL files in %s", dataDir, walDir)
	case !hasDB:
		return nil, fmt.Errorf("data dir %s is incomplete or damaged: it has a WAL but no database %s", dataDir, dbPath)
	}
	st := &State{HasData: true}
	// The database first: its lock tells whether an etcd is running, before
	// we read a WAL that etcd may be writing.
	if err := readDB(dataDir, dbPath, st); err != nil {
		return nil, err
	}
	if !fullWAL {
		if st.MemberID, st.ClusterID, err = ReadIdentity(dataDir); err != nil {
			return nil, err
		}
		return st, nil
	}
	if err := readWAL(dataDir, walDir, st); err != nil {
		return nil, err
	}
	return st, nil
}

// damaged turns a panic in etcd's or bbolt's decoding (they panic on some
// corrupt input, trusting their own files) into an error.
func damaged(what string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s is damaged: %v", what, r)
	}
}

func readDB(dataDir, dbPath string, st *State) (err error) {
	db, err := bolt.Open(dbPath, 0o400, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("data dir %s is in use by a running etcd (its database %s is locked); stop that member first", dataDir, dbPath)
	}
	if err != nil {
		return fmt.Errorf("data dir %s: opening database %s: %w", dataDir, dbPath, err)
	}
	defer db.Close()
	defer damaged(fmt.Sprintf("data dir %s: database %s", dataDir, dbPath), &err)
	err = db.View(func(tx *bolt.Tx) error {
		st.DBSize = tx.Size()
		meta := tx.Bucket(schema.Meta.Name())
		keys := tx.Bucket(schema.Key.Name())
		if meta == nil || keys == nil {
			return fmt.Errorf("it lacks etcd's %q or %q bucket", schema.Meta, schema.Key)
		}
		// etcd writes the consistent index only once it has applied an
		// entry; a missing one is 0, like etcd reads it.
		if v := meta.Get(schema.MetaConsistentIndexKeyName); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("consistent index is %d bytes, not 8", len(v))
			}
			st.ConsistentIndex = binary.BigEndian.Uint64(v)
		}
		// Keys in the key bucket are revisions, big-endian, so the last one
		// is the newest.
		if k, _ := keys.Cursor().Last(); k != nil {
			rev, err := revision(k)
			if err != nil {
				return fmt.Errorf("last key: %w", err)
			}
			st.Revision = rev
		}
		if v := meta.Get(schema.FinishedCompactKeyName); v != nil {
			rev, err := revision(v)
			if err != nil {
				return fmt.Errorf("compaction revision: %w", err)
			}
			st.Revision = max(st.Revision, rev)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("data dir %s: reading database %s: %w", dataDir, dbPath, err)
	}
	return nil
}

// revision decodes a revision key after checking its shape, since etcd's
// decoder panics on anything else.
func revision(b []byte) (int64, error) {
	if (len(b) != 17 && len(b) != 18) || b[8] != '_' {
		return 0, fmt.Errorf("%x is not a revision", b)
	}
	return mvcc.BytesToRev(b).Main, nil
}

func readWAL(dataDir, walDir string, st *State) (err error) {
	defer damaged(fmt.Sprintf("data dir %s: WAL %s", dataDir, walDir), &err)
	lg := zap.NewNop()
	// Start at the newest snapshot record the WAL still has, as etcd does
	// at boot: older WAL files may have been purged.
	snaps, err := wal.ValidSnapshotEntries(lg, walDir)
	if err != nil {
		return fmt.Errorf("data dir %s: reading WAL %s: %w", dataDir, walDir, err)
	}
	start := &walpb.Snapshot{}
	if len(snaps) > 0 {
		start = snaps[len(snaps)-1]
	}
	w, err := wal.OpenForRead(lg, walDir, start)
	if err != nil {
		return fmt.Errorf("data dir %s: opening WAL %s: %w", dataDir, walDir, err)
	}
	defer w.Close()
	metadata, hs, _, err := w.ReadAll()
	if errors.Is(err, wal.ErrSnapshotNotFound) {
		// Read mode stops quietly at undecodable bytes (taking them for a
		// torn final write), so etcd's own words here would mislead.
		return fmt.Errorf("data dir %s: WAL %s is damaged: its readable records stop before the snapshot at index %d: %w",
			dataDir, walDir, start.GetIndex(), err)
	}
	if err != nil {
		return fmt.Errorf("data dir %s: reading WAL %s: %w", dataDir, walDir, err)
	}
	var md etcdserverpb.Metadata
	if err := proto.Unmarshal(metadata, &md); err != nil {
		return fmt.Errorf("data dir %s: WAL %s metadata: %w", dataDir, walDir, err)
	}
	if md.GetNodeID() == 0 || md.GetClusterID() == 0 {
		return fmt.Errorf("data dir %s: WAL %s metadata names no member and cluster", dataDir, walDir)
	}
	st.MemberID, st.ClusterID = md.GetNodeID(), md.GetClusterID()
	st.RaftTerm, st.RaftCommit = hs.GetTerm(), hs.GetCommit()
	return nil
}

// ReadIdentity reads only the member and cluster IDs of a data dir, from
// the metadata record at the head of its newest WAL file. Reading the WAL
// takes no lock, so this works while an etcd runs on the dir: a member
// without a quorum since it started never answers a status request (etcd
// serves clients only once it has joined its cluster), yet its identity
// decides what a join does with it. Only the head of one file is read: a
// full read of a member's WAL (hundreds of MiB on a busy cluster) costs
// seconds of CPU on a host that is busy starting its control plane.
func ReadIdentity(dataDir string) (memberID, clusterID uint64, err error) {
	walDir := datadir.ToWALDir(dataDir)
	names, err := filepath.Glob(filepath.Join(walDir, "*.wal"))
	if err != nil || len(names) == 0 {
		return 0, 0, fmt.Errorf("data dir %s has no WAL files in %s", dataDir, walDir)
	}
	sort.Strings(names) // named by sequence and index, zero-padded
	name := names[len(names)-1]
	md, err := walMetadata(name)
	if err != nil {
		return 0, 0, fmt.Errorf("data dir %s: WAL file %s: %w", dataDir, name, err)
	}
	if md.GetNodeID() == 0 || md.GetClusterID() == 0 {
		return 0, 0, fmt.Errorf("data dir %s: WAL file %s: its metadata names no member and cluster", dataDir, name)
	}
	return md.GetNodeID(), md.GetClusterID(), nil
}

// walMetadata decodes the records at the head of a WAL file, as etcd's
// decoder frames them (a little-endian length whose top byte may carry the
// padding), until the metadata record, and checks its CRC, which chains
// from the CRC record that opens every file.
func walMetadata(name string) (*etcdserverpb.Metadata, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var crc uint32
	table := crc32.MakeTable(crc32.Castagnoli)
	for range 4 { // CRC, metadata, snapshot: the metadata comes second
		var lenField int64
		if err := binary.Read(r, binary.LittleEndian, &lenField); err != nil {
			return nil, fmt.Errorf("reading a record's length: %w", err)
		}
		recBytes := int64(uint64(lenField) & ^(uint64(0xff) << 56))
		padBytes := int64(0)
		if lenField < 0 {
			padBytes = int64((uint64(lenField) >> 56) & 0x7)
		}
		if recBytes <= 0 || recBytes > 1<<20 {
			return nil, fmt.Errorf("a record of %d bytes at the head of the file: not a WAL", recBytes)
		}
		buf := make([]byte, recBytes+padBytes)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("reading a record: %w", err)
		}
		var rec walpb.Record
		if err := proto.Unmarshal(buf[:recBytes], &rec); err != nil {
			return nil, fmt.Errorf("decoding a record: %w", err)
		}
		switch rec.GetType() {
		case wal.CrcType:
			crc = rec.GetCrc()
		case wal.MetadataType:
			if got := crc32.Update(crc, table, rec.GetData()); got != rec.GetCrc() {
				return nil, fmt.Errorf("metadata record CRC %08x, want %08x: damaged", got, rec.GetCrc())
			}
			var md etcdserverpb.Metadata
			if err := proto.Unmarshal(rec.GetData(), &md); err != nil {
				return nil, fmt.Errorf("decoding the metadata: %w", err)
			}
			return &md, nil
		}
	}
	return nil, errors.New("no metadata record at the head of the file")
}
