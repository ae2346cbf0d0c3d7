// Package etcdmetrics reads what a member's plain-HTTP metrics listener
// (kubeadm's --listen-metrics-urls=http://127.0.0.1:2381) says about it:
// its ID, whether it knows a leader, its database size and revision.
//
// It is the quick way to see members answer (before and after a change
// that needs no more than that: a defragmentation): one HTTP GET through a
// port-forward, where etcd's own API costs a process started in the etcd
// container (an exec) to present the host's client certificate. A member
// that is down, or was added and never started, has no metrics to read;
// the others name it among their known peers (etcd 3.6 and later), so the
// members' IDs can be checked against the pods read, but not their names
// or URLs: only the member list has those.
package etcdmetrics

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Sample is one read of a member's metrics.
type Sample struct {
	ServerID       uint64 // etcd_server_id's server_id label
	HasLeader      bool
	IsLeader       bool
	DBSize         int64
	DBSizeInUse    int64
	Revision       int64  // 0 when not reported
	CommittedIndex uint64 // 0 when not reported
	Version        string // "" when not reported
	IsLearner      bool
	// KnownPeers are the members this member knows (itself included), from
	// etcd_network_known_peers; nil when the metric is not there (etcd
	// before 3.6), which says nothing about the membership.
	KnownPeers []uint64
}

// maxBody bounds what is read of one metrics page (a member's is about
// 100 KiB).
const maxBody = 16 << 20

// Get reads base's /metrics (base is "http://host:port") with client.
func Get(ctx context.Context, client *http.Client, base string) (Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/metrics", nil)
	if err != nil {
		return Sample{}, fmt.Errorf("etcd metrics at %s: %w", base, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return Sample{}, fmt.Errorf("etcd metrics at %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Sample{}, fmt.Errorf("etcd metrics at %s: %s", base, resp.Status)
	}
	s, err := Parse(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return Sample{}, fmt.Errorf("etcd metrics at %s: %w", base, err)
	}
	return s, nil
}

// Health is what a member's /health says: "" when it is healthy, else
// etcd's reason ("ALARM NOSPACE", "RAFT NO LEADER", ...). Asked with
// serializable=true, a member answers from its own state without a raft
// round trip; the alarms it checks first are the cluster's (every member
// applies them all). The alarms' metric is no substitute: a member that
// restarted under an alarm does not count it.
func Health(ctx context.Context, client *http.Client, base string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/health?serializable=true", nil)
	if err != nil {
		return "", fmt.Errorf("etcd health at %s: %w", base, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("etcd health at %s: %w", base, err)
	}
	defer resp.Body.Close()
	var h struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("etcd health at %s: %w", base, err)
	}
	if err := json.Unmarshal(bytes.TrimSpace(body), &h); err != nil || h.Health == "" {
		return "", fmt.Errorf("etcd health at %s: %s: not etcd's answer: %q", base, resp.Status, truncate(string(body), 200))
	}
	switch {
	case h.Health == "true" && resp.StatusCode == http.StatusOK:
		return "", nil
	case h.Reason == "":
		return "unhealthy", nil
	}
	return h.Reason, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Parse reads the metrics Sample needs from Prometheus' text format. A page
// without etcd_server_id, etcd_server_has_leader or the database size is
// not an etcd member's (or one too old to tell its ID), and is an error.
func Parse(r io.Reader) (Sample, error) {
	var s Sample
	var haveID, haveLeader, haveSize bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, value, ok := splitLine(line)
		if !ok {
			continue
		}
		switch name {
		case "etcd_server_id":
			id, err := strconv.ParseUint(labels["server_id"], 16, 64)
			if err != nil {
				return Sample{}, fmt.Errorf("etcd_server_id has server_id %q, not a member ID", labels["server_id"])
			}
			s.ServerID, haveID = id, true
		case "etcd_server_has_leader":
			s.HasLeader, haveLeader = value == 1, true
		case "etcd_server_is_leader":
			s.IsLeader = value == 1
		case "etcd_mvcc_db_total_size_in_bytes":
			s.DBSize, haveSize = int64(value), true
		case "etcd_mvcc_db_total_size_in_use_in_bytes":
			s.DBSizeInUse = int64(value)
		case "etcd_debugging_mvcc_current_revision":
			s.Revision = int64(value)
		case "etcd_server_proposals_committed_total":
			s.CommittedIndex = uint64(value)
		case "etcd_server_version":
			s.Version = labels["server_version"]
		case "etcd_server_is_learner":
			s.IsLearner = value == 1
		case "etcd_network_known_peers":
			// Removed members stay listed, at 0.
			id, err := strconv.ParseUint(labels["Remote"], 16, 64)
			if err != nil {
				return Sample{}, fmt.Errorf("etcd_network_known_peers has Remote %q, not a member ID", labels["Remote"])
			}
			if s.KnownPeers == nil {
				s.KnownPeers = []uint64{}
			}
			if value == 1 {
				s.KnownPeers = append(s.KnownPeers, id)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Sample{}, fmt.Errorf("reading metrics: %w", err)
	}
	var missing []string
	if !haveID {
		missing = append(missing, "etcd_server_id")
	}
	if !haveLeader {
		missing = append(missing, "etcd_server_has_leader")
	}
	if !haveSize {
		missing = append(missing, "etcd_mvcc_db_total_size_in_bytes")
	}
	if len(missing) > 0 {
		return Sample{}, fmt.Errorf("not an etcd member's metrics: no %s", strings.Join(missing, ", "))
	}
	return s, nil
}

// splitLine splits `name{k="v",...} value [timestamp]`. Label values with
// escaped quotes are not needed here and end the labels early, harmlessly.
func splitLine(line string) (name string, labels map[string]string, value float64, ok bool) {
	rest := line
	if i := strings.IndexAny(rest, "{ "); i < 0 {
		return "", nil, 0, false
	} else {
		name, rest = rest[:i], rest[i:]
	}
	if strings.HasPrefix(rest, "{") {
		end := strings.Index(rest, "}")
		if end < 0 {
			return "", nil, 0, false
		}
		labels = map[string]string{}
		for _, kv := range strings.Split(rest[1:end], ",") {
			k, v, found := strings.Cut(kv, "=")
			if found {
				labels[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
			}
		}
		rest = rest[end+1:]
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", nil, 0, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return "", nil, 0, false
	}
	return name, labels, v, true
}

// LoopbackPort finds in etcd's arguments a --listen-metrics-urls URL that
// serves plain HTTP on the host's loopback (kubeadm's default is
// http://127.0.0.1:2381) and returns its port: a port-forward to the etcd
// pod (host network) reaches it there. ok is false when there is none (no
// flag, or only https, or only other addresses): then the metrics are not
// reachable this way and etcd's API must be asked.
func LoopbackPort(args []string) (port uint16, ok bool) {
	for i, a := range args {
		v, found := strings.CutPrefix(a, "--listen-metrics-urls=")
		if !found && a == "--listen-metrics-urls" && i+1 < len(args) {
			v, found = args[i+1], true
		}
		if !found {
			continue
		}
		for _, raw := range strings.Split(v, ",") {
			u, err := url.Parse(strings.TrimSpace(raw))
			if err != nil || u.Scheme != "http" {
				continue
			}
			host, p := u.Hostname(), u.Port()
			// A listener on every address (0.0.0.0, ::) serves loopback too.
			if ip := net.ParseIP(host); (ip == nil || !(ip.IsLoopback() || ip.IsUnspecified())) && host != "localhost" {
				continue
			}
			n, err := strconv.ParseUint(p, 10, 16)
			if err != nil || n == 0 {
				continue
			}
			return uint16(n), true
		}
	}
	return 0, false
}
