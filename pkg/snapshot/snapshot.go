// Package snapshot writes and checks etcd snapshot files: a point-in-time
// copy of one member's database streamed over etcd's maintenance API,
// written so that a file at the final name is always whole and verified, and
// read back with etcd's own code (etcdutl's snapshot status: bolt's integrity
// check, revision, key count, content hash) plus the sha256 trailer etcd
// appends to every snapshot it streams (the check etcdutl's restore makes).
//
// A snapshot holds every Kubernetes Secret in the cluster: files are written
// 0600.
package snapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	etcdutl "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/atomicfile"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/diskspace"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

// FileMode of every snapshot (and sidecar) written: a snapshot holds the
// cluster's Secrets.
const FileMode = 0o600

// PartSuffix ends a snapshot's name while it is written (NAME.<random>.part,
// see CreatePart); only a verified file gets the final name.
const PartSuffix = ".part"

// CreatePart creates the file a snapshot bound for path is written to
// first, in path's directory (so the final rename stays on one
// filesystem): with a random infix, exclusively (O_EXCL) and 0600, as
// os.CreateTemp does. A shared directory may hold a planted NAME.part,
// or a symlink by that name pointing where the cluster's Secrets must
// not go: a fixed name opened with O_CREATE|O_TRUNC would follow it.
func CreatePart(path string) (*os.File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, base+".*"+PartSuffix)
	if err != nil {
		return nil, fmt.Errorf("creating the file to write %s into: %w", path, err)
	}
	return f, nil
}

// PartBase is the name a part file (as CreatePart names it, or a plain
// NAME.part of older versions) is bound for, and whether name is one.
func PartBase(name string) (string, bool) {
	rest, ok := strings.CutSuffix(name, PartSuffix)
	if !ok {
		return "", false
	}
	if i := strings.LastIndexByte(rest, '.'); i > 0 && isDigits(rest[i+1:]) {
		return rest[:i], true
	}
	return rest, true
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// trailerSize is the sha256 etcd appends to a streamed snapshot.
const trailerSize = sha256.Size

// Errors a caller (and a test) can tell apart with errors.Is. Their text
// says what is wrong with the file; the wrapping error names it.
var (
	// ErrTruncated: the file is shorter than the database it describes.
	ErrTruncated = errors.New("truncated")
	// ErrCorrupted: the bytes are not what etcd wrote (hash mismatch or
	// a database that fails bolt's integrity check).
	ErrCorrupted = errors.New("corrupted")
	// ErrExists: Save would overwrite an existing file without Force.
	ErrExists = errors.New("file exists")
)

// Info is what a snapshot file holds and where it came from.
type Info struct {
	// Path is the file (as given).
	Path string `json:"path"`
	// Size in bytes of the whole file, the trailer included.
	Size int64 `json:"size"`
	// SHA256 of the whole file, as `sha256sum FILE` prints it.
	SHA256 string `json:"sha256"`
	// Revision is the newest revision in the snapshot.
	Revision int64 `json:"revision"`
	// TotalKeys counts the live keys at Revision.
	TotalKeys int `json:"totalKeys"`
	// Hash is etcdutl's CRC-32C over the database's buckets, keys and
	// values (`etcdutl snapshot status` prints it): equal hashes, same data.
	Hash uint32 `json:"hash"`
	// Version is the storage version recorded in the snapshot (etcd >= 3.6).
	Version string `json:"version,omitempty"`
	// IntegrityHash says the file ends with etcd's sha256 trailer and it
	// matched. False for a bare database file (e.g. a copy of member/snap/db),
	// which etcd's restore accepts only with --skip-hash-check.
	IntegrityHash bool `json:"integrityHash"`

	// Where it came from; set by Save (and kept in backup sidecars).
	Endpoint  string    `json:"endpoint,omitempty"`
	MemberID  string    `json:"memberID,omitempty"`
	ClusterID string    `json:"clusterID,omitempty"`
	Member    string    `json:"member,omitempty"` // member name, when the caller knows it
	Node      string    `json:"node,omitempty"`   // host of the member, when the caller knows it
	TakenAt   time.Time `json:"takenAt,omitzero"`
	// Duration of the stream, write and verification.
	Duration string `json:"duration,omitempty"`
}

// Source is the member a snapshot is streamed from.
type Source interface {
	OpenSnapshot(ctx context.Context) (*etcdcluster.SnapshotStream, error)
}

// Member is a Source: the member at Endpoint (one of its client URLs),
// reached with Client's credentials and dialer.
type Member struct {
	Client   *etcdcluster.Client
	Endpoint string
}

// OpenSnapshot implements Source.
func (m Member) OpenSnapshot(ctx context.Context) (*etcdcluster.SnapshotStream, error) {
	return m.Client.Snapshot(ctx, m.Endpoint)
}

// SaveOptions tune Save.
type SaveOptions struct {
	// Force replaces an existing file at path (atomically, once the new one
	// is verified). Without it an existing file is an error and untouched.
	Force bool
	// Now is the clock (tests set it); default time.Now.
	Now func() time.Time
}

// Save streams a snapshot from src to a new part file next to path (see
// CreatePart), fsyncs it, verifies it
// (the sha256 trailer, then etcdutl's status: bolt's integrity check,
// revision, keys), renames it to path and fsyncs the directory, so a file at
// path is always a whole, verified snapshot, also after a crash or power cut.
// On any failure nothing is left at path (an existing file there is
// untouched) and the .part file is removed: a snapshot that failed is of no
// use, and a leftover would only fill the disk.
func Save(ctx context.Context, src Source, path string, opts SaveOptions) (*Info, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if err := checkTarget(path, opts.Force); err != nil {
		return nil, err
	}
	start := now()
	stream, err := src.OpenSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	defer stream.Close()

	// Refused before a byte is written: a snapshot that fills the disk
	// half-way fails late, and may fill the disk etcd itself writes to.
	if err := diskspace.Check(filepath.Dir(path), stream.DBSize, "the snapshot of "+stream.Endpoint); err != nil {
		return nil, err
	}
	f, err := CreatePart(path)
	if err != nil {
		return nil, err
	}
	part := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(part)
		}
	}()
	n, err := io.Copy(f, stream)
	if err != nil {
		return nil, fmt.Errorf("streaming the snapshot from %s to %s (after %d bytes): %w", stream.Endpoint, part, n, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("syncing %s: %w", part, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("closing %s: %w", part, err)
	}
	info, err := Status(part)
	if err != nil {
		return nil, fmt.Errorf("the snapshot streamed from %s failed verification (removed; nothing written to %s): %w", stream.Endpoint, path, err)
	}
	if !info.IntegrityHash {
		return nil, fmt.Errorf("the snapshot streamed from %s has no sha256 trailer (removed; nothing written to %s): not what etcd's snapshot API sends", stream.Endpoint, path)
	}
	// Checked again just before the rename: the file may have appeared
	// while the snapshot streamed, and without Force it must be kept.
	if err := checkTarget(path, opts.Force); err != nil {
		return nil, err
	}
	if err := os.Rename(part, path); err != nil {
		return nil, fmt.Errorf("renaming %s to %s: %w", part, path, err)
	}
	ok = true
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("syncing the directory of %s: %w", path, err)
	}
	info.Path = path
	info.Endpoint = stream.Endpoint
	info.MemberID = fmt.Sprintf("%x", stream.MemberID)
	info.ClusterID = fmt.Sprintf("%x", stream.ClusterID)
	if info.Version == "" {
		info.Version = stream.Version
	}
	info.TakenAt = start.UTC()
	info.Duration = now().Sub(start).Round(time.Millisecond).String()
	return info, nil
}

// checkTarget refuses to overwrite without force, and anything that is not
// a regular file even with it.
func checkTarget(path string, force bool) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("checking %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s exists and is not a regular file; choose another name", path)
	case !force:
		return fmt.Errorf("%s: %w (use --force to replace it once the new snapshot is verified)", path, ErrExists)
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("directory %s does not exist", dir)
	}
	return nil
}

// Status reads and verifies a snapshot file: the sha256 trailer when there
// is one, that the file holds every page the database claims (truncation),
// then etcdutl's status (bolt's integrity check, revision, keys, hash). A
// truncated file is an error wrapping ErrTruncated, damaged bytes one
// wrapping ErrCorrupted; either names the file and what is wrong.
func Status(path string) (*Info, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("snapshot %s is not a regular file", path)
	}
	info := &Info{Path: path, Size: fi.Size()}
	whole, trailerOK, hasTrailer, err := hashFile(path, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", path, err)
	}
	info.SHA256 = whole
	dataSize := fi.Size()
	if hasTrailer {
		dataSize -= trailerSize
	}

	// bolt's meta page says how big the database is; a shorter file was cut.
	pageSize, dbSize, openErr := boltSize(path)
	switch {
	case openErr != nil && errors.Is(openErr, errLocked):
		return nil, fmt.Errorf("snapshot %s: %w", path, openErr)
	case openErr != nil && fi.Size() < 2*4096:
		return nil, fmt.Errorf("snapshot %s is %w: %d bytes is less than the two meta pages every etcd database starts with", path, ErrTruncated, fi.Size())
	case openErr != nil && hasTrailer && !trailerOK:
		return nil, fmt.Errorf("snapshot %s is %w: its bytes do not match the sha256 etcd appended when it was taken, and the database cannot be opened (%v)", path, ErrCorrupted, openErr)
	case openErr != nil:
		return nil, fmt.Errorf("snapshot %s is %w or not an etcd snapshot: the database cannot be opened: %v", path, ErrCorrupted, openErr)
	case dbSize > dataSize:
		return nil, fmt.Errorf("snapshot %s is %w: the database needs %d bytes but the file holds %d (it was cut short while written or copied)", path, ErrTruncated, dbSize, dataSize)
	case hasTrailer && !trailerOK:
		return nil, fmt.Errorf("snapshot %s is %w: its bytes do not match the sha256 etcd appended when it was taken", path, ErrCorrupted)
	case !hasTrailer && dataSize%int64(pageSize) != 0:
		// Neither pages only (a bare database) nor pages plus a trailer:
		// the end of the file, trailer included, is missing.
		return nil, fmt.Errorf("snapshot %s is %w: %d bytes are whole database pages (%d bytes each) plus %d, not a 32-byte sha256 trailer: its end is missing", path, ErrTruncated, fi.Size(), pageSize, dataSize%int64(pageSize))
	}
	info.IntegrityHash = hasTrailer

	st, err := etcdutlStatus(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s is %w: %v", path, ErrCorrupted, err)
	}
	info.Revision, info.TotalKeys, info.Hash, info.Version = st.Revision, st.TotalKey, st.Hash, st.Version
	return info, nil
}

// hashFile returns the sha256 of the whole file and, when the file is sized
// like an etcd snapshot (pages plus a sha256: etcd's own test, size%512 ==
// 32), whether the trailer matches the bytes before it.
func hashFile(path string, size int64) (whole string, trailerOK, hasTrailer bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, false, err
	}
	defer f.Close()
	hasTrailer = size >= trailerSize && size%512 == trailerSize
	all, data := sha256.New(), sha256.New()
	if hasTrailer {
		if _, err := io.Copy(io.MultiWriter(all, data), io.LimitReader(f, size-trailerSize)); err != nil {
			return "", false, false, err
		}
		trailer := make([]byte, trailerSize)
		if _, err := io.ReadFull(f, trailer); err != nil {
			return "", false, false, err
		}
		all.Write(trailer)
		trailerOK = bytes.Equal(trailer, data.Sum(nil))
	} else if _, err := io.Copy(all, f); err != nil {
		return "", false, false, err
	}
	return hex.EncodeToString(all.Sum(nil)), trailerOK, hasTrailer, nil
}

var errLocked = errors.New("the file is locked by another process (a running etcd's own database?): copy it or take a snapshot instead")

// boltSize opens the database read-only and returns its page size and the
// size its meta page records (pages in use times page size).
func boltSize(path string) (pageSize int, size int64, err error) {
	err = guard(func() error {
		db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			if errors.Is(err, bolt.ErrTimeout) {
				return errLocked
			}
			return err
		}
		defer db.Close()
		pageSize = db.Info().PageSize
		return db.View(func(tx *bolt.Tx) error {
			size = tx.Size()
			return nil
		})
	})
	return pageSize, size, err
}

func etcdutlStatus(path string) (st etcdutl.Status, err error) {
	err = guard(func() error {
		var err error
		st, err = etcdutl.NewV3(zap.NewNop()).Status(path)
		return err
	})
	return st, err
}

// guard runs f, turning a panic or a memory fault (bolt reads the file
// through mmap; damaged pages can send it past the end) into an error.
func guard(f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading the database failed: %v", r)
		}
	}()
	return f()
}
