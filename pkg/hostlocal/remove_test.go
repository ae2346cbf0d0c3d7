package hostlocal

import (
	"strings"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster/etcdfake"
)

func TestRemoveVerdict(t *testing.T) {
	members := []etcdcluster.Member{m1, m2, m3}
	oneDown := []etcdcluster.Status{etcdfake.Up(m1, 1), etcdfake.Up(m2, 1), etcdfake.Down(m3)}
	twoDown := []etcdcluster.Status{etcdfake.Up(m1, 1), etcdfake.Down(m2), etcdfake.Down(m3)}
	noSpace := []etcdcluster.Status{etcdfake.Up(m1, 1), etcdfake.Up(m2, 1), etcdfake.Down(m3)}
	noSpace[0].Alarms = []string{etcdcluster.AlarmNoSpace}
	corruptOnM3 := []etcdcluster.Status{etcdfake.Up(m1, 1), etcdfake.Up(m2, 1), etcdfake.Up(m3, 1)}
	corruptOnM3[2].Alarms = []string{etcdcluster.AlarmCorrupt}
	unnamed := etcdfake.Member(4, "") // added, never started
	for _, tc := range []struct {
		name     string
		members  []etcdcluster.Member
		statuses []etcdcluster.Status
		target   string
		want     uint64
		err      string
	}{
		{"a dead peer by name", members, oneDown, "cp-3", 3, ""},
		{"a dead peer by hex ID", members, oneDown, "3", 3, ""},
		{"a healthy peer while one is down would lose quorum", members, oneDown, "cp-2", 0, "so the cluster would stop"},
		{"no quorum now", members, twoDown, "cp-3", 0, "refusing to remove member cp-3"},
		{"this host's own member", members, oneDown, "cp-1", 0, "this host's own: run `kubectl-etcd leave` here"},
		{"unknown name lists the members", members, oneDown, "cp-9", 0, `"cp-9" is not a member of this cluster (members: cp-1 (1), cp-2 (2), cp-3 (3))`},
		{"empty", members, oneDown, "", 0, "is not a member"},
		{"under NOSPACE", members, noSpace, "cp-3", 0, "refusing to change the membership under an active alarm"},
		{"CORRUPT of the member removed is its fix", members, corruptOnM3, "cp-3", 3, ""},
		{"CORRUPT of another member", members, corruptOnM3, "cp-2", 0, "CORRUPT"},
		{"an unstarted member by ID", append(members[:3:3], unnamed),
			append(corruptOnM3[:0:0], etcdfake.Up(m1, 1), etcdfake.Up(m2, 1), etcdfake.Up(m3, 1), etcdfake.Down(unnamed)), "4", 4, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := RemoveVerdict(tc.members, tc.statuses, selfPeer, tc.target)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to say %q", err, tc.err)
				}
				return
			}
			if err != nil || m.ID != tc.want {
				t.Fatalf("= %x, %v; want member %x", m.ID, err, tc.want)
			}
		})
	}
}

// A name two members share (kubeadm names members after nodes; a stale
// member can keep a reused name) is not enough to pick one: the ID is.
func TestFindMemberNeverGuessesBetweenNamesakes(t *testing.T) {
	a, b := etcdfake.Member(0xa, "cp-2"), etcdfake.Member(0xb, "cp-2")
	if _, ok := findMember([]etcdcluster.Member{m1, a, b}, "cp-2"); ok {
		t.Error("picked one of two members named cp-2")
	}
	if m, ok := findMember([]etcdcluster.Member{m1, a, b}, "b"); !ok || m.ID != 0xb {
		t.Errorf("by ID: %v %v", m, ok)
	}
}
