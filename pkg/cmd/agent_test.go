package cmd

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostpod"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/version"
)

// An agent of another build than the plugin's refuses its request before
// doing anything, and does not leave itself on the host.
func TestAgentRefusesAnotherBuild(t *testing.T) {
	root := t.TempDir()
	streams, in, _, _ := genericiooptions.NewTestIOStreams()
	in.WriteString(`{"verb": "exec", "args": {"argv": ["status", "--local"]}, "version": "v9.9.9", "commit": "0ther"}`)
	cmd := NewCmdRoot(streams)
	cmd.SetArgs([]string{"agent", "--host-root", root, "--node-name", "h1"})
	err := cmd.Execute()
	want := "this host pod runs kubectl-etcd " + version.Version + " (commit " + version.GitCommit + "), the plugin that sent the request is v9.9.9 (commit 0ther); nothing was done"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "ghcr.io/kubectl-etcd/kubectl-etcd:v9.9.9") {
		t.Fatalf("got %v, want %q", err, want)
	}
	if _, err := os.Stat(staticpod.NewHost(root).Path(hostpod.HostBinaryPath)); !os.IsNotExist(err) {
		t.Errorf("the refusing agent installed itself on the host: %v", err)
	}
}

// A tag-only --image is warned about on stderr; the default and a digest
// are not.
func TestWarnImage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		warn bool
	}{
		{nil, false},
		{[]string{"--image", "example.org/kubectl-etcd:v1"}, true},
		{[]string{"--image", "example.org/kubectl-etcd:v1@sha256:" + strings.Repeat("0", 64)}, false},
	} {
		streams, _, _, errOut := genericiooptions.NewTestIOStreams()
		o := &WorkstationOptions{}
		c := NewCmdRoot(streams)
		sub := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { o.warnImage(); return nil }}
		o.AddFlags(sub)
		c.AddCommand(sub)
		c.SetArgs(append([]string{"x"}, tc.args...))
		if err := c.Execute(); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(errOut.String(), "names a tag, not a digest"); got != tc.warn {
			t.Errorf("%v: warned %v, want %v (%q)", tc.args, got, tc.warn, errOut.String())
		}
	}
}
