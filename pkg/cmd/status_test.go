package cmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/workstation"
)

// TestPrintClusterStatus pins the plugin's status tables, byte for byte.
// The status is read from -o json's form, whose field names are the contract.
func TestPrintClusterStatus(t *testing.T) {
	soon := time.Now().Add(20*24*time.Hour + 12*time.Hour).UTC().Format(time.RFC3339)
	later := time.Now().Add(300*24*time.Hour + 12*time.Hour).UTC().Format(time.RFC3339)
	var st workstation.ClusterStatus
	err := json.Unmarshal([]byte(fmt.Sprintf(`{
  "members": [
    {"host": "cp-a", "name": "cp-a", "id": "1", "peerURL": "https://10.0.0.1:2380", "clientURL": "https://10.0.0.1:2379",
     "leader": true, "healthy": true, "dbSize": 3145728, "dbSizeInUse": 1048576, "raftIndex": 120, "raftTerm": 3,
     "revision": 77, "version": "3.6.5", "alarms": ["NOSPACE"], "serverCertNotAfter": %q},
    {"host": "cp-b", "name": "cp-b", "id": "2", "peerURL": "https://10.0.0.2:2380", "clientURL": "https://10.0.0.2:2379",
     "error": "status of member cp-b (2): cannot connect to https://10.0.0.2:2379: connection refused"},
    {"host": "cp-c", "name": "cp-c", "id": "3", "peerURL": "https://10.0.0.3:2380", "clientURL": "https://10.0.0.3:2379",
     "learner": true, "healthy": true, "dbSize": 2097152, "dbSizeInUse": 2097152, "raftIndex": 118, "raftTerm": 3,
     "revision": 76, "version": "3.6.5", "serverCertNotAfter": %q},
    {"name": "stray", "id": "9", "peerURL": "https://10.0.0.9:2380", "clientURL": "https://10.0.0.9:2379"},
    {"name": "(unstarted a)", "id": "a", "peerURL": "https://10.0.0.10:2380", "error": "member (unstarted a) has never started: it has no client URL"}
  ],
  "hosts": [
    {"node": "cp-a", "address": "10.0.0.1", "ready": true, "etcdPod": true, "member": "cp-a", "apiserverEtcdServers": "https://127.0.0.1:2379"},
    {"node": "cp-b", "address": "10.0.0.2", "ready": false, "etcdPod": true, "member": "cp-b", "apiserverEtcdServers": "https://127.0.0.1:2379"},
    {"node": "cp-c", "address": "10.0.0.3", "ready": true, "etcdPod": true, "member": "cp-c", "apiserverEtcdServers": "https://127.0.0.1:2379"},
    {"node": "cp-d", "address": "10.0.0.4", "ready": true, "cutOffBy": "recover on cp-a at 2026-11-27T02:00:00Z"}
  ],
  "drift": [{"kind": "member-without-host", "member": "stray", "detail": "member stray (https://10.0.0.9:2380) runs on no control-plane node: remove it with `+"`kubectl etcd remove 9`"+`"}],
  "summary": "3 voting members, 1 healthy (NO QUORUM, tolerates 0 failure(s)); 4 control-plane nodes"
}`, later, soon)), &st)
	if err != nil {
		t.Fatal(err)
	}
	// Why a member is down goes under the table, its cell staying short.
	reasons := "DOWN cp-b: status of member cp-b (2): cannot connect to https://10.0.0.2:2379: connection refused\n" +
		"unstarted (unstarted a): member (unstarted a) has never started: it has no client URL\n"
	// The tables line up with spaces; a cell left empty at the end of a line leaves them trailing.
	hosts := "\n" +
		"CONTROL-PLANE NODE  READY  ETCD MEMBER                                                 APISERVER READS ETCD AT\n" +
		"cp-a                true   cp-a                                                        https://127.0.0.1:2379\n" +
		"cp-b                false  cp-b                                                        https://127.0.0.1:2379\n" +
		"cp-c                true   cp-c                                                        https://127.0.0.1:2379\n" +
		"cp-d                true   - (cut off by the recover on cp-a at 2026-11-27T02:00:00Z)  \n" +
		"Drift: member stray (https://10.0.0.9:2380) runs on no control-plane node: remove it with `kubectl etcd remove 9`\n" +
		"\n" +
		"3 voting members, 1 healthy (NO QUORUM, tolerates 0 failure(s)); 4 control-plane nodes\n"
	for _, tc := range []struct{ output, want string }{
		{"",
			"HOST    MEMBER         ID  ROLE     LEADER  HEALTH                   DB SIZE  RAFT INDEX  REVISION  VERSION\n" +
				"cp-a    cp-a           1   voter    *       ALARM NOSPACE (healthy)  3.0 MiB  120         77        3.6.5\n" +
				"cp-b    cp-b           2   voter            DOWN                     0.0 MiB  0           0         \n" +
				"cp-c    cp-c           3   learner          healthy                  2.0 MiB  118         76        3.6.5\n" +
				"(none)  stray          9   voter            DOWN                     0.0 MiB  0           0         \n" +
				"(none)  (unstarted a)  a   voter            unstarted                0.0 MiB  0           0         \n" +
				reasons},
		{"wide",
			"HOST    MEMBER         ID  ROLE     LEADER  HEALTH                   DB SIZE  RAFT INDEX  REVISION  VERSION  CERT EXPIRES  PEER URL                RAFT TERM  DB IN USE  ALARMS\n" +
				"cp-a    cp-a           1   voter    *       ALARM NOSPACE (healthy)  3.0 MiB  120         77        3.6.5    300d          https://10.0.0.1:2380   3          1.0 MiB    NOSPACE\n" +
				"cp-b    cp-b           2   voter            DOWN                     0.0 MiB  0           0                  -             https://10.0.0.2:2380   0          0.0 MiB    \n" +
				"cp-c    cp-c           3   learner          healthy                  2.0 MiB  118         76        3.6.5    20d (RENEW)   https://10.0.0.3:2380   3          2.0 MiB    \n" +
				"(none)  stray          9   voter            DOWN                     0.0 MiB  0           0                  -             https://10.0.0.9:2380   0          0.0 MiB    \n" +
				"(none)  (unstarted a)  a   voter            unstarted                0.0 MiB  0           0                  -             https://10.0.0.10:2380  0          0.0 MiB    \n" +
				reasons},
	} {
		var b bytes.Buffer
		if err := printClusterStatus(&b, &st, tc.output); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want+hosts {
			t.Errorf("status -o %q:\n%s\nwant:\n%s", tc.output, b.String(), tc.want+hosts)
		}
	}
}
