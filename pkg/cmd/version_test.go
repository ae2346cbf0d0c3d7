package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiversion "k8s.io/apimachinery/pkg/version"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/version"
)

// writeKubeconfig writes a kubeconfig whose only cluster is server and
// returns its path, so tests never depend on the caller's ~/.kube/config.
func writeKubeconfig(t *testing.T, server string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: test
  user:
    token: test-token
contexts:
- name: test
  context:
    cluster: test
    user: test
current-context: test
`, server)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runVersion runs the version command through the real root command, the
// way a user would, and returns stdout and the error.
func runVersion(t *testing.T, args ...string) (string, error) {
	t.Helper()
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	root := NewCmdRoot(streams)
	root.SetArgs(append([]string{"version"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func clientLine() string {
	c := version.Get()
	return fmt.Sprintf("Client Version: %s (commit %s, %s %s)\n", c.Version, c.GitCommit, c.GoVersion, c.Platform)
}

func TestVersionClientOnlyText(t *testing.T) {
	// An unreachable kubeconfig proves --client never touches the cluster.
	kubeconfig := writeKubeconfig(t, "https://127.0.0.1:1")
	out, err := runVersion(t, "--client", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("version --client: %v", err)
	}
	if out != clientLine() {
		t.Errorf("output = %q, want %q", out, clientLine())
	}
}

func TestVersionClientOnlyJSON(t *testing.T) {
	out, err := runVersion(t, "--client", "-o", "json")
	if err != nil {
		t.Fatalf("version --client -o json: %v", err)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not json: %v\n%s", err, out)
	}
	var client version.Info
	if err := json.Unmarshal(got["clientVersion"], &client); err != nil {
		t.Fatalf("clientVersion: %v\n%s", err, out)
	}
	if client != version.Get() {
		t.Errorf("clientVersion = %+v, want %+v", client, version.Get())
	}
	for _, key := range []string{"serverVersion", "etcd"} {
		if _, ok := got[key]; ok {
			t.Errorf("--client output has %q, want only clientVersion:\n%s", key, out)
		}
	}
}

func TestVersionValidateRejectsUnknownOutput(t *testing.T) {
	o := NewVersionOptions(genericclioptions.NewConfigFlags(false), genericiooptions.NewTestIOStreamsDiscard())
	o.ClientOnly = true
	o.Output = "xml"
	if err := o.Complete(nil, nil); err != nil {
		t.Fatal(err)
	}
	err := o.Validate()
	if err == nil {
		t.Fatal("Validate accepted -o xml")
	}
	want := `--output must be 'json' or 'yaml', got "xml"`
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}

	for _, ok := range []string{"", "json", "yaml"} {
		o.Output = ok
		if err := o.Validate(); err != nil {
			t.Errorf("Validate rejected -o %q: %v", ok, err)
		}
	}
}

func TestVersionUnreachableServer(t *testing.T) {
	// Port 1 on loopback is closed, so the connection is refused at once.
	const server = "https://127.0.0.1:1"
	flags := genericclioptions.NewConfigFlags(false)
	kubeconfig := writeKubeconfig(t, server)
	flags.KubeConfig = &kubeconfig
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	o := NewVersionOptions(flags, streams)

	if err := o.Complete(nil, nil); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	err := o.Run(context.Background())
	if err == nil {
		t.Fatal("Run succeeded against an unreachable apiserver")
	}
	for _, want := range []string{"127.0.0.1:1", "--client", "status --local"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if out.String() != clientLine() {
		t.Errorf("output = %q, want only the client version %q", out.String(), clientLine())
	}
}

func TestVersionNoKubeconfigHint(t *testing.T) {
	// With no clusters in any kubeconfig the error must say so, because the
	// bare "connection refused" would otherwise hide it. --server keeps the
	// target a closed port instead of client-go's localhost:8080 default,
	// which something on the test host might be listening on.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runVersion(t, "--kubeconfig", empty, "--server", "https://127.0.0.1:1")
	if err == nil {
		t.Fatal("version succeeded against a closed port")
	}
	for _, want := range []string{"no kubeconfig found", "/etc/kubernetes/admin.conf", "127.0.0.1:1", "--client"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if out != clientLine() {
		t.Errorf("output = %q, want only the client version %q", out, clientLine())
	}

	// And a configured cluster must not get the hint.
	_, err = runVersion(t, "--kubeconfig", writeKubeconfig(t, "https://127.0.0.1:1"))
	if err == nil || strings.Contains(err.Error(), "no kubeconfig") {
		t.Errorf("error with a kubeconfig = %v, want a failure without the no-kubeconfig hint", err)
	}
}

func etcdPod(name, node, image string, ready bool) corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: "kube-system",
			Labels:    map[string]string{"component": "etcd", "tier": "control-plane"},
		},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{
				{Name: "etcd", Image: image},
			},
		},
		Status: corev1.PodStatus{
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
				{Type: corev1.PodReady, Status: status},
			},
		},
	}
}

// newFakeAPIServer serves just enough of the Kubernetes API over real HTTP
// on loopback for version: /version and the etcd pod list. It fails the
// test if the pods are requested without kubeadm's etcd label selector.
// With forbidPods the pod list is refused the way RBAC refuses it.
// wantTimeout is the per-request timeout client-go must announce in the
// ?timeout= parameter, proving that an unresponsive apiserver cannot hang
// the command.
func newFakeAPIServer(t *testing.T, forbidPods bool, wantTimeout string) *httptest.Server {
	t.Helper()
	pods := corev1.PodList{
		TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"},
		Items: []corev1.Pod{
			etcdPod("etcd-b", "b", "registry.k8s.io/etcd:3.7.0-0", false),
			etcdPod("etcd-a", "a", "registry.k8s.io/etcd:3.6.4-0@sha256:0123456789abcdef", true),
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		if got := r.URL.Query().Get("timeout"); got != wantTimeout {
			t.Errorf("/version requested with timeout %q, want %q", got, wantTimeout)
		}
		writeJSON(t, w, apiversion.Info{Major: "1", Minor: "37", GitVersion: "v1.37.2"})
	})
	mux.HandleFunc("/api/v1/namespaces/kube-system/pods", func(w http.ResponseWriter, r *http.Request) {
		if got := r.URL.Query().Get("labelSelector"); got != "component=etcd,tier=control-plane" {
			t.Errorf("pods listed with labelSelector %q", got)
			http.Error(w, "unexpected labelSelector", http.StatusBadRequest)
			return
		}
		if forbidPods {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure",` +
				`"message":"pods is forbidden: User \"test\" cannot list resource \"pods\" in API group \"\" in the namespace \"kube-system\"",` +
				`"reason":"Forbidden","code":403}`))
			return
		}
		writeJSON(t, w, pods)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func writeJSON(t *testing.T, w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		t.Errorf("encoding response: %v", err)
	}
}

func TestVersionAgainstAPIServerText(t *testing.T) {
	srv := newFakeAPIServer(t, false, "10s")
	out, err := runVersion(t, "--kubeconfig", writeKubeconfig(t, srv.URL))
	if err != nil {
		t.Fatalf("version: %v", err)
	}
	want := clientLine() +
		"Server Version: v1.37.2\n" +
		"etcd (static pods):\n" +
		"  NODE   VERSION   READY\n" +
		"  a      3.6.4-0   true\n" +
		"  b      3.7.0-0   false\n"
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
}

func TestVersionAgainstAPIServerJSONAndYAML(t *testing.T) {
	srv := newFakeAPIServer(t, false, "10s")
	kubeconfig := writeKubeconfig(t, srv.URL)
	want := []EtcdPodVersion{
		{Node: "a", Pod: "etcd-a", Image: "registry.k8s.io/etcd:3.6.4-0@sha256:0123456789abcdef", Version: "3.6.4-0", Ready: true},
		{Node: "b", Pod: "etcd-b", Image: "registry.k8s.io/etcd:3.7.0-0", Version: "3.7.0-0", Ready: false},
	}

	for _, format := range []string{"json", "yaml"} {
		t.Run(format, func(t *testing.T) {
			out, err := runVersion(t, "--kubeconfig", kubeconfig, "-o", format)
			if err != nil {
				t.Fatalf("version -o %s: %v", format, err)
			}
			// sigs.k8s.io/yaml reads JSON too, so one decoder checks both.
			var got Versions
			if err := yaml.UnmarshalStrict([]byte(out), &got); err != nil {
				t.Fatalf("decoding output: %v\n%s", err, out)
			}
			if got.ClientVersion != version.Get() {
				t.Errorf("clientVersion = %+v, want %+v", got.ClientVersion, version.Get())
			}
			if got.ServerVersion == nil || got.ServerVersion.GitVersion != "v1.37.2" {
				t.Errorf("serverVersion = %+v, want gitVersion v1.37.2", got.ServerVersion)
			}
			if len(got.Etcd) != len(want) {
				t.Fatalf("etcd = %+v, want %+v", got.Etcd, want)
			}
			for i := range want {
				if got.Etcd[i] != want[i] {
					t.Errorf("etcd[%d] = %+v, want %+v", i, got.Etcd[i], want[i])
				}
			}
		})
	}
}

func TestVersionPodsForbidden(t *testing.T) {
	srv := newFakeAPIServer(t, true, "10s")
	out, err := runVersion(t, "--kubeconfig", writeKubeconfig(t, srv.URL))
	if err == nil {
		t.Fatal("version succeeded although the etcd pods could not be listed")
	}
	for _, want := range []string{"reading etcd pods from " + srv.URL, "forbidden", "--client"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	// What was read is still shown; no etcd section pretends to be complete.
	if want := clientLine() + "Server Version: v1.37.2\n"; out != want {
		t.Errorf("output = %q, want %q", out, want)
	}
}

func TestVersionRequestTimeoutFlagWins(t *testing.T) {
	srv := newFakeAPIServer(t, false, "3s")
	if _, err := runVersion(t, "--kubeconfig", writeKubeconfig(t, srv.URL), "--request-timeout", "3s"); err != nil {
		t.Fatal(err)
	}
}

func TestVersionJSONFieldNames(t *testing.T) {
	// The field names are a scripting interface; pin them.
	srv := newFakeAPIServer(t, false, "10s")
	out, err := runVersion(t, "--kubeconfig", writeKubeconfig(t, srv.URL), "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		ClientVersion map[string]any   `json:"clientVersion"`
		ServerVersion map[string]any   `json:"serverVersion"`
		Etcd          []map[string]any `json:"etcd"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Etcd) != 2 {
		t.Fatalf("etcd has %d entries, want 2:\n%s", len(got.Etcd), out)
	}
	for _, key := range []string{"node", "pod", "image", "version", "ready"} {
		if _, ok := got.Etcd[0][key]; !ok {
			t.Errorf("etcd entry lacks %q:\n%s", key, out)
		}
	}
	if got.ServerVersion["gitVersion"] != "v1.37.2" || got.ClientVersion["version"] != version.Version {
		t.Errorf("unexpected versions:\n%s", out)
	}
}

func TestImageTag(t *testing.T) {
	for image, want := range map[string]string{
		"registry.k8s.io/etcd:3.7.0-0":            "3.7.0-0",
		"registry.k8s.io/etcd:3.7.0-0@sha256:abc": "3.7.0-0",
		"registry.k8s.io/etcd@sha256:abc":         "",
		"localhost:5000/etcd":                     "",
		"localhost:5000/mirror/etcd:3.7.0-0":      "3.7.0-0",
		"etcd":                                    "",
		"etcd:3.7.0":                              "3.7.0",
		"":                                        "",
	} {
		if got := imageTag(image); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", image, got, want)
		}
	}
}
