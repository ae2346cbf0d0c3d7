package hostapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/sealedca"
)

// Client calls the host-side operations over a Transport, one method per
// operation. It holds no state between calls but the cluster configuration
// it hands them, and may serve many calls at once, also on different hosts.
type Client struct {
	Transport Transport
	// Out receives the progress lines of the calls that relay them,
	// indented under the caller's step as "      NODE | line"; nil: none.
	Out io.Writer

	clusterConfig atomic.Pointer[[]byte]
}

// SetClusterConfig makes every later call hand raw (the cluster's
// ClusterConfiguration, read and parsed by the caller) to its host verb
// (Call.ClusterConfig): the hosts then write what the caller planned with,
// and a host whose own admin.conf cannot reach the apiserver still gets
// the cluster's settings rather than kubeadm's defaults.
func (c *Client) SetClusterConfig(raw []byte) {
	c.clusterConfig.Store(&raw)
}

// NeedsKubelet says whether the transport runs on a host through its
// kubelet (host pods), so that a NotReady Node cannot be reached.
func (c *Client) NeedsKubelet() bool {
	_, free := c.Transport.(KubeletFree)
	return !free
}

// exec runs call on node with the cluster configuration handed over.
func (c *Client) exec(ctx context.Context, node string, call Call, stdin io.Reader, stdout, stderr io.Writer) error {
	if raw := c.clusterConfig.Load(); raw != nil && call.ClusterConfig == nil {
		call.ClusterConfig = *raw
	}
	return c.Transport.Exec(ctx, node, call, stdin, stdout, stderr)
}

// Join adds node's member to the cluster (learner, caught up, promoted) and
// points its kube-apiserver at it.
func (c *Client) Join(ctx context.Context, node string, req JoinRequest) (*VerbResult, error) {
	return c.verb(ctx, node, JoinCall(req))
}

// JoinCall is the call Join makes, for plans that show it.
func JoinCall(req JoinRequest) Call {
	argv := []string{"join", "--endpoints", strings.Join(req.Endpoints, ",")}
	if req.ReplaceMember != 0 {
		argv = append(argv, "--replace-member", fmt.Sprintf("%x", req.ReplaceMember))
	}
	for _, a := range req.EtcdArgs {
		argv = append(argv, "--etcd-arg", a)
	}
	return Call{Argv: argv}
}

// Leave removes node's member safely and points its kube-apiserver at the
// members left; on a host without a member it only re-points.
func (c *Client) Leave(ctx context.Context, node string) (*VerbResult, error) {
	return c.verb(ctx, node, Call{Argv: []string{"leave"}})
}

// BackupRun takes a snapshot into node's backup directory.
func (c *Client) BackupRun(ctx context.Context, node string, req BackupRunRequest) error {
	return c.progress(ctx, node, Call{Argv: []string{"backup", "run", "--reason", req.Reason}})
}

// BackupList lists node's backup directory.
func (c *Client) BackupList(ctx context.Context, node string) (*BackupList, error) {
	out := &BackupList{}
	if err := c.result(ctx, node, Call{Argv: []string{"backup", "list", "--local", "-o", "json"}, ReadOnly: true}, nil, false, out); err != nil {
		return nil, err
	}
	return out, nil
}

// HostState reads what `status --local` sees on node (read-only): its
// etcd, its data dir's identity, its kube-apiserver's etcd servers.
func (c *Client) HostState(ctx context.Context, node string) (*HostState, error) {
	out := &HostState{}
	if err := c.result(ctx, node, Call{Argv: []string{"status", "--local", "-o", "json"}, ReadOnly: true}, nil, false, out); err != nil {
		return nil, err
	}
	return out, nil
}

// CertsCheck reads node's etcd certificates (public parts only: no key
// leaves the host).
func (c *Client) CertsCheck(ctx context.Context, node string) (*CertsReport, error) {
	out := &CertsReport{}
	if err := c.result(ctx, node, Call{Argv: []string{"certs", "check", "--local", "-o", "json"}, ReadOnly: true}, nil, false, out); err != nil {
		return nil, err
	}
	return out, nil
}

// CertsRenew renews node's etcd certificates that expire within
// req.Before and restarts what holds old ones (see `certs renew --local`).
func (c *Client) CertsRenew(ctx context.Context, node string, req CertsRenewRequest) (*VerbResult, error) {
	return c.verb(ctx, node, CertsRenewCall(req))
}

// CertsRenewCall is the call CertsRenew makes, for plans that show it.
func CertsRenewCall(req CertsRenewRequest) Call {
	argv := []string{"certs", "renew", "--local", "--before", req.Before}
	if req.DryRun {
		argv = append(argv, "--dry-run")
	}
	return Call{Argv: argv}
}

// Reconfigure rewrites node's etcd manifest as kubeadm writes it from the
// cluster's configuration and waits for the restarted member (see
// `reconfigure --local`); with dryRun, only its plan.
func (c *Client) Reconfigure(ctx context.Context, node string, dryRun bool) (*VerbResult, error) {
	return c.verb(ctx, node, ReconfigureCall(dryRun))
}

// ReconfigureCall is the call Reconfigure makes, for plans that show it.
func ReconfigureCall(dryRun bool) Call {
	argv := []string{"reconfigure", "--local"}
	if dryRun {
		argv = append(argv, "--dry-run")
	}
	return Call{Argv: argv}
}

// SignClientCert has node's etcd CA sign a short-lived client certificate
// for the public key in csrDER (the key itself never leaves the caller).
func (c *Client) SignClientCert(ctx context.Context, node string, csrDER []byte) (*SignedClientCert, error) {
	out := &SignedClientCert{}
	call := Call{Argv: []string{"sign-client-cert", "--csr-base64", base64.StdEncoding.EncodeToString(csrDER)}, ReadOnly: true}
	if err := c.result(ctx, node, call, nil, false, out); err != nil {
		return nil, err
	}
	return out, nil
}

// SendCA has node seal its etcd CA to a one-time public key of another host.
func (c *Client) SendCA(ctx context.Context, node string, toPublicKey []byte) (*sealedca.Message, error) {
	out := &sealedca.Message{}
	call := Call{Argv: []string{"ca-send", "--to-public-key", base64.StdEncoding.EncodeToString(toPublicKey)}, ReadOnly: true}
	if err := c.result(ctx, node, call, nil, false, out); err != nil {
		return nil, err
	}
	return out, nil
}

// ReceiveCA runs node's side of the CA hand-over, a conversation of
// sealedca.Message lines: node writes whether it has the CA (and if not, a
// one-time public key) to out, reads the sealed CA from in, and confirms.
func (c *Client) ReceiveCA(ctx context.Context, node string, in io.Reader, out, errOut io.Writer) error {
	return c.exec(ctx, node, Call{Argv: []string{"ca-receive"}}, in, out, errOut)
}

// CheckUpload asks node about the upload of the snapshot with that sha256:
// there, sound, of this cluster, restored already? It changes nothing.
func (c *Client) CheckUpload(ctx context.Context, node, sum string, allowOtherCluster bool) (*UploadCheck, error) {
	argv := []string{"restore-node", "check", "--sha256", sum}
	if allowOtherCluster {
		argv = append(argv, "--allow-other-cluster")
	}
	out := &UploadCheck{}
	if err := c.result(ctx, node, Call{Argv: argv, ReadOnly: true}, nil, true, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Upload streams a snapshot of that sha256 and size to node's UploadDir.
func (c *Client) Upload(ctx context.Context, node, sum string, size int64, r io.Reader) (*Received, error) {
	out := &Received{}
	call := Call{Argv: []string{"restore-node", "receive", "--sha256", sum, "--size", fmt.Sprint(size)}}
	if err := c.result(ctx, node, call, r, true, out); err != nil {
		return nil, err
	}
	return out, nil
}

// StartRestore starts the restore of the upload with that sha256 on node,
// detached from the transport (it takes the apiserver away for a while),
// and returns at once. The answer is partial, not nil, when err is not.
func (c *Client) StartRestore(ctx context.Context, node, sum string) (*RestoreStarted, error) {
	out := &RestoreStarted{}
	err := c.result(ctx, node, Call{Argv: []string{"restore-node", "start", "--sha256", sum}}, nil, true, out)
	return out, err
}

// RestoreRun polls node's record of the detached restore of that sha256.
func (c *Client) RestoreRun(ctx context.Context, node, sum string) (*RestoreRun, error) {
	out := &RestoreRun{}
	if err := c.result(ctx, node, Call{Argv: []string{"restore-node", "result", "--sha256", sum}, Poll: true, ReadOnly: true}, nil, false, out); err != nil {
		return nil, err
	}
	return out, nil
}

// progress runs a call whose output is progress lines, relayed to Out.
func (c *Client) progress(ctx context.Context, node string, call Call) error {
	w, done := c.relay(node)
	err := c.exec(ctx, node, call, nil, w, w)
	done()
	if err != nil {
		return fmt.Errorf("on %s: %w", node, err)
	}
	return nil
}

// verb runs a host-local verb with -o json: its progress (stderr) relayed
// to Out, its result decoded from stdout, also when it failed part-way
// (then with the error), so its steps become the caller's sub-steps.
func (c *Client) verb(ctx context.Context, node string, call Call) (*VerbResult, error) {
	res := &VerbResult{}
	if decoded, err := c.verbInto(ctx, node, call, res); err != nil {
		if !decoded {
			res = nil
		}
		return res, err
	}
	return res, nil
}

// verbInto is verb with the result decoded into out (a verb's own result
// type); decoded says whether out holds the verb's answer.
func (c *Client) verbInto(ctx context.Context, node string, call Call, out any) (decoded bool, err error) {
	call.JSON = true
	var stdout bytes.Buffer
	w, done := c.relay(node)
	err = c.exec(ctx, node, call, nil, &stdout, w)
	done()
	derr := json.Unmarshal(answer(stdout.Bytes()), out)
	if derr != nil && err == nil {
		err = fmt.Errorf("reading the result of `%s`: %w (%s)", call.Argv[0], derr, strings.TrimSpace(stdout.String()))
	}
	if err != nil {
		return derr == nil, fmt.Errorf("on %s: %w", node, err)
	}
	return true, nil
}

// result runs a call that answers with one JSON document, the last JSON
// line of its stdout, decoded into out; its stderr is relayed when relay.
func (c *Client) result(ctx context.Context, node string, call Call, stdin io.Reader, relay bool, out any) error {
	var stdout, stderr bytes.Buffer
	errOut := io.Writer(&stderr)
	done := func() {}
	if relay {
		errOut, done = c.relay(node)
	}
	err := c.exec(ctx, node, call, stdin, &stdout, errOut)
	done()
	if err != nil {
		return fmt.Errorf("on %s: %w", node, err)
	}
	if err := json.Unmarshal(answer(stdout.Bytes()), out); err != nil {
		return fmt.Errorf("on %s: reading the answer of `%s`: %w (%s)", node, strings.Join(call.Argv[:min(2, len(call.Argv))], " "), err, strings.TrimSpace(stdout.String()))
	}
	return nil
}

// relay returns a writer whose lines go to Out under node's name, and a
// func that flushes it (call it once the writer is no longer written).
func (c *Client) relay(node string) (io.Writer, func()) {
	if c.Out == nil {
		return io.Discard, func() {}
	}
	pr, pw := io.Pipe()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			fmt.Fprintf(c.Out, "      %s | %s\n", node, sc.Text())
		}
		io.Copy(io.Discard, pr) // a line too long: drain, never block the writer
	}()
	return pw, func() { pw.Close(); <-finished }
}

// answer returns the JSON document in a call's stdout: all of it when it
// is one (-o json output is indented), else the last indented document at
// its end (after progress lines: the pod's log, merged, when the stream
// broke), else its last line that looks like one (a command may print
// progress on stdout before its answer).
func answer(out []byte) []byte {
	if trimmed := bytes.TrimSpace(out); json.Valid(trimmed) {
		return trimmed
	}
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if string(bytes.TrimRight(lines[i], "\r")) == "{" {
			if doc := bytes.TrimSpace(bytes.Join(lines[i:], []byte("\n"))); json.Valid(doc) {
				return doc
			}
			break
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if bytes.HasPrefix(bytes.TrimSpace(lines[i]), []byte("{")) {
			return lines[i]
		}
	}
	return out
}
