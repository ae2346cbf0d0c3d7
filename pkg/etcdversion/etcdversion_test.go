package etcdversion

import (
	"strings"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster/etcdfake"
)

func v(t *testing.T, s string) Version {
	t.Helper()
	x, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestParse(t *testing.T) {
	for in, want := range map[string]string{"3.6.16": "3.6.16", "v3.7.0": "3.7.0", "3.7.0-0": "3.7.0"} {
		if got := v(t, in).String(); got != want {
			t.Errorf("Parse(%q) = %s, want %s", in, got, want)
		}
	}
	if tag := v(t, "3.7.1").ImageTag(); tag != "3.7.1-0" {
		t.Errorf("image tag %s", tag)
	}
	for _, bad := range []string{"3.7", "three.seven.zero", "3.7.-1", ""} {
		if _, err := Parse(bad); err == nil || !strings.Contains(err.Error(), "want major.minor.patch") {
			t.Errorf("Parse(%q): %v", bad, err)
		}
	}
}

func TestCheckUpgrade(t *testing.T) {
	all := func(s string) map[string]Version {
		return map[string]Version{"h1": v(t, s), "h2": v(t, s), "h3": v(t, s)}
	}
	for _, c := range []struct {
		name    string
		running map[string]Version
		target  string
		todo    string
		err     string
	}{
		{"one minor up", all("3.6.16"), "3.7.0", "h1,h2,h3", ""},
		{"a patch up", all("3.7.0"), "3.7.3", "h1,h2,h3", ""},
		{"already there", all("3.7.0"), "3.7.0", "", ""},
		{"two minors up", all("3.6.16"), "3.8.0", "", "etcd 3.8.0 is more than one minor version ahead of the members (3.6.16 on h1, h2, h3): etcd upgrades one minor at a time; upgrade to 3.7 first"},
		{"down", all("3.7.0"), "3.6.16", "", "etcd 3.6.16 would be a downgrade (the members run 3.7.0 on h1, h2, h3)"},
		{"another major", all("3.7.0"), "4.0.0", "", "another major version"},
		{"an interrupted upgrade goes on", map[string]Version{"h1": v(t, "3.6.16"), "h2": v(t, "3.7.0"), "h3": v(t, "3.7.0")}, "3.7.0", "h1", ""},
		{"an interrupted upgrade elsewhere", map[string]Version{"h1": v(t, "3.6.16"), "h2": v(t, "3.7.0")}, "3.7.1", "",
			"the members run mixed versions (3.6.16 on h1; 3.7.0 on h2), left by an upgrade that did not finish: finish it first (upgrade --version 3.7.0)"},
	} {
		todo, err := CheckUpgrade(c.running, v(t, c.target))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want an error with %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || strings.Join(todo, ",") != c.todo {
			t.Errorf("%s: todo %v, %v; want %s", c.name, todo, err, c.todo)
		}
	}
}

// Learners are left out; a voter that does not answer is refused by name.
func TestOfMembers(t *testing.T) {
	up := func(m etcdcluster.Member, v string) etcdcluster.Status {
		st := etcdfake.Up(m, 1)
		st.Version = v
		return st
	}
	m1, m2, m3 := etcdfake.Member(1, "cp-1"), etcdfake.Member(2, "cp-2"), etcdfake.Member(3, "cp-3")
	name := func(m etcdcluster.Member) string { return m.Name }
	got, err := OfMembers([]etcdcluster.Status{up(m1, "3.6.16"), up(m2, "3.7.0"), up(etcdfake.Learner(m3), "")}, name)
	if err != nil || len(got) != 2 || got["cp-1"].String() != "3.6.16" || got["cp-2"].String() != "3.7.0" {
		t.Errorf("versions %v, %v", got, err)
	}
	if _, err := OfMembers([]etcdcluster.Status{up(m1, "3.7.0"), etcdfake.Down(m2)}, name); err == nil || !strings.Contains(err.Error(), "member cp-2 does not answer") {
		t.Errorf("a member down: %v", err)
	}
}
