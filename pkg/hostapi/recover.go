package hostapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// RecoverReport is the part of a host's `recover -o json` result the
// workstation reads: the verb's outcome and what its survey found. A dry
// run that refuses still reports its survey (and the refusal in Error).
type RecoverReport struct {
	VerbResult
	Survey   *RecoverSurvey `json:"survey,omitempty"`
	Resuming bool           `json:"resuming,omitempty"`
	// ConfigSource is where the host's cluster configuration came from
	// (recover.Result.ConfigSource).
	ConfigSource string `json:"configSource,omitempty"`
	// State is the host's state after a run (status --local's), when it
	// could be read.
	State *RecoverState `json:"state,omitempty"`
}

// RecoverSurvey is what a host's recover found left of the cluster.
type RecoverSurvey struct {
	Local   Survivor   `json:"local"`
	Others  []Survivor `json:"others"`
	Members []Member   `json:"members"`
	Quorum  bool       `json:"quorum"`
	Ahead   *Survivor  `json:"ahead,omitempty"`
}

// Survivor is one member as a host's survey saw it (recover.Survivor).
type Survivor struct {
	Name      string `json:"name"`
	ID        string `json:"id"`
	PeerURL   string `json:"peerURL"`
	ClientURL string `json:"clientURL,omitempty"`
	Running   bool   `json:"running"`
	Offline   bool   `json:"offline,omitempty"`
	RaftIndex uint64 `json:"raftIndex,omitempty"`
	Revision  int64  `json:"revision,omitempty"`
	Leader    string `json:"leader,omitempty"`
	ClusterID string `json:"clusterID,omitempty"`
	Error     string `json:"error,omitempty"`
}

// RecoverState is the part of the host's state after recover the
// workstation reads: where the recovered member serves.
type RecoverState struct {
	Node    string      `json:"node"`
	Address string      `json:"address"`
	Local   *MemberRow  `json:"local,omitempty"`
	Members []MemberRow `json:"members,omitempty"`
}

// RecoverSurvey runs `recover --dry-run` on node: its survey and plan,
// changing nothing. A refusal is an answer here, not an error: the report
// says why (Error) and what the survey saw; err is for a host that could
// not be asked, or whose answer could not be read.
func (c *Client) RecoverSurvey(ctx context.Context, node string) (*RecoverReport, error) {
	call := Call{Argv: []string{"recover", "--dry-run"}, JSON: true, ReadOnly: true}
	var stdout, stderr bytes.Buffer
	err := c.exec(ctx, node, call, nil, &stdout, &stderr)
	rep := &RecoverReport{}
	if derr := json.Unmarshal(answer(stdout.Bytes()), rep); derr != nil || rep.Verb == "" {
		if err != nil {
			return nil, fmt.Errorf("on %s: %w", node, err)
		}
		return nil, fmt.Errorf("on %s: reading the answer of `recover --dry-run`: %v (%s)", node, derr, strings.TrimSpace(stdout.String()))
	}
	return rep, nil
}

// RecoverRequest says how the host's recover runs.
type RecoverRequest struct {
	// SkipKubeadmConfig: see SkipKubeadmConfigFlag.
	SkipKubeadmConfig bool
}

// RecoverCall is the call Recover makes.
func RecoverCall(req RecoverRequest) Call {
	argv := []string{"recover", "--yes"}
	if req.SkipKubeadmConfig {
		argv = append(argv, "--"+SkipKubeadmConfigFlag)
	}
	return Call{Argv: argv}
}

// Recover runs `recover --yes` on node (progress relayed to Out) and
// returns its report, also when it failed part-way (then with the error).
func (c *Client) Recover(ctx context.Context, node string, req RecoverRequest) (*RecoverReport, error) {
	rep := &RecoverReport{}
	if decoded, err := c.verbInto(ctx, node, RecoverCall(req), rep); err != nil {
		if !decoded {
			rep = nil
		}
		return rep, err
	}
	return rep, nil
}

// LocalStatus writes node's `status --local` to out: for people, or with
// asJSON its -o json document.
func (c *Client) LocalStatus(ctx context.Context, node string, out io.Writer, asJSON bool) error {
	var stderr bytes.Buffer
	if err := c.exec(ctx, node, Call{Argv: []string{"status", "--local"}, JSON: asJSON, ReadOnly: true}, nil, out, &stderr); err != nil {
		return fmt.Errorf("on %s: %w", node, err)
	}
	return nil
}

// Ping runs `version --client` on node, to learn whether it answers (a
// host coming back). It needs a transport that runs any command line
// (SSH); host pods run host-local verbs only.
func (c *Client) Ping(ctx context.Context, node string) error {
	return c.exec(ctx, node, Call{Argv: []string{"version", "--client"}, Poll: true, ReadOnly: true}, nil, io.Discard, io.Discard)
}
