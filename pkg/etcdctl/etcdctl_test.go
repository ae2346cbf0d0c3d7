package etcdctl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

// The IDs of the captured bed's members (see testdata/README.md): all above
// 2^53, so a decode through float64 would change them.
const (
	idH1 uint64 = 5735068592338776514 // 4f970e7fc0da31c2, the leader
	idH2 uint64 = 4708037332500582587
	idH3 uint64 = 2945090400751739879
	idL1 uint64 = 15615519140593419872 // d8b577ec7e624660, the learner
)

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if os.IsNotExist(err) && (strings.HasSuffix(name, ".stderr") || strings.HasSuffix(name, ".rc")) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// output is a captured endpoint status call.
func output(t *testing.T, state, call string) *Output {
	t.Helper()
	o := &Output{Stdout: read(t, state+"."+call+".stdout"), Stderr: read(t, state+"."+call+".stderr")}
	if rc := strings.TrimSpace(string(read(t, state+"."+call+".rc"))); rc != "" {
		var err error
		if o.ExitCode, err = strconv.Atoi(rc); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

func members(t *testing.T, state string) map[uint64]etcdcluster.Member {
	t.Helper()
	ms, err := ParseMemberList(read(t, state+".member-list.stdout"))
	if err != nil {
		t.Fatalf("%s: %v", state, err)
	}
	for i := 1; i < len(ms); i++ {
		if ms[i-1].ID >= ms[i].ID {
			t.Errorf("%s: members not sorted by ID: %x before %x", state, ms[i-1].ID, ms[i].ID)
		}
	}
	out := map[uint64]etcdcluster.Member{}
	for _, m := range ms {
		out[m.ID] = m
	}
	return out
}

func statusOf(t *testing.T, m etcdcluster.Member, o *Output) etcdcluster.Status {
	t.Helper()
	s, err := StatusOf(m, o)
	if err != nil {
		t.Fatalf("status of %s: %v", m, err)
	}
	return s
}

func TestHealthy(t *testing.T) {
	ms := members(t, "healthy")
	if len(ms) != 3 {
		t.Fatalf("want 3 members, got %v", ms)
	}
	h1 := ms[idH1]
	if h1.Name != "h1" || h1.IsLearner || len(h1.PeerURLs) != 1 || h1.PeerURLs[0] != "https://10.99.42.11:2380" ||
		len(h1.ClientURLs) != 1 || h1.ClientURLs[0] != "https://10.99.42.11:2379" {
		t.Errorf("h1 = %+v", h1)
	}
	out := output(t, "healthy", "endpoint-status")
	for id, m := range ms {
		s := statusOf(t, m, out)
		if !s.Healthy || s.Err != nil || s.Leader != idH1 || s.IsLeader != (id == idH1) {
			t.Errorf("%s: healthy %v err %v leader %x isLeader %v", m, s.Healthy, s.Err, s.Leader, s.IsLeader)
		}
		if s.Revision != 593 || s.RaftIndex != 696 || s.RaftTerm != 2 || s.Version != "3.7.0" || s.Endpoint != m.ClientURLs[0] || s.ClusterID != 12865686287895937653 {
			t.Errorf("%s: %+v", m, s)
		}
	}
	if s := statusOf(t, ms[idH3], out); s.DBSize != 897024 || s.DBSizeInUse != 884736 {
		t.Errorf("h3 DB size %d in use %d", s.DBSize, s.DBSizeInUse)
	}
	alarms, err := ParseAlarms(read(t, "healthy.alarm-list.stdout"))
	if err != nil || len(alarms) != 0 {
		t.Errorf("alarms %v, %v", alarms, err)
	}
	if v, found, err := ParseGet(read(t, "healthy.get-marker.stdout")); err != nil || found || v != nil {
		t.Errorf("marker %q %v %v", v, found, err)
	}
}

func TestUnstartedLearner(t *testing.T) {
	ms := members(t, "unstarted-learner")
	l := ms[idL1]
	if l.Started() || !l.IsLearner || len(l.ClientURLs) != 0 || l.PeerURLs[0] != "https://10.99.42.11:12380" {
		t.Fatalf("unstarted learner = %+v", l)
	}
	// endpoint status --cluster knows nothing of it (no client URL).
	s := statusOf(t, l, output(t, "unstarted-learner", "endpoint-status"))
	if s.Healthy || s.Err == nil || s.Err.Error() != "member d8b577ec7e624660 (not started, peer URLs [https://10.99.42.11:12380]) has no client URL: it has not started" {
		t.Errorf("unstarted learner status: healthy %v err %v", s.Healthy, s.Err)
	}
	if s := statusOf(t, l, nil); s.Err == nil || !strings.Contains(s.Err.Error(), "it has not started") {
		t.Errorf("no call: %v", s.Err)
	}
	if s := statusOf(t, ms[idH2], output(t, "unstarted-learner", "endpoint-status")); !s.Healthy {
		t.Errorf("h2: %v", s.Err)
	}
}

func TestStartedLearner(t *testing.T) {
	ms := members(t, "learner")
	l := ms[idL1]
	if l.Name != "l1" || !l.IsLearner || l.ClientURLs[0] != "https://10.99.42.11:12379" {
		t.Fatalf("learner = %+v", l)
	}
	s := statusOf(t, l, output(t, "learner", "endpoint-status"))
	if !s.Healthy || s.IsLeader || s.Leader != idH1 || s.Revision != 649 {
		t.Errorf("learner status %+v", s)
	}
	if ms[idH1].IsLearner {
		t.Error("h1 read as a learner")
	}
}

func TestDeadMembers(t *testing.T) {
	ms := members(t, "dead-members")
	out := output(t, "dead-members", "endpoint-status")
	if out.ExitCode != 1 {
		t.Fatalf("captured exit code %d", out.ExitCode)
	}
	for _, id := range []uint64{idH3, idL1} {
		s := statusOf(t, ms[id], out)
		want := "status of member " + describe(ms[id]) + " at " + ms[id].ClientURLs[0] + ": context deadline exceeded"
		if s.Healthy || s.Err == nil || s.Err.Error() != want {
			t.Errorf("%s: healthy %v, err %v, want %q", ms[id], s.Healthy, s.Err, want)
		}
	}
	for _, id := range []uint64{idH1, idH2} {
		if s := statusOf(t, ms[id], out); !s.Healthy || s.Err != nil {
			t.Errorf("%s: healthy %v, err %v", ms[id], s.Healthy, s.Err)
		}
	}
	// One endpoint asked alone: etcdctl prints null and exits 1.
	s := statusOf(t, ms[idH3], output(t, "dead-members", "endpoint-status-10.99.42.13"))
	if s.Err == nil || !strings.HasSuffix(s.Err.Error(), "at https://10.99.42.13:2379: context deadline exceeded") {
		t.Errorf("h3 alone: %v", s.Err)
	}
	if s := statusOf(t, ms[idH2], output(t, "dead-members", "endpoint-status-10.99.42.12")); !s.Healthy {
		t.Errorf("h2 alone: %v", s.Err)
	}
	// An output that does not mention the member at all.
	s = statusOf(t, ms[idH3], output(t, "dead-members", "endpoint-status-10.99.42.12"))
	if s.Err == nil || !strings.HasSuffix(s.Err.Error(), "etcdctl endpoint status did not report it") {
		t.Errorf("h3 from h2's answer: %v", s.Err)
	}
}

func TestAnsweredAsAnotherMember(t *testing.T) {
	ms := members(t, "healthy")
	impostor := ms[idH2]
	impostor.ID = 0xabc
	s := statusOf(t, impostor, output(t, "healthy", "endpoint-status"))
	if s.Healthy || s.Err == nil || !strings.HasSuffix(s.Err.Error(), "the endpoint answered as member 41564f0278f990bb") {
		t.Errorf("healthy %v err %v", s.Healthy, s.Err)
	}
}

func TestAlarms(t *testing.T) {
	alarms, err := ParseAlarms(read(t, "alarm.alarm-list.stdout"))
	if err != nil {
		t.Fatal(err)
	}
	if len(alarms) != 1 || len(alarms[idH2]) != 1 || alarms[idH2][0] != "NOSPACE" {
		t.Errorf("alarms = %v", alarms)
	}
	// Every member lists the cluster's alarms among its status errors: the
	// exec path asks for the alarm list only then.
	ms := members(t, "healthy")
	s := statusOf(t, ms[idH1], output(t, "alarm", "endpoint-status"))
	if !s.Healthy || len(s.Errors) != 1 || !strings.Contains(s.Errors[0], "NOSPACE") {
		t.Errorf("h1 with an alarm: healthy %v errors %q", s.Healthy, s.Errors)
	}
}

func TestMarker(t *testing.T) {
	v, found, err := ParseGet(read(t, "marker.get-marker.stdout"))
	if err != nil || !found {
		t.Fatalf("found %v err %v", found, err)
	}
	var m struct {
		Verb    string `json:"verb"`
		Removed []struct {
			ID uint64 `json:"id"`
		} `json:"removedMembers"`
	}
	if err := json.Unmarshal(v, &m); err != nil || m.Verb != "recover" || len(m.Removed) != 1 || m.Removed[0].ID != 12345678901234567890 {
		t.Errorf("marker %s: %+v %v", v, m, err)
	}
}

func TestUnreadableOutput(t *testing.T) {
	for _, c := range []struct {
		name, out, want string
		parse           func([]byte) error
	}{
		{"member list nothing", "", "etcdctl member list printed nothing", func(b []byte) error { _, err := ParseMemberList(b); return err }},
		{"member list table", "+----+\n| ID |\n", "reading etcdctl member list's JSON", func(b []byte) error { _, err := ParseMemberList(b); return err }},
		{"member list no header", `{"members":[]}`, "no response header", func(b []byte) error { _, err := ParseMemberList(b); return err }},
		{"member list two documents", `{"header":{}} {"header":{}}`, "more than one document", func(b []byte) error { _, err := ParseMemberList(b); return err }},
		{"member without ID", `{"header":{},"members":[{"name":"h1"}]}`, "a member without an ID", func(b []byte) error { _, err := ParseMemberList(b); return err }},
		{"ID as a string", `{"header":{},"members":[{"ID":"4f970e7fc0da31c2"}]}`, "reading etcdctl member list's JSON", func(b []byte) error { _, err := ParseMemberList(b); return err }},
		{"alarms garbage", "Error: unknown command", "reading etcdctl alarm list's JSON", func(b []byte) error { _, err := ParseAlarms(b); return err }},
		{"get garbage", "OK", "reading etcdctl get's JSON", func(b []byte) error { _, _, err := ParseGet(b); return err }},
		{"status garbage", "h1 is healthy", "reading etcdctl endpoint status's JSON", func(b []byte) error {
			_, err := StatusOf(etcdcluster.Member{ID: 1, Name: "h1", ClientURLs: []string{"https://a:2379"}}, &Output{Stdout: b})
			return err
		}},
		{"status without status", `[{"Endpoint":"https://a:2379"}]`, "no status or header for https://a:2379", func(b []byte) error {
			_, err := StatusOf(etcdcluster.Member{ID: 1, Name: "h1", ClientURLs: []string{"https://a:2379"}}, &Output{Stdout: b})
			return err
		}},
	} {
		err := c.parse([]byte(c.out))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

func TestStatusErrorFromStderr(t *testing.T) {
	// etcdctl failing before it asked anything (a bad certificate path, say):
	// the member's error is etcdctl's last line.
	m := etcdcluster.Member{ID: 1, Name: "h1", ClientURLs: []string{"https://a:2379"}}
	s := statusOf(t, m, &Output{ExitCode: 1, Stderr: []byte("{\"level\":\"warn\"}\nError: open /etc/kubernetes/pki/etcd/healthcheck-client.crt: no such file or directory\n")})
	if s.Err == nil || s.Err.Error() != "status of member h1 (1) at https://a:2379: Error: open /etc/kubernetes/pki/etcd/healthcheck-client.crt: no such file or directory" {
		t.Errorf("err %v", s.Err)
	}
}

func TestAccess(t *testing.T) {
	a := AccessFromArgs([]string{"etcd", "--trusted-ca-file=/srv/pki/etcd/ca.crt", "--listen-client-urls=https://10.0.0.1:2379,https://127.0.0.1:12379"})
	want := Access{CACert: "/srv/pki/etcd/ca.crt", Cert: "/srv/pki/etcd/healthcheck-client.crt", Key: "/srv/pki/etcd/healthcheck-client.key", Endpoint: "https://127.0.0.1:12379"}
	if a != want {
		t.Errorf("AccessFromArgs = %+v, want %+v", a, want)
	}
	// kubeadm's IPv6 control plane: its member listens on [::1], not 127.0.0.1.
	if v6 := AccessFromArgs([]string{"etcd", "--listen-client-urls=https://[::1]:2379,https://[fd00:99::11]:2379"}); v6.Endpoint != "https://[::1]:2379" {
		t.Errorf("IPv6 member: endpoint %s, want https://[::1]:2379", v6.Endpoint)
	}
	if d := AccessFromArgs(nil); d.CACert != DefaultCertDir+"/ca.crt" || d.Endpoint != DefaultEndpoint {
		t.Errorf("defaults = %+v", d)
	}
	argv := a.WithEndpoints("https://10.0.0.2:2379", "https://10.0.0.3:2379").Command(EndpointStatus...)
	got := strings.Join(argv, " ")
	wantArgv := "etcdctl --cacert=/srv/pki/etcd/ca.crt --cert=/srv/pki/etcd/healthcheck-client.crt --key=/srv/pki/etcd/healthcheck-client.key --endpoints=https://10.0.0.2:2379,https://10.0.0.3:2379 --dial-timeout=2s --command-timeout=5s -w json endpoint status"
	if got != wantArgv {
		t.Errorf("argv\n got %s\nwant %s", got, wantArgv)
	}
}
