package cmd

import (
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func TestRootFollowsPluginConvention(t *testing.T) {
	root := NewCmdRoot(genericiooptions.NewTestIOStreamsDiscard())
	if root.Name() != "kubectl-etcd" {
		t.Errorf("Name() = %q, want the binary name kubectl-etcd", root.Name())
	}
	if root.DisplayName() != "kubectl etcd" {
		t.Errorf("DisplayName() = %q, want %q", root.DisplayName(), "kubectl etcd")
	}
	for _, name := range []string{"kubeconfig", "context", "cluster", "user", "server", "request-timeout"} {
		if root.PersistentFlags().Lookup(name) == nil {
			t.Errorf("persistent flag --%s missing", name)
		}
	}
	if root.PersistentFlags().Lookup("namespace") != nil {
		t.Error("--namespace is registered, but etcd is always in kube-system and the flag would be ignored")
	}
}

func TestRootHelpUsesDisplayName(t *testing.T) {
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	root := NewCmdRoot(streams)
	root.SetArgs([]string{"version", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "kubectl etcd version [flags]") {
		t.Errorf("help does not show the kubectl plugin form:\n%s", out)
	}
}

func TestRootFlagErrorPointsAtHelp(t *testing.T) {
	root := NewCmdRoot(genericiooptions.NewTestIOStreamsDiscard())
	root.SetArgs([]string{"version", "--no-such-flag"})
	err := root.Execute()
	if err == nil {
		t.Fatal("unknown flag accepted")
	}
	if !strings.Contains(err.Error(), "unknown flag: --no-such-flag") || !strings.Contains(err.Error(), "kubectl etcd version --help") {
		t.Errorf("error = %q, want the flag error and a pointer to help", err)
	}
}

func TestRootCompletion(t *testing.T) {
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	root := NewCmdRoot(streams)
	root.SetArgs([]string{"completion", "bash"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	// The script must complete the binary by its real name.
	if !strings.Contains(out.String(), "complete -o default -F __start_kubectl-etcd kubectl-etcd") {
		t.Errorf("bash completion does not register kubectl-etcd:\n%.400s", out)
	}
}
