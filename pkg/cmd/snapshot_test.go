package cmd

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/internal/etcdtest"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/snapshot"
)

func runRoot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	root := NewCmdRoot(streams)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestSnapshotStatusCommand(t *testing.T) {
	c := etcdtest.StartCluster(t, 1)
	if _, err := c.Client().Put(context.Background(), "a", "b"); err != nil {
		t.Fatal(err)
	}
	client, err := etcdcluster.New(etcdcluster.Config{Endpoints: c.Endpoints(), TLS: c.ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "s.db")
	info, err := snapshot.Save(context.Background(), snapshot.Member{Client: client, Endpoint: c.Members[0].ClientURL}, path, snapshot.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}

	out, err := runRoot(t, "snapshot", "status", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"revision:   " + itoa(info.Revision), "keys:       1", info.SHA256, "sha256 trailer and bolt integrity check"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	out, err = runRoot(t, "snapshot", "status", path, "-o", "json")
	var got snapshot.Info
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || got.SHA256 != info.SHA256 || got.Revision != info.Revision {
		t.Errorf("status -o json: %v\n%s", err, out)
	}

	raw, _ := os.ReadFile(path)
	cut := filepath.Join(dir, "cut.db")
	os.WriteFile(cut, raw[:len(raw)-100], 0o600)
	if _, err := runRoot(t, "snapshot", "status", cut); err == nil || !strings.Contains(err.Error(), "snapshot "+cut+" is truncated") {
		t.Errorf("truncated: %v", err)
	}
	if _, err := runRoot(t, "snapshot", "status", path, "-o", "yaml"); err == nil || !strings.Contains(err.Error(), "unknown output format") {
		t.Errorf("bad -o: %v", err)
	}
	if _, err := runRoot(t, "snapshot", "save", path+".part", "--local"); err == nil || !strings.Contains(err.Error(), "being written") {
		t.Errorf("save to a .part name: %v", err)
	}
	if _, err := runRoot(t, "backup", "run", "--reason", "No Good"); err == nil || !strings.Contains(err.Error(), "lowercase") {
		t.Errorf("bad reason: %v", err)
	}
	if _, err := runRoot(t, "backup", "schedule", "--every", "45s"); err == nil || !strings.Contains(err.Error(), "shortest interval is 1m") {
		t.Errorf("--every 45s: %v", err)
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
