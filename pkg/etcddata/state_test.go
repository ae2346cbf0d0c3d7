package etcddata_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/internal/etcdtest"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcddata"
	"go.etcd.io/etcd/server/v3/storage/datadir"
)

// One real member serves all the data-dir cases: starting etcd is the slow
// part, and every case below only needs its data dir, running or stopped.
func TestReadRealDataDir(t *testing.T) {
	// A tiny snapshot count makes etcd record snapshots in the WAL, so Read
	// must start at the newest one, as it must on any long-lived member.
	c := etcdtest.StartCluster(t, 1, "--snapshot-count=5")
	m := c.Members[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli := c.Client()
	var lastRev int64
	for i := range 20 {
		resp, err := cli.Put(ctx, fmt.Sprintf("/registry/k%02d", i), strings.Repeat("v", 100))
		if err != nil {
			t.Fatalf("put: %v", err)
		}
		lastRev = resp.Header.Revision
	}
	if _, err := cli.Delete(ctx, "/registry/k00"); err != nil {
		t.Fatal(err)
	}
	status, err := cli.Status(ctx, m.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	lastRev = max(lastRev, status.Header.Revision)

	t.Run("running member is in use", func(t *testing.T) {
		_, err := etcddata.Read(m.DataDir)
		if err == nil || !strings.Contains(err.Error(), "is in use by a running etcd") || !strings.Contains(err.Error(), m.DataDir) {
			t.Fatalf("Read of a running member's dir = %v, want an in-use error naming the dir", err)
		}
	})

	t.Run("identity of a running member", func(t *testing.T) {
		member, cluster, err := etcddata.ReadIdentity(m.DataDir)
		if err != nil {
			t.Fatalf("ReadIdentity of a running member's dir: %v", err)
		}
		if member != status.Header.MemberId || cluster != status.Header.ClusterId {
			t.Errorf("ReadIdentity = %x/%x, the running member reported %x/%x", member, cluster, status.Header.MemberId, status.Header.ClusterId)
		}
	})
	t.Run("identity without a WAL", func(t *testing.T) {
		dir := t.TempDir()
		if _, _, err := etcddata.ReadIdentity(dir); err == nil || !strings.Contains(err.Error(), "no WAL files") || !strings.Contains(err.Error(), dir) {
			t.Fatalf("ReadIdentity of an empty dir = %v, want a no-WAL error naming the dir", err)
		}
	})

	m.Stop()
	if snaps, _ := filepath.Glob(filepath.Join(datadir.ToSnapDir(m.DataDir), "*.snap")); len(snaps) == 0 {
		t.Errorf("etcd wrote no snapshot; the test does not cover reading a WAL from a snapshot")
	}
	st, err := etcddata.Read(m.DataDir)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	t.Logf("state: %+v", st)
	if !st.HasData {
		t.Error("HasData = false")
	}
	if st.MemberID != status.Header.MemberId || st.ClusterID != status.Header.ClusterId {
		t.Errorf("member/cluster = %x/%x, the running member reported %x/%x", st.MemberID, st.ClusterID, status.Header.MemberId, status.Header.ClusterId)
	}
	if st.Revision < lastRev {
		t.Errorf("Revision = %d, want at least the last write's %d", st.Revision, lastRev)
	}
	if st.RaftTerm == 0 || st.RaftCommit == 0 || st.ConsistentIndex == 0 || st.DBSize == 0 {
		t.Errorf("state %+v has zero raft term, commit, consistent index or db size", st)
	}

	t.Run("quick read", func(t *testing.T) {
		q, err := etcddata.ReadQuick(m.DataDir)
		if err != nil {
			t.Fatalf("ReadQuick: %v", err)
		}
		want := *st
		want.RaftTerm, want.RaftCommit = 0, 0 // not read
		if *q != want {
			t.Errorf("ReadQuick = %+v, want %+v", *q, want)
		}
	})
	t.Run("corrupt database", func(t *testing.T) {
		dir := copyDir(t, m.DataDir)
		if err := os.Truncate(datadir.ToBackendFileName(dir), 1000); err != nil {
			t.Fatal(err)
		}
		_, err := etcddata.Read(dir)
		if err == nil || !strings.Contains(err.Error(), "database") || !strings.Contains(err.Error(), dir) {
			t.Fatalf("Read of a truncated database = %v, want an error about the database naming the dir", err)
		}
		t.Log(err)
	})
	t.Run("corrupt WAL", func(t *testing.T) {
		dir := copyDir(t, m.DataDir)
		walDir := datadir.ToWALDir(dir)
		names, _ := filepath.Glob(filepath.Join(walDir, "*.wal"))
		if len(names) == 0 {
			t.Fatalf("no WAL files in %s", walDir)
		}
		// Garbage where the records start, same size so only content differs.
		f, err := os.OpenFile(names[0], os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte(strings.Repeat("\xa5", 4096)), 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
		_, err = etcddata.Read(dir)
		if err == nil || !strings.Contains(err.Error(), "WAL") || !strings.Contains(err.Error(), dir) {
			t.Fatalf("Read of a garbled WAL = %v, want an error about the WAL naming the dir", err)
		}
		t.Log(err)
		if len(names) == 1 {
			_, _, err := etcddata.ReadIdentity(dir)
			if err == nil || !strings.Contains(err.Error(), "WAL file") || !strings.Contains(err.Error(), dir) {
				t.Fatalf("ReadIdentity of a garbled WAL = %v, want an error about the WAL file naming the dir", err)
			}
			t.Log(err)
		}
	})
	t.Run("identity with a damaged metadata record", func(t *testing.T) {
		dir := copyDir(t, m.DataDir)
		names, _ := filepath.Glob(filepath.Join(datadir.ToWALDir(dir), "*.wal"))
		last := names[len(names)-1]
		raw, err := os.ReadFile(last)
		if err != nil {
			t.Fatal(err)
		}
		// Byte 40 lies in the metadata record's data: the CRC record
		// before it takes 16 bytes, the metadata record's frame and
		// header 8 and about 10 more.
		raw[40] ^= 0xff
		if err := os.WriteFile(last, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := etcddata.ReadIdentity(dir); err == nil {
			t.Fatal("ReadIdentity of a WAL with a flipped metadata byte succeeded; want a CRC or decode error")
		} else {
			t.Log(err)
		}
	})
	t.Run("database without WAL", func(t *testing.T) {
		dir := copyDir(t, m.DataDir)
		if err := os.RemoveAll(datadir.ToWALDir(dir)); err != nil {
			t.Fatal(err)
		}
		if _, err := etcddata.Read(dir); err == nil || !strings.Contains(err.Error(), "no WAL") {
			t.Fatalf("Read without WAL = %v, want an incomplete-data error", err)
		}
	})

	t.Run("move aside keeps the data", func(t *testing.T) {
		moved, err := etcddata.MoveAside(m.DataDir, "test", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		if want := m.DataDir + ".test-20260102T030405Z"; moved != want {
			t.Errorf("moved to %s, want %s", moved, want)
		}
		if _, err := os.Stat(m.DataDir); !os.IsNotExist(err) {
			t.Errorf("original dir still there (stat: %v)", err)
		}
		again, err := etcddata.Read(moved)
		if err != nil {
			t.Fatalf("Read of the moved dir: %v", err)
		}
		if *again != *st {
			t.Errorf("moved dir reads %+v, before the move %+v", again, st)
		}
		if st, err := etcddata.Read(m.DataDir); err != nil || st.HasData {
			t.Errorf("Read of the now missing dir = %+v, %v; want no data, no error", st, err)
		}
	})
}

func TestReadWithoutData(t *testing.T) {
	tmp := t.TempDir()
	for _, dir := range []string{filepath.Join(tmp, "missing"), tmp} {
		st, err := etcddata.Read(dir)
		if err != nil || st.HasData {
			t.Errorf("Read(%s) = %+v, %v; want no data and no error", dir, st, err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := etcddata.Read(tmp); err == nil || !strings.Contains(err.Error(), "holds no etcd data") {
		t.Errorf("Read of a dir with a stray file = %v, want a no-etcd-data error", err)
	}
	if _, err := etcddata.Read(filepath.Join(tmp, "notes.txt")); err == nil {
		t.Error("Read of a regular file succeeded")
	}
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy.etcd")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o600)
	})
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
	return dst
}
