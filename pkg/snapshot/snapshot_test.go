package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/internal/etcdtest"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

// fixture is a real one-member etcd cluster with known contents.
type fixture struct {
	c        *etcdtest.Cluster
	client   *etcdcluster.Client
	revision int64 // after the last write
	keys     int   // live keys
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c := etcdtest.StartCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv := c.Client()
	for i := range 50 {
		if _, err := kv.Put(ctx, fmt.Sprintf("/registry/k%03d", i), strings.Repeat("v", 100)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if _, err := kv.Delete(ctx, fmt.Sprintf("/registry/k%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := kv.Put(ctx, "/registry/k010", "overwritten")
	if err != nil {
		t.Fatal(err)
	}
	client, err := etcdcluster.New(etcdcluster.Config{Endpoints: c.Endpoints(), TLS: c.ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return &fixture{c: c, client: client, revision: resp.Header.Revision, keys: 45}
}

func (f *fixture) source() Member {
	return Member{Client: f.client, Endpoint: f.c.Members[0].ClientURL}
}

func (f *fixture) save(t *testing.T, path string) *Info {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := Save(ctx, f.source(), path, SaveOptions{})
	if err != nil {
		t.Fatalf("Save: %v", err)
	}
	return info
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestSaveAndStatus(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "snap.db")
	info := f.save(t, path)

	if info.Revision != f.revision {
		t.Errorf("revision %d, want %d (the last write)", info.Revision, f.revision)
	}
	if info.TotalKeys != f.keys {
		t.Errorf("total keys %d, want %d", info.TotalKeys, f.keys)
	}
	if !info.IntegrityHash {
		t.Error("a streamed snapshot must carry etcd's sha256 trailer")
	}
	if want := sha256File(t, path); info.SHA256 != want {
		t.Errorf("sha256 %s, sha256 of the file %s", info.SHA256, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != fi.Size() || fi.Size()%512 != 32 {
		t.Errorf("size %d, file %d bytes (want pages + 32)", info.Size, fi.Size())
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600: a snapshot holds the cluster's Secrets", fi.Mode().Perm())
	}
	if info.Endpoint != f.c.Members[0].ClientURL || info.MemberID == "" || info.MemberID == "0" || info.ClusterID == "" || info.Hash == 0 {
		t.Errorf("provenance missing: %+v", info)
	}
	if left, _ := filepath.Glob(path + "*" + PartSuffix); len(left) != 0 {
		t.Errorf(".part left behind: %v", left)
	}

	st, err := Status(path)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.Revision != info.Revision || st.TotalKeys != info.TotalKeys || st.Hash != info.Hash || st.SHA256 != info.SHA256 || st.Size != info.Size || !st.IntegrityHash {
		t.Errorf("Status %+v differs from Save's %+v", st, info)
	}

	// A second snapshot of the same data has the same content hash.
	again := f.save(t, filepath.Join(dir, "again.db"))
	if again.Hash != info.Hash || again.Revision != info.Revision {
		t.Errorf("same data, different facts: %+v vs %+v", again, info)
	}
}

// TestSavePlantedPart: a NAME.part planted in a shared directory, here a
// symlink to a file the snapshot (every Secret of the cluster) must not
// reach, is neither followed nor reused: the snapshot goes to a new,
// exclusive part file, the victim and the link are untouched, and no part
// file is left.
func TestSavePlantedPart(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "snap.db")
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("not yours"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, path+PartSuffix); err != nil {
		t.Fatal(err)
	}
	if _, err := Save(context.Background(), f.source(), path, SaveOptions{}); err != nil {
		t.Fatalf("Save next to a planted .part: %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "not yours" {
		t.Errorf("the planted link was followed: the victim holds %d bytes", len(b))
	}
	if target, err := os.Readlink(path + PartSuffix); err != nil || target != victim {
		t.Errorf("the planted link was changed: %q, %v", target, err)
	}
	if _, err := Status(path); err != nil {
		t.Errorf("the snapshot: %v", err)
	}
	if left, _ := filepath.Glob(path + ".*" + PartSuffix); len(left) != 0 {
		t.Errorf("part files left: %v", left)
	}
}

func TestPartBase(t *testing.T) {
	for _, tc := range []struct {
		name, base string
		ok         bool
	}{
		{"etcd-x.db.123456.part", "etcd-x.db", true},
		{"etcd-x.db.part", "etcd-x.db", true}, // older versions' fixed name
		{"etcd-x.db.12a.part", "etcd-x.db.12a", true},
		{"etcd-x.db", "", false},
	} {
		if base, ok := PartBase(tc.name); base != tc.base || ok != tc.ok {
			t.Errorf("PartBase(%q) = %q, %v; want %q, %v", tc.name, base, ok, tc.base, tc.ok)
		}
	}
	f, err := CreatePart(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if base, ok := PartBase(filepath.Base(f.Name())); !ok || base != "s.db" || fi.Mode().Perm() != FileMode {
		t.Errorf("CreatePart made %s (mode %v): PartBase %q, %v", f.Name(), fi.Mode().Perm(), base, ok)
	}
}

func TestSaveRefusesToOverwrite(t *testing.T) {
	f := newFixture(t)
	path := filepath.Join(t.TempDir(), "snap.db")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err := Save(ctx, f.source(), path, SaveOptions{})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("want an error saying the file exists and how to replace it, got %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Fatalf("existing file changed: %q", b)
	}
	if left, _ := filepath.Glob(path + "*" + PartSuffix); len(left) != 0 {
		t.Errorf(".part left behind: %v", left)
	}
	info, err := Save(ctx, f.source(), path, SaveOptions{Force: true})
	if err != nil {
		t.Fatalf("Save --force: %v", err)
	}
	if info.Revision != f.revision {
		t.Errorf("revision %d after replace", info.Revision)
	}
	_, err = Save(ctx, f.source(), filepath.Join(t.TempDir(), "nope", "snap.db"), SaveOptions{})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing directory: %v", err)
	}
}

// corrupting flips one byte of the stream at offset.
type corrupting struct {
	Member
	offset int64
}

func (c corrupting) OpenSnapshot(ctx context.Context) (*etcdcluster.SnapshotStream, error) {
	s, err := c.Member.OpenSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	s.Reader = &flipReader{r: s.Reader, at: c.offset}
	return s, nil
}

type flipReader struct {
	r       io.Reader
	at, pos int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.at >= f.pos && f.at < f.pos+int64(n) {
		p[f.at-f.pos] ^= 0xff
	}
	f.pos += int64(n)
	return n, err
}

func TestSaveFailedVerificationLeavesNothing(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "snap.db")
	_, err := Save(context.Background(), corrupting{Member: f.source(), offset: 3 * 4096}, path, SaveOptions{})
	if err == nil {
		t.Fatal("a corrupted stream was saved")
	}
	if !errors.Is(err, ErrCorrupted) || !strings.Contains(err.Error(), "failed verification") || !strings.Contains(err.Error(), "nothing written to "+path) {
		t.Errorf("error does not say what happened: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("files left after a failed save: %v", entries)
	}
}

func TestSaveFromStoppedMember(t *testing.T) {
	f := newFixture(t)
	f.c.Members[0].Stop()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Save(ctx, f.source(), filepath.Join(dir, "snap.db"), SaveOptions{})
	if err == nil || !strings.Contains(err.Error(), f.c.Members[0].ClientURL) {
		t.Fatalf("want an error naming the endpoint, got %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files left: %v", entries)
	}
}

// damaged writes a copy of src changed by fn.
func damaged(t *testing.T, src string, fn func([]byte) []byte) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "damaged.db")
	if err := os.WriteFile(out, fn(append([]byte(nil), b...)), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStatusTruncatedAndCorrupted(t *testing.T) {
	f := newFixture(t)
	good := filepath.Join(t.TempDir(), "snap.db")
	info := f.save(t, good)
	size := int(info.Size)

	truncated := map[string]int{
		"to 100 bytes":                    100,
		"to half":                         size / 2,
		"by one byte":                     size - 1,
		"by part of the trailer":          size - 10,
		"by a page and the trailer":       size - 32 - 4096,
		"by a page, trailer kept in size": size - 4096,
	}
	for name, n := range truncated {
		t.Run("truncated "+name, func(t *testing.T) {
			p := damaged(t, good, func(b []byte) []byte { return b[:n] })
			_, err := Status(p)
			if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "is truncated") || !strings.Contains(err.Error(), p) {
				t.Errorf("want a truncated error naming the file, got %v", err)
			}
		})
	}

	corrupted := map[string]int{
		"a data page":  3*4096 + 100,
		"a meta page":  20,
		"the trailer":  size - 5,
		"the last one": size - 33,
	}
	for name, at := range corrupted {
		t.Run("corrupted "+name, func(t *testing.T) {
			p := damaged(t, good, func(b []byte) []byte { b[at] ^= 0x5a; return b })
			_, err := Status(p)
			if !errors.Is(err, ErrCorrupted) || !strings.Contains(err.Error(), "is corrupted") || !strings.Contains(err.Error(), p) {
				t.Errorf("want a corrupted error naming the file, got %v", err)
			}
		})
	}

	t.Run("bare database without trailer", func(t *testing.T) {
		// What is left after removing exactly the trailer is a whole bolt
		// database, like a copy of member/snap/db: readable, but not
		// verifiable end to end, and Status says so.
		p := damaged(t, good, func(b []byte) []byte { return b[:size-32] })
		st, err := Status(p)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if st.IntegrityHash || st.Revision != info.Revision || st.TotalKeys != info.TotalKeys || st.Hash != info.Hash {
			t.Errorf("bare db: %+v, snapshot: %+v", st, info)
		}
	})

	t.Run("not a snapshot", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "text")
		os.WriteFile(p, []byte(strings.Repeat("hello\n", 3000)), 0o600)
		_, err := Status(p)
		if err == nil || !(errors.Is(err, ErrCorrupted) || errors.Is(err, ErrTruncated)) {
			t.Errorf("want a clear error, got %v", err)
		}
	})

	t.Run("missing", func(t *testing.T) {
		_, err := Status(filepath.Join(t.TempDir(), "none.db"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("got %v", err)
		}
	})
}
