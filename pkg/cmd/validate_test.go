package cmd

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// hostRootWithManifests is a --host-root that looks like a kubeadm
// control-plane host to recover's filesystem check, and nothing more.
func hostRootWithManifests(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/kubernetes/manifests"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// listTree names every file and directory under root, to tell whether a
// command changed anything there.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		out = append(out, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestValidateRejectsBeforeContact runs each verb through the root command
// with bad input and wants Validate's exact error, with no request reaching
// the apiserver of the kubeconfig and nothing changed under --host-root.
func TestValidateRejectsBeforeContact(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "this test's apiserver must not be asked", http.StatusTeapot)
	}))
	defer srv.Close()
	kubeconfig := writeKubeconfig(t, srv.URL)
	hostRoot := hostRootWithManifests(t)
	before := listTree(t, hostRoot)

	for _, c := range []struct {
		args []string
		host bool // give --host-root (the verb has it)
		want string
	}{
		{[]string{"version", "-o", "xml"}, false, `--output must be 'json' or 'yaml', got "xml"`},

		{[]string{"scale"}, false, "give either --replicas N or --nodes a,b,c"},
		{[]string{"scale", "--replicas", "3", "--nodes", "cp-1"}, false, "give either --replicas N or --nodes a,b,c"},
		{[]string{"scale", "--replicas", "0"}, false, "--replicas must be at least 1, got 0: etcd cannot run without members (to rebuild from nothing, restore a snapshot)"},
		{[]string{"scale", "--replicas", "3", "-o", "xml"}, false, `unknown output format "xml" (json, yaml, wide)`},
		{[]string{"remove", "cp-3", "-o", "xml"}, false, `unknown output format "xml" (json, yaml, wide)`},
		{[]string{"remove"}, false, "remove needs exactly one NODE|MEMBER, got 0 arguments"},
		{[]string{"remove", "cp-2", "cp-3"}, false, "remove needs exactly one NODE|MEMBER, got 2 arguments"},
		{[]string{"replace"}, false, "replace needs exactly one NODE, got 0 arguments"},
		{[]string{"upgrade"}, false, "--version is required: the etcd release to move every member to, e.g. 3.7.0"},
		{[]string{"upgrade", "--version", "3.7"}, false, `etcd version "3.7": want major.minor.patch, e.g. 3.7.0`},
		{[]string{"upgrade", "--version", "3.7.0", "-o", "xml"}, true, `unknown output format "xml" (json, yaml, wide)`},
		{[]string{"upgrade", "--version", "3.7.0", "--endpoints", "https://10.0.0.11:2379"}, true, "--endpoints goes with --local"},
		{[]string{"upgrade", "--version", "3.7.0", "--local", "--no-snapshot"}, true, "--no-snapshot goes without --local: the host-local upgrade takes no snapshot (run `kubectl-etcd backup run` first)"},
		{[]string{"upgrade", "--version", "3.7.0", "--local", "-o", "yaml"}, true, `unknown output format "yaml": only json is supported`},
		{[]string{"reconfigure", "-o", "xml"}, true, `unknown output format "xml" (json, yaml, wide)`},
		{[]string{"reconfigure", "--endpoints", "https://10.0.0.11:2379"}, true, "--endpoints goes with --local"},
		{[]string{"reconfigure", "--local", "cp-1"}, true, "--local reconfigures this host's member only: give no node names"},
		{[]string{"reconfigure", "--local", "--no-snapshot"}, true, "--no-snapshot goes without --local: the host-local reconfigure takes no snapshot (run `kubectl-etcd backup run` first)"},
		{[]string{"replace", "cp-3", "-o", "xml"}, false, `unknown output format "xml" (json, yaml, wide)`},

		{[]string{"defrag"}, true, "give --all or the nodes whose members to defragment"},
		{[]string{"defrag", "--all", "cp-1"}, true, "give --all or the nodes whose members to defragment, not both"},
		{[]string{"defrag", "--all", "-o", "xml"}, true, `unknown output format "xml" (json, yaml, wide)`},
		{[]string{"defrag", "--all", "--local", "-o", "yaml"}, true, `unknown output format "yaml": only json is supported`},
		{[]string{"alarm", "list", "-o", "wide"}, true, `unknown output format "wide" (json, yaml)`},
		{[]string{"alarm", "list", "extra"}, true, `unknown command "extra" for "kubectl etcd alarm list"`},
		{[]string{"alarm", "disarm", "-o", "xml"}, true, `unknown output format "xml" (json, yaml, wide)`},
		{[]string{"alarm", "disarm", "--local", "-o", "yaml"}, true, `unknown output format "yaml": only json is supported`},

		{[]string{"certs", "check", "-o", "wide"}, true, `unknown output format "wide" (json, yaml)`},
		{[]string{"certs", "check", "--local", "-o", "yaml"}, true, `unknown output format "yaml": only json is supported`},
		{[]string{"certs", "renew"}, true, "give --all or the nodes whose certificates to renew"},
		{[]string{"certs", "renew", "--all", "cp-1"}, true, "give --all or the nodes whose certificates to renew, not both"},
		{[]string{"certs", "renew", "--all", "--before", "soon"}, true, `--before "soon": want a number of days (30d) or a duration (720h)`},
		{[]string{"certs", "renew", "--all", "--before", "-2h"}, true, `--before "-2h": must not be negative`},
		{[]string{"certs", "renew", "--all", "-o", "xml"}, true, `unknown output format "xml" (json, yaml, wide)`},
		{[]string{"certs", "renew", "--local", "--all"}, true, "--local renews this host only: give no --all and no node names"},
		{[]string{"certs", "renew", "--local", "-o", "yaml"}, true, `unknown output format "yaml": only json is supported`},

		{[]string{"status", "-o", "xml"}, true, `unknown output format "xml" (json, yaml, wide)`},
		{[]string{"status", "--via", "ssh"}, true, `unknown --via "ssh" (auto, exec, host-pod)`},
		{[]string{"status", "--local", "-o", "yaml"}, true, `unknown output format "yaml": only json is supported`},

		{[]string{"snapshot", "save", "s.db", "-o", "yaml"}, true, `unknown output format "yaml": only json is supported`},
		{[]string{"snapshot", "save", "s.db", "--timeout", "0"}, true, "--timeout 0s must be positive"},
		{[]string{"snapshot", "save", "s.db", "--endpoint", "https://127.0.0.1:2379"}, true, "--endpoint goes with --local; from a workstation the member is chosen for you"},
		{[]string{"snapshot", "save", "s.db.part"}, true, "s.db.part: names ending in .part are for snapshots being written"},
		{[]string{"snapshot", "save", "s.db.part", "--local"}, true, "s.db.part: names ending in .part are for snapshots being written"},
		{[]string{"snapshot", "save", "s.db", "--local", "--timeout", "-1s"}, true, "--timeout -1s must be positive"},
		{[]string{"snapshot", "status", "s.db", "-o", "yaml"}, false, `unknown output format "yaml": only json is supported`},

		{[]string{"backup", "run", "--keep", "-1"}, true, "--keep -1: use 0 (keep all) or more"},
		{[]string{"backup", "run", "--timeout", "0"}, true, "--timeout 0s must be positive"},
		{[]string{"backup", "run", "--reason", "No Good"}, true, `backup reason "No Good": use 1-32 lowercase letters, digits and dashes (e.g. scheduled, pre-scale, manual)`},
		{[]string{"backup", "run", "-o", "yaml"}, true, `unknown output format "yaml": only json is supported`},
		{[]string{"backup", "list", "-o", "yaml"}, true, `unknown output format "yaml": only json is supported`},
		{[]string{"backup", "list", "--local", "-o", "yaml"}, true, `unknown output format "yaml": only json is supported`},
		{[]string{"backup", "schedule", "-o", "yaml"}, false, `unknown output format "yaml": only json is supported`},
		{[]string{"backup", "schedule", "--every", "45s"}, false, "--every 45s: the shortest interval is 1m (cron runs at most once a minute)"},
		{[]string{"backup", "schedule", "--keep", "0"}, false, "--keep 0: keep at least one backup"},
		{[]string{"backup", "unschedule", "-o", "yaml"}, false, `unknown output format "yaml": only json is supported`},

		{[]string{"init", "-o", "yaml"}, true, `unknown output format "yaml": only json is supported`},
		{[]string{"join"}, true, "--endpoints is required: the client URL of at least one current member, e.g. https://10.0.0.11:2379"},
		{[]string{"join", "--endpoints", " , "}, true, "--endpoints is required: the client URL of at least one current member, e.g. https://10.0.0.11:2379"},
		{[]string{"join", "--endpoints", "https://10.0.0.11:2379", "--replace-member", "zz"}, true, `--replace-member "zz" is not a member ID (hex, as status shows it)`},
		{[]string{"join", "--endpoints", "https://10.0.0.11:2379", "--replace-member", "0"}, true, `--replace-member "0" is not a member ID (hex, as status shows it)`},
		{[]string{"join", "--endpoints", "https://10.0.0.11:2379", "--etcd-arg", "heartbeat-interval"}, true, `--etcd-arg "heartbeat-interval": want NAME=VALUE, e.g. heartbeat-interval=250`},
		{[]string{"join", "--endpoints", "https://10.0.0.11:2379", "--etcd-arg", "data-dir=/tmp/x"}, true, `--etcd-arg "data-dir=/tmp/x": kubeadm sets --data-dir for the host itself`},
		{[]string{"leave", "--cluster-config-b64", "not base64!"}, true, "--cluster-config-b64: illegal base64 data at input byte 3"},
		{[]string{"leave", "-o", "yaml"}, true, `unknown output format "yaml": only json is supported`},
		{[]string{"sign-client-cert", "--csr-base64", "not base64!"}, true, "--csr-base64 must hold a base64 DER certificate request"},
		{[]string{"sign-client-cert"}, true, "--csr-base64 must hold a base64 DER certificate request"},
		{[]string{"ca-send"}, true, "--to-public-key must hold the receiver's base64 public key"},
		{[]string{"ca-receive", "-o", "yaml"}, true, `unknown output format "yaml": only json is supported`},
		{[]string{"restore-node", "check", "--sha256", "abc"}, true, `--sha256: "abc" is not a sha256 (64 lower-case hex digits)`},
		{[]string{"restore-node", "receive"}, true, `--sha256: "" is not a sha256 (64 lower-case hex digits)`},

		{[]string{"recover", "-o", "yaml"}, true, `unknown output format "yaml": only json is supported`},
		{[]string{"restore"}, true, "restore needs the snapshot FILE to restore"},
		{[]string{"restore", "s.db", "-o", "yaml"}, true, `unknown output format "yaml": only json is supported`},
		{[]string{"restore", "s.db", "--node", "cp-1", "-o", "xml"}, true, `unknown output format "xml" (json, yaml, wide)`},
		{[]string{"restore", "s.db", "--node", "cp-1", "--replicas", "-1"}, true, "--replicas must be at least 1, got -1"},
		{[]string{"restore", "s.db", "--node", "cp-1", "--timeout", "0"}, true, "--timeout must be positive, got 0s"},
	} {
		args := append(slices.Clone(c.args), "--kubeconfig", kubeconfig)
		if c.host {
			args = append(args, "--host-root", hostRoot)
		}
		_, err := runRoot(t, args...)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: error %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the apiserver was asked %d time(s) by commands that Validate should have refused", n)
	}
	if after := listTree(t, hostRoot); !slices.Equal(before, after) {
		t.Errorf("refused commands changed the host root:\nbefore %v\nafter  %v", before, after)
	}
}

// TestValidateHostChecksCaller: once the flags are good, a host verb's
// Validate still refuses a caller that is not root, or a --host-root that is
// not there, before the host is read.
func TestValidateHostChecksCaller(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	want := "--host-root " + missing + " is not a directory"
	if os.Geteuid() != 0 {
		want = "this command runs as root on a control-plane host: it reads the etcd CA and writes static-pod manifests under /etc/kubernetes"
	}
	for _, args := range [][]string{
		{"init"}, {"leave"}, {"join", "--endpoints", "https://10.0.0.11:2379"},
		{"status", "--local"}, {"snapshot", "save", "s.db", "--local"}, {"backup", "run"}, {"backup", "list", "--local"},
		{"restore", "s.db"},
	} {
		_, err := runRoot(t, append(slices.Clone(args), "--host-root", missing)...)
		if err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", strings.Join(args, " "), err, want)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("%s was created", missing)
	}
}

// TestOptionsValidateAlone: Options built directly, as kubectl's tests do,
// are validated without a command tree.
func TestOptionsValidateAlone(t *testing.T) {
	streams := genericiooptions.NewTestIOStreamsDiscard()
	s := &ScaleOptions{IOStreams: streams, Replicas: 2, replicasSet: true, Output: "wide"}
	if err := s.Validate(); err != nil {
		t.Errorf("scale --replicas 2 -o wide: %v", err)
	}
	j := &JoinOptions{HostOptions: HostOptions{IOStreams: streams, Root: t.TempDir()}, endpoints: []string{"https://10.0.0.11:2379"}, ReplaceMember: "8e9e05c52164694d"}
	if err := j.Validate(); err != nil && os.Geteuid() == 0 {
		t.Errorf("join --replace-member 8e9e05c52164694d: %v", err)
	}
	if j.replace != 0x8e9e05c52164694d {
		t.Errorf("Validate kept --replace-member as %x, want 8e9e05c52164694d", j.replace)
	}
	r := &RestoreOptions{HostOptions: HostOptions{IOStreams: streams}}
	if err := r.Complete(nil, nil); err == nil || err.Error() != "restore needs the snapshot FILE to restore" {
		t.Errorf("restore without FILE: %v", err)
	}
}
