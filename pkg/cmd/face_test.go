package cmd

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func TestChooseFace(t *testing.T) {
	const (
		host = hostLocalFace
		ws   = workstationFace
	)
	for _, c := range []struct {
		verb   string
		local  bool
		node   string
		onHost bool // what the control-plane host check would say
		want   face
		err    string
	}{
		// --local is the only switch; anywhere else they go through the apiserver.
		{verb: verbStatus, want: ws},
		{verb: verbStatus, onHost: true, want: ws},
		{verb: verbStatus, local: true, want: host},
		{verb: verbSnapshotSave, onHost: true, want: ws},
		{verb: verbSnapshotSave, local: true, want: host},
		{verb: verbBackupList, onHost: true, want: ws},
		{verb: verbBackupList, local: true, want: host},

		// recover: host-local on a control-plane host, as the runbooks run it.
		{verb: verbRecover, onHost: true, want: host},
		{verb: verbRecover, want: ws},
		{verb: verbRecover, local: true, want: host},
		{verb: verbRecover, local: true, onHost: true, want: host},

		// restore: host-local unless --node.
		{verb: verbRestore, want: host},
		{verb: verbRestore, onHost: true, want: host},
		{verb: verbRestore, local: true, want: host},
		{verb: verbRestore, node: "cp-1", want: ws},
		{verb: verbRestore, node: "cp-1", onHost: true, want: ws},
		{verb: verbRestore, local: true, node: "cp-1", err: "restore --local restores on this host and --node restores on NODE from the workstation: give one, not both"},

		{verb: "scale", local: true, err: "scale has no host-local face"},
	} {
		asked := false
		got, err := chooseFace(c.verb, c.local, c.node, func() bool { asked = true; return c.onHost })
		name := c.verb
		if c.local {
			name += " --local"
		}
		if c.node != "" {
			name += " --node " + c.node
		}
		if c.onHost {
			name += " (on a control-plane host)"
		}
		switch {
		case c.err != "":
			if err == nil || err.Error() != c.err {
				t.Errorf("%s: error %v, want %q", name, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", name, err)
		case got != c.want:
			t.Errorf("%s: face %s, want %s", name, got, c.want)
		}
		// Only recover's default depends on where it runs; the filesystem is
		// not read otherwise.
		if wantAsk := c.verb == verbRecover && !c.local; asked != wantAsk {
			t.Errorf("%s: control-plane host check asked: %v, want %v", name, asked, wantAsk)
		}
	}
}

func TestIsControlPlaneHost(t *testing.T) {
	if isControlPlaneHost(t.TempDir()) {
		t.Error("an empty directory passes for a control-plane host")
	}
	if !isControlPlaneHost(hostRootWithManifests(t)) {
		t.Error("a root with /etc/kubernetes/manifests does not pass for a control-plane host")
	}
}

func TestEveryTwoFacedVerbTakesLocal(t *testing.T) {
	root := NewCmdRoot(genericiooptions.NewTestIOStreamsDiscard())
	for _, verb := range []string{verbStatus, verbSnapshotSave, verbBackupList, verbRecover, verbRestore} {
		c, _, err := root.Find(strings.Fields(verb))
		if err != nil {
			t.Fatal(err)
		}
		if c.Flags().Lookup("local") == nil {
			t.Errorf("%s has no --local", verb)
		}
		if !strings.Contains(c.Long, "--local") {
			t.Errorf("%s's help does not say what --local does", verb)
		}
	}
}

// TestFaceThroughCommands: the face chosen decides which flags are checked,
// seen from the command line.
func TestFaceThroughCommands(t *testing.T) {
	var requests int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		http.Error(w, "[-]etcd failed: reason withheld", http.StatusInternalServerError)
	}))
	defer srv.Close()
	kubeconfig := writeKubeconfig(t, srv.URL)
	notAHost := t.TempDir() // no /etc/kubernetes/manifests

	// Refused while choosing the face, before anything is contacted.
	_, err := runRoot(t, "restore", "s.db", "--local", "--node", "cp-1", "--kubeconfig", kubeconfig)
	if want := errRestoreLocalAndNode.Error(); err == nil || err.Error() != want {
		t.Errorf("restore --local --node: error %v, want %q", err, want)
	}
	// --local makes recover host-local where the check would not: the host's
	// flags are validated (-o json only).
	_, err = runRoot(t, "recover", "--local", "-o", "yaml", "--host-root", notAHost, "--kubeconfig", kubeconfig)
	if want := `unknown output format "yaml": only json is supported`; err == nil || err.Error() != want {
		t.Errorf("recover --local -o yaml: error %v, want %q", err, want)
	}
	if requests != 0 {
		t.Errorf("the apiserver was asked %d time(s) by refused commands", requests)
	}
	// Without --local, the same recover is the workstation's: it asks the
	// apiserver and explains.
	_, err = runRoot(t, "recover", "-o", "yaml", "--host-root", notAHost, "--kubeconfig", kubeconfig)
	if err == nil || !strings.Contains(err.Error(), "The apiserver does not answer. If etcd lost its quorum, recover on a surviving control-plane host") {
		t.Errorf("recover off a control-plane host: %v", err)
	}
	if requests == 0 {
		t.Error("recover off a control-plane host did not ask the apiserver")
	}
}
