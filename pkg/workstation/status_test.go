package workstation

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

// TestReportMemberRows pins the member rows of `status -o json`, which
// scripts and the e2e tests parse: every field's name, and which are left
// out when empty.
func TestReportMemberRows(t *testing.T) {
	a, b, c := member(1, "cp-a", "10.0.0.1"), member(2, "cp-b", "10.0.0.2"), learner(member(3, "cp-c", "10.0.0.3"))
	stray := member(9, "stray", "10.0.0.9") // on no control-plane node, and without a status
	notAfter := time.Date(2027, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	obs := &observed{
		nodes:    threeNodes,
		etcdPods: []string{"cp-a", "cp-b", "cp-c"},
		members:  []etcdcluster.Member{a, b, c, stray},
		statuses: []etcdcluster.Status{
			{Member: a, Endpoint: a.ClientURLs[0], Healthy: true, Leader: 1, IsLeader: true, RaftIndex: 120, RaftTerm: 3, Revision: 77,
				DBSize: 3 << 20, DBSizeInUse: 1 << 20, Version: "3.6.5", Alarms: []string{"NOSPACE"}, ServerCertNotAfter: notAfter},
			{Member: b, Endpoint: b.ClientURLs[0], Err: errors.New("status of member cp-b (2): cannot connect to https://10.0.0.2:2379: connection refused")},
			{Member: c, Endpoint: c.ClientURLs[0], Healthy: true, Leader: 1, RaftIndex: 118, RaftTerm: 3, Revision: 76, DBSize: 2 << 20, DBSizeInUse: 2 << 20, Version: "3.6.5"},
		},
	}
	st := obs.report()
	// The alarm is in the summary too, with what clears it, and listed.
	const alarm = "\nALARM: etcd's NOSPACE alarm is raised (by member cp-a on cp-a): the database reached its quota and the cluster takes no writes; " +
		"free the space with `kubectl etcd defrag --all --compact`, then clear the alarm with `kubectl etcd alarm disarm`"
	if !strings.HasSuffix(st.Summary, alarm) || len(st.Alarms) != 1 || st.Alarms[0].Host != "cp-a" || st.Alarms[0].MemberID != "1" {
		t.Errorf("summary %q, alarms %+v: want the NOSPACE alarm of cp-a", st.Summary, st.Alarms)
	}
	got, err := json.MarshalIndent(st.Members, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	const want = `[
  {
    "host": "cp-a",
    "name": "cp-a",
    "id": "1",
    "peerURL": "https://10.0.0.1:2380",
    "clientURL": "https://10.0.0.1:2379",
    "leader": true,
    "learner": false,
    "started": true,
    "healthy": true,
    "dbSize": 3145728,
    "dbSizeInUse": 1048576,
    "raftIndex": 120,
    "raftTerm": 3,
    "revision": 77,
    "version": "3.6.5",
    "alarms": [
      "NOSPACE"
    ],
    "serverCertNotAfter": "2027-03-01T11:00:00Z"
  },
  {
    "host": "cp-b",
    "name": "cp-b",
    "id": "2",
    "peerURL": "https://10.0.0.2:2380",
    "clientURL": "https://10.0.0.2:2379",
    "leader": false,
    "learner": false,
    "started": true,
    "healthy": false,
    "error": "status of member cp-b (2): cannot connect to https://10.0.0.2:2379: connection refused"
  },
  {
    "host": "cp-c",
    "name": "cp-c",
    "id": "3",
    "peerURL": "https://10.0.0.3:2380",
    "clientURL": "https://10.0.0.3:2379",
    "leader": false,
    "learner": true,
    "started": true,
    "healthy": true,
    "dbSize": 2097152,
    "dbSizeInUse": 2097152,
    "raftIndex": 118,
    "raftTerm": 3,
    "revision": 76,
    "version": "3.6.5"
  },
  {
    "name": "stray",
    "id": "9",
    "peerURL": "https://10.0.0.9:2380",
    "clientURL": "https://10.0.0.9:2379",
    "leader": false,
    "learner": false,
    "started": true,
    "healthy": false
  }
]`
	if string(got) != want {
		t.Errorf("status -o json member rows:\n%s\nwant:\n%s", got, want)
	}
}

// Member URLs are built with the address bracketed when it is IPv6, as
// Go's URL parser (and etcd) require.
func TestEndpointsOfIPv6AndNames(t *testing.T) {
	nodes := []Node{{Name: "cp-1.example.internal", Address: "10.0.0.11"}, {Name: "cp-2", Address: "fd00::12"}, {Name: "cp-3", Address: "fd00::13"}}
	got := EndpointsOf(nodes, []string{"cp-1.example.internal", "cp-2"})
	want := []string{"https://10.0.0.11:2379", "https://[fd00::12]:2379"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("EndpointsOf = %v, want %v", got, want)
	}
	for _, u := range got {
		if _, err := url.Parse(u); err != nil {
			t.Errorf("%s does not parse: %v", u, err)
		}
	}
}

// An apiserver that answers but cannot read etcd (quorum lost) gets the
// host-local next step, other errors do not.
func TestControlPlaneNodesEtcdDownHint(t *testing.T) {
	for _, tc := range []struct {
		err  error
		hint bool
	}{
		{apierrors.NewTimeoutError("the server was unable to return a response in the time allotted", 30), true},
		{apierrors.NewInternalError(errors.New("etcdserver: request timed out")), true},
		{apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "", errors.New("RBAC")), false},
	} {
		cs := fake.NewClientset()
		cs.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, tc.err })
		s := &Session{Clientset: cs}
		_, err := s.ControlPlaneNodes(context.Background())
		if err == nil {
			t.Fatal("no error")
		}
		if got := strings.Contains(err.Error(), "kubectl-etcd status --local"); got != tc.hint {
			t.Errorf("%v: hint %v, want %v", err, got, tc.hint)
		}
	}
}
