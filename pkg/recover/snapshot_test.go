package recover

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/internal/etcdtest"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/snapshot"
)

// latestValue reads the newest value of a key from a real etcd snapshot, and
// sees a deleted key as absent: what the same-cluster check relies on.
func TestLatestValueFromSnapshot(t *testing.T) {
	c := etcdtest.StartCluster(t, 1)
	cli := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, v := range []string{"CA one", "CA two"} {
		if _, err := cli.Put(ctx, ClusterCAKey, v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(ctx, "/gone", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, "/gone"); err != nil {
		t.Fatal(err)
	}
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "snap.db")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rc.Close()
	if _, err := snapshot.Status(file); err != nil {
		t.Fatalf("the snapshot does not verify: %v", err)
	}
	v, found, err := latestValue(file, ClusterCAKey)
	if err != nil || !found || string(v) != "CA two" {
		t.Errorf("latestValue = %q, %v, %v; want the newest value", v, found, err)
	}
	if _, found, err := latestValue(file, "/gone"); err != nil || found {
		t.Errorf("a deleted key: found %v, %v", found, err)
	}
	if _, found, err := latestValue(file, "/never"); err != nil || found {
		t.Errorf("a missing key: found %v, %v", found, err)
	}
}

// Relay carries bytes both ways and stop cuts open connections.
func TestRelay(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go io.Copy(c, c)
		}
	}()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := hostlocal.Relay(l, echo.Addr().String())
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("through the relay: %q, %v", buf, err)
	}
	stop()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(buf); err == nil {
		t.Error("connection still open after stop")
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Error("relay still listening after stop")
	}
}
