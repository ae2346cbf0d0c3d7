// Package etcdctl reads an etcd cluster's state from what etcdctl prints
// with `-w json`: the command lines to run inside an etcd static pod (with
// the host's own kubeadm client certificate, by path) and the decoding of
// their output into etcdcluster's types.
//
// The project otherwise talks to etcd with etcd's Go client, never by
// shelling out to etcdctl. This package exists for two paths of the plugin:
// `status`, which issue #9 asks to answer at the speed of
// `kubectl exec etcd-h1 -- etcdctl endpoint status --cluster`, and the
// maintenance verbs (defrag, alarm), which must work under etcd's NOSPACE
// alarm, when the apiserver cannot create the host pod the Go client's
// certificate would need. Running the
// etcdctl that kubeadm's etcd image already ships, inside the etcd pod that
// already runs, needs no host pod and no signed certificate, and no key
// ever leaves its host: only file paths cross the apiserver.
package etcdctl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

// Defaults are kubeadm's layout: its etcd manifest mounts the host's
// /etc/kubernetes/pki/etcd at the same path, and the healthcheck client
// certificate is the one kubeadm makes for talking to the local member.
const (
	DefaultCertDir  = "/etc/kubernetes/pki/etcd"
	DefaultEndpoint = "https://127.0.0.1:2379"
)

// Access is how etcdctl inside an etcd pod reaches its member: file paths
// on the host (mounted into the pod), never their contents.
type Access struct {
	CACert, Cert, Key string
	Endpoint          string
}

// AccessFromArgs finds the certificate directory and the loopback client
// URL in an etcd container's command line (kubeadm's --trusted-ca-file and
// --listen-client-urls: https://127.0.0.1:2379, or https://[::1]:2379 on an
// IPv6 control plane, whose members do not listen on 127.0.0.1), so a
// cluster with another certificatesDir works too; kubeadm's defaults fill
// what is missing.
func AccessFromArgs(args []string) Access {
	a := Access{Endpoint: DefaultEndpoint}
	dir := DefaultCertDir
	for _, arg := range args {
		if v, ok := strings.CutPrefix(arg, "--trusted-ca-file="); ok && v != "" {
			dir = path.Dir(v)
		}
		if v, ok := strings.CutPrefix(arg, "--listen-client-urls="); ok {
			for _, u := range strings.Split(v, ",") {
				if strings.HasPrefix(u, "https://127.0.0.1:") || strings.HasPrefix(u, "https://[::1]:") {
					a.Endpoint = u
					break
				}
			}
		}
	}
	a.CACert, a.Cert, a.Key = path.Join(dir, "ca.crt"), path.Join(dir, "healthcheck-client.crt"), path.Join(dir, "healthcheck-client.key")
	return a
}

// WithEndpoints is a, asking other members' client URLs (from inside the
// same pod: each member's server certificate carries its host's address).
func (a Access) WithEndpoints(urls ...string) Access {
	a.Endpoint = strings.Join(urls, ",")
	return a
}

// CommandTimeout bounds each call etcdctl makes (endpoint status makes one
// per endpoint, one after another), as etcdcluster's MemberTimeout does.
const CommandTimeout = 5 * time.Second

// Command returns the argv of one etcdctl call with JSON output. The
// timeouts bound each endpoint etcdctl asks (endpoint status asks the
// members one after another).
func (a Access) Command(sub ...string) []string {
	return a.CommandWithin(CommandTimeout, sub...)
}

// CommandWithin is Command with another bound on each call: a defrag
// rewrites a whole database file and takes longer than any read.
func (a Access) CommandWithin(timeout time.Duration, sub ...string) []string {
	return append([]string{"etcdctl",
		"--cacert=" + a.CACert, "--cert=" + a.Cert, "--key=" + a.Key,
		"--endpoints=" + a.Endpoint, "--dial-timeout=2s", "--command-timeout=" + timeout.String(), "-w", "json"}, sub...)
}

// The subcommands status needs.
var (
	MemberList = []string{"member", "list"}
	// EndpointStatus asks the --endpoints given, not the whole cluster:
	// --cluster asks the members one after another, waiting out its command
	// timeout on each dead one.
	EndpointStatus = []string{"endpoint", "status"}
	AlarmList      = []string{"alarm", "list"}
	// AlarmDisarm clears every active alarm: etcdctl has no way to name one.
	AlarmDisarm = []string{"alarm", "disarm"}
	Defrag      = []string{"defrag"}
)

// Compact is `compact REV --physical`: the call returns once every member
// has applied the compaction to its database.
func Compact(rev int64) []string {
	return []string{"compact", strconv.FormatInt(rev, 10), "--physical"}
}

// Get is `get KEY`.
func Get(key string) []string { return []string{"get", key} }

// The JSON shapes below are etcdctl's: encoding/json of etcd's protobuf
// response types. IDs are uint64 printed as JSON numbers (they exceed a
// float64's 53 bits), so they are decoded into uint64, never through any.

type header struct {
	ClusterID uint64 `json:"cluster_id"`
	MemberID  uint64 `json:"member_id"`
	Revision  int64  `json:"revision"`
	RaftTerm  uint64 `json:"raft_term"`
}

type member struct {
	ID         uint64   `json:"ID"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
	IsLearner  bool     `json:"isLearner"`
}

type memberList struct {
	Header  *header  `json:"header"`
	Members []member `json:"members"`
}

type endpointStatus struct {
	Endpoint string `json:"Endpoint"`
	Status   *struct {
		Header           *header  `json:"header"`
		Version          string   `json:"version"`
		DBSize           int64    `json:"dbSize"`
		Leader           uint64   `json:"leader"`
		RaftIndex        uint64   `json:"raftIndex"`
		RaftTerm         uint64   `json:"raftTerm"`
		RaftAppliedIndex uint64   `json:"raftAppliedIndex"`
		Errors           []string `json:"errors"`
		DBSizeInUse      int64    `json:"dbSizeInUse"`
		IsLearner        bool     `json:"isLearner"`
	} `json:"Status"`
}

type alarmList struct {
	Alarms []struct {
		MemberID uint64 `json:"memberID"`
		Alarm    int32  `json:"alarm"`
	} `json:"alarms"`
}

type rangeResponse struct {
	Kvs []struct {
		Key   []byte `json:"key"` // base64 in JSON, as encoding/json writes []byte
		Value []byte `json:"value"`
	} `json:"kvs"`
}

// decode reads the one JSON document etcdctl printed, refusing anything else
// (an etcdctl without -w json, or another program answering).
func decode(what string, out []byte, v any) error {
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return fmt.Errorf("etcdctl %s printed nothing", what)
	}
	// Unknown fields are fine (a newer etcd adds some); only the shape matters.
	dec := json.NewDecoder(bytes.NewReader(out))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("reading etcdctl %s's JSON: %w (output: %.200q)", what, err, out)
	}
	if dec.More() {
		return fmt.Errorf("reading etcdctl %s's JSON: more than one document (output: %.200q)", what, out)
	}
	return nil
}

// ParseMemberList decodes `member list -w json` into members sorted by ID,
// as etcdcluster.Client.Members returns them.
func ParseMemberList(stdout []byte) ([]etcdcluster.Member, error) {
	var l memberList
	if err := decode("member list", stdout, &l); err != nil {
		return nil, err
	}
	if l.Header == nil {
		return nil, fmt.Errorf("etcdctl member list: no response header in %.200q", stdout)
	}
	out := make([]etcdcluster.Member, 0, len(l.Members))
	for _, m := range l.Members {
		if m.ID == 0 {
			return nil, fmt.Errorf("etcdctl member list: a member without an ID in %.200q", stdout)
		}
		out = append(out, etcdcluster.Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
	}
	slices.SortFunc(out, func(a, b etcdcluster.Member) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out, nil
}

// failedPrefix is how etcdctl endpoint status reports, on stderr, an
// endpoint that did not answer: "Failed to get the status of endpoint URL (ERR)".
const failedPrefix = "Failed to get the status of endpoint "

// failures maps endpoints to etcdctl's reason for each that did not answer.
func failures(stderr []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(stderr))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), failedPrefix)
		if !ok {
			continue
		}
		ep, why, ok := strings.Cut(rest, " (")
		if !ok {
			out[rest] = "no answer"
			continue
		}
		out[ep] = strings.TrimSuffix(why, ")")
	}
	return out
}

// Output is what one `endpoint status` call printed, of one endpoint or
// several (--endpoints a,b or --cluster), and how it exited.
type Output struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// StatusOf is m's Status from an endpoint status call that asked about it
// (one endpoint, or --cluster), as etcdcluster.Client.Statuses makes it: a
// member with no client URL (or no call) has not started; a member etcdctl
// could not ask is a Status with Err (etcdctl then exits 1 having printed
// the members that answered, and says why on stderr); an endpoint that
// answered as another member is not this one. The error is for output that
// cannot be read. ServerCertNotAfter and Alarms are left to the caller.
func StatusOf(m etcdcluster.Member, out *Output) (etcdcluster.Status, error) {
	s := etcdcluster.Status{Member: m}
	if len(m.ClientURLs) == 0 || out == nil {
		s.Err = fmt.Errorf("member %s has no client URL: it has not started", describe(m))
		return s, nil
	}
	s.Endpoint = m.ClientURLs[0]
	var list []endpointStatus
	if len(bytes.TrimSpace(out.Stdout)) > 0 {
		if err := decode("endpoint status", out.Stdout, &list); err != nil {
			return s, err
		}
	}
	var r *endpointStatus
	for i, e := range list {
		if e.Status == nil || e.Status.Header == nil {
			return s, fmt.Errorf("etcdctl endpoint status: no status or header for %s in %.200q", e.Endpoint, out.Stdout)
		}
		if e.Endpoint == s.Endpoint {
			r = &list[i]
		}
	}
	if r == nil {
		why, said := failures(out.Stderr)[s.Endpoint]
		switch {
		case said:
		case out.ExitCode != 0 && len(bytes.TrimSpace(out.Stderr)) > 0:
			why = lastLine(out.Stderr)
		default:
			why = "etcdctl endpoint status did not report it"
		}
		s.Err = fmt.Errorf("status of member %s at %s: %s", describe(m), s.Endpoint, why)
		return s, nil
	}
	st := r.Status
	// A client URL that answers for another member (a port reused after a
	// rebuild) must not be mistaken for this member being alive.
	if got := st.Header.MemberID; got != m.ID {
		s.Err = fmt.Errorf("status of member %s at %s: the endpoint answered as member %x", describe(m), s.Endpoint, got)
		return s, nil
	}
	s.ClusterID = st.Header.ClusterID
	s.Leader = st.Leader
	s.IsLeader = st.Leader != 0 && st.Leader == m.ID
	s.RaftIndex = st.RaftIndex
	s.RaftAppliedIndex = st.RaftAppliedIndex
	s.RaftTerm = st.RaftTerm
	s.Revision = st.Header.Revision
	s.DBSize = st.DBSize
	s.DBSizeInUse = st.DBSizeInUse
	s.Version = st.Version
	s.Errors = slices.Clone(st.Errors)
	s.Healthy = s.Leader != 0
	return s, nil
}

// lastLine is the last non-empty line of out: etcdctl's error comes after
// its client's log lines.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// describe names a member in errors the way etcdcluster does.
func describe(m etcdcluster.Member) string {
	if m.Started() {
		return fmt.Sprintf("%s (%x)", m.Name, m.ID)
	}
	return fmt.Sprintf("%x (not started, peer URLs %v)", m.ID, m.PeerURLs)
}

// ParseAlarms decodes `alarm list -w json` into alarm names by member ID.
func ParseAlarms(stdout []byte) (map[uint64][]string, error) {
	var l alarmList
	if err := decode("alarm list", stdout, &l); err != nil {
		return nil, err
	}
	out := map[uint64][]string{}
	for _, a := range l.Alarms {
		t := etcdserverpb.AlarmType(a.Alarm)
		if t != etcdserverpb.AlarmType_NONE {
			out[a.MemberID] = append(out[a.MemberID], t.String())
		}
	}
	return out, nil
}

// ParseGet decodes `get KEY -w json`: the value of the first key, and
// whether there was one.
func ParseGet(stdout []byte) ([]byte, bool, error) {
	var r rangeResponse
	if err := decode("get", stdout, &r); err != nil {
		return nil, false, err
	}
	if len(r.Kvs) == 0 {
		return nil, false, nil
	}
	return r.Kvs[0].Value, true, nil
}
