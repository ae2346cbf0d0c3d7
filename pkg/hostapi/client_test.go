package hostapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

// scripted is a Transport whose host answers with fixed output: the
// client's decoding, relaying and error handling are what is tested here;
// the host side runs for real in the e2e tests.
type scripted struct {
	stdout, stderr string
	err            error
	calls          []Call
	stdin          string
}

func (s *scripted) Exec(_ context.Context, node string, call Call, stdin io.Reader, stdout, stderr io.Writer) error {
	s.calls = append(s.calls, call)
	if stdin != nil {
		b, _ := io.ReadAll(stdin)
		s.stdin = string(b)
	}
	io.WriteString(stdout, s.stdout)
	io.WriteString(stderr, s.stderr)
	return s.err
}

func TestJoinRelaysProgressAndReturnsSteps(t *testing.T) {
	tr := &scripted{
		stderr: "[1/2] add learner: add h2\n      done in 1s\n",
		stdout: "{\n  \"verb\": \"join\",\n  \"node\": \"h2\",\n  \"steps\": [\n    {\"name\": \"add learner\", \"outcome\": \"done\"},\n    {\"name\": \"promote\", \"outcome\": \"done\"}\n  ]\n}\n",
	}
	var out bytes.Buffer
	c := &Client{Transport: tr, Out: &out}
	res, err := c.Join(context.Background(), "h2", JoinRequest{Endpoints: []string{"https://a:2379", "https://b:2379"}, ReplaceMember: 0xab, EtcdArgs: []string{"heartbeat-interval=250", "election-timeout=2500"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Steps) != 2 || res.Steps[1].Name != "promote" || res.Node != "h2" {
		t.Errorf("result %+v", res)
	}
	want := []string{"join", "--endpoints", "https://a:2379,https://b:2379", "--replace-member", "ab", "--etcd-arg", "heartbeat-interval=250", "--etcd-arg", "election-timeout=2500"}
	if got := tr.calls[0]; fmt.Sprint(got.Argv) != fmt.Sprint(want) || !got.JSON || fmt.Sprint(got.Args()[len(want):]) != "[-o json]" {
		t.Errorf("call %+v, want argv %v with -o json", got, want)
	}
	if !strings.Contains(out.String(), "      h2 | [1/2] add learner: add h2\n") {
		t.Errorf("progress not relayed under the node's name: %q", out.String())
	}
}

// A verb that failed part-way still reports the steps it got through.
func TestVerbFailedPartWayKeepsSteps(t *testing.T) {
	exit := &ExitError{Node: "h2", Where: "pod kube-system/p", ExitCode: 1, Tail: "promote: not caught up"}
	tr := &scripted{stdout: `{"verb":"leave","steps":[{"name":"move leadership","outcome":"failed","error":"boom"}],"error":"boom"}`, err: exit}
	res, err := (&Client{Transport: tr}).Leave(context.Background(), "h2")
	if !errors.As(err, new(*ExitError)) || !strings.Contains(err.Error(), "on h2: kubectl-etcd in pod kube-system/p on node h2 failed with exit code 1") {
		t.Fatalf("err = %v", err)
	}
	if res == nil || len(res.Steps) != 1 || res.Steps[0].Outcome != "failed" || res.Error != "boom" {
		t.Errorf("result %+v", res)
	}
}

func TestAnswerIsTheLastJSONLine(t *testing.T) {
	tr := &scripted{stdout: "a progress line\n{\"certificate\":\"C\",\"ca\":\"CA\"}\n"}
	got, err := (&Client{Transport: tr}).SignClientCert(context.Background(), "h1", []byte{1, 2})
	if err != nil || got.CertificatePEM != "C" || got.CAPEM != "CA" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if a := tr.calls[0].Argv; a[0] != "sign-client-cert" || a[2] != "AQI=" {
		t.Errorf("argv %v", a)
	}
	tr = &scripted{stdout: "no answer here\n"}
	if _, err := (&Client{Transport: tr}).SignClientCert(context.Background(), "h1", nil); err == nil ||
		!strings.Contains(err.Error(), "on h1: reading the answer of `sign-client-cert --csr-base64`") {
		t.Errorf("err = %v", err)
	}
}

// TestAnswerFromAMergedLog: when the stream broke, a verb's stdout is the
// pod's log, its progress (stderr) and its indented -o json result merged.
func TestAnswerFromAMergedLog(t *testing.T) {
	log := "Plan: renew\n[1/2] renew certificates: ...\n      done in 20ms: renewed etcd-server\n" +
		"[2/2] restart kube-apiserver: ...\n      done in 21s\n" +
		"{\n  \"verb\": \"certs renew\",\n  \"node\": \"h1\",\n  \"steps\": [\n    {\n      \"name\": \"renew certificates\",\n      \"outcome\": \"done\"\n    }\n  ]\n}\n"
	tr := &scripted{stdout: log}
	res, err := (&Client{Transport: tr}).CertsRenew(context.Background(), "h1", CertsRenewRequest{Before: "30d"})
	if err != nil || res.Verb != "certs renew" || len(res.Steps) != 1 || res.Steps[0].Outcome != "done" {
		t.Fatalf("got %+v, %v", res, err)
	}
	if got := strings.Join(tr.calls[0].Args(), " "); got != "certs renew --local --before 30d -o json" {
		t.Errorf("argv %q", got)
	}
}

func TestUploadStreamsStdin(t *testing.T) {
	tr := &scripted{stdout: `{"path":"/var/lib/kubectl-etcd/restore/0123456789abcdef.db","alreadyThere":false}`}
	got, err := (&Client{Transport: tr}).Upload(context.Background(), "h1", strings.Repeat("0123456789abcdef", 4), 4, strings.NewReader("data"))
	if err != nil || got.Path != UploadPath(strings.Repeat("0123456789abcdef", 4)) || tr.stdin != "data" {
		t.Fatalf("got %+v, %v, stdin %q", got, err, tr.stdin)
	}
}

func TestClassification(t *testing.T) {
	wrapped := func(kind error) error {
		return fmt.Errorf("on h2: %w", fmt.Errorf("the kubelet on node h2 cannot start pods: %w", kind))
	}
	for _, c := range []struct {
		err                   error
		unreachable, answered bool
	}{
		{wrapped(ErrUnreachable), true, true},
		{wrapped(ErrNoSuchHost), true, true},
		{wrapped(ErrForbidden), false, true},
		{wrapped(ErrSetup), false, true},
		{fmt.Errorf("on h2: %w", &ExitError{Node: "h2"}), false, true},
		{errors.New("stream reset"), false, false},
		{context.DeadlineExceeded, false, false},
	} {
		if Unreachable(c.err) != c.unreachable || Answered(c.err) != c.answered {
			t.Errorf("%v: Unreachable %v Answered %v, want %v %v", c.err, Unreachable(c.err), Answered(c.err), c.unreachable, c.answered)
		}
	}
	if got := (Call{Argv: []string{"leave"}, JSON: true}).HostCommand(); got != HostBinaryPath+" leave" {
		t.Errorf("HostCommand %q", got)
	}
}

func TestParseRecoveryMarker(t *testing.T) {
	m := ParseRecoveryMarker([]byte(`{"verb":"recover","host":"h1","removedMembers":[{"id":2},{"id":3}]}`))
	if m == nil || m.Verb != "recover" || m.Host != "h1" || !m.Cut(3) || m.Cut(1) {
		t.Errorf("marker %+v", m)
	}
	if m := ParseRecoveryMarker([]byte("not json")); m != nil {
		t.Errorf("garbage decoded as %+v", m)
	}
}

// The cluster configuration the caller read goes to every later call, on
// the transport's command line, not in the command an operator is told to
// run by hand (run there, the verb reads it itself).
func TestClusterConfigHandedToCalls(t *testing.T) {
	tr := &scripted{stdout: `{"verb":"leave","steps":[]}`}
	c := &Client{Transport: tr}
	if _, err := c.Leave(context.Background(), "h2"); err != nil {
		t.Fatal(err)
	}
	raw := []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n")
	c.SetClusterConfig(raw)
	if _, err := c.Leave(context.Background(), "h2"); err != nil {
		t.Fatal(err)
	}
	if err := c.BackupRun(context.Background(), "h2", BackupRunRequest{Reason: "pre-scale"}); err != nil {
		t.Fatal(err)
	}
	if len(tr.calls[0].ClusterConfig) != 0 || strings.Contains(fmt.Sprint(tr.calls[0].Args()), ClusterConfigFlag) {
		t.Errorf("a call before SetClusterConfig got one: %v", tr.calls[0].Args())
	}
	for _, call := range tr.calls[1:] {
		args := call.Args()
		i := slices.Index(args, "--"+ClusterConfigFlag)
		if i < 0 || i+1 >= len(args) {
			t.Fatalf("call %v does not hand the configuration over", args)
		}
		got, err := base64.StdEncoding.DecodeString(args[i+1])
		if err != nil || string(got) != string(raw) {
			t.Errorf("handed %q (%v), want %q", got, err, raw)
		}
		if strings.Contains(call.HostCommand(), ClusterConfigFlag) {
			t.Errorf("the host command for people carries the configuration: %s", call.HostCommand())
		}
	}
}
