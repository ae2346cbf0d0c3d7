package cmd

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"
)

// TestWarningsAndVerbosity: the apiserver's warnings reach stderr (once
// each), and -v 6 shows client-go's request log there; without -v nothing
// of klog shows.
func TestWarningsAndVerbosity(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Warning", `299 - "kubectl-etcd test warning"`)
		if r.URL.Path == "/version" {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"major":"1","minor":"37","gitVersion":"v1.37.2"}`)
			return
		}
		http.Error(w, "not here", http.StatusInternalServerError)
	}))
	defer srv.Close()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kubeconfig, []byte(fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: %s\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n", srv.URL)), 0o600)
	t.Cleanup(func() {
		var fs flag.FlagSet
		klog.InitFlags(&fs)
		fs.Set("v", "0")
		klog.SetOutput(io.Discard)
	})

	run := func(args ...string) string {
		streams, _, _, errOut := genericiooptions.NewTestIOStreams()
		root := NewCmdRoot(streams)
		root.SetArgs(append(args, "--kubeconfig", kubeconfig))
		if err := root.Execute(); err == nil {
			t.Fatalf("%v: status against a server that lists nothing succeeded", args)
		}
		klog.Flush()
		return errOut.String()
	}
	quiet := run("status")
	if strings.Count(quiet, "Warning: kubectl-etcd test warning") != 1 {
		t.Errorf("stderr without -v: want the apiserver's warning once:\n%s", quiet)
	}
	if strings.Contains(quiet, `verb="GET"`) {
		t.Errorf("stderr without -v shows klog lines:\n%s", quiet)
	}
	verbose := run("status", "-v", "6")
	if !strings.Contains(verbose, `"Response" verb="GET" url="`+srv.URL+`/version`) {
		t.Errorf("stderr with -v 6 lacks the request log:\n%s", verbose)
	}
}
