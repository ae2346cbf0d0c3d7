// Package etcdversion holds what an etcd upgrade may do: etcd supports a
// rolling upgrade from one minor to the next (3.6 → 3.7), never across
// two minors at once and never down, and a cluster left with mixed
// versions by an interrupted upgrade may only go on to the version it was
// going to.
package etcdversion

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
)

// Version is an etcd release, major.minor.patch.
type Version struct{ Major, Minor, Patch int }

// Parse reads "3.6.16", "v3.6.16" or kubeadm's image tag "3.6.16-0".
func Parse(s string) (Version, error) {
	t := strings.TrimPrefix(strings.TrimSpace(s), "v")
	if i := strings.IndexAny(t, "-+"); i >= 0 {
		t = t[:i]
	}
	parts := strings.Split(t, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("etcd version %q: want major.minor.patch, e.g. 3.7.0", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return Version{}, fmt.Errorf("etcd version %q: want major.minor.patch, e.g. 3.7.0", s)
		}
		n[i] = v
	}
	return Version{n[0], n[1], n[2]}, nil
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// ImageTag is kubeadm's tag of the etcd image of v ("3.7.0-0").
func (v Version) ImageTag() string { return v.String() + "-0" }

// Compare orders versions: -1, 0, +1.
func (v Version) Compare(o Version) int {
	for _, d := range [][2]int{{v.Major, o.Major}, {v.Minor, o.Minor}, {v.Patch, o.Patch}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// CheckUpgrade says whether members running the versions running (by
// member name) may be moved to target, and which of them need it. Refused,
// naming the members: a downgrade of any member; a jump of more than one
// minor from the oldest member; mixed versions (an interrupted upgrade)
// unless target is the newest of them (going on with that upgrade).
func CheckUpgrade(running map[string]Version, target Version) (todo []string, err error) {
	if len(running) == 0 {
		return nil, fmt.Errorf("no member answered with its version: nothing to compare %s with", target)
	}
	names := make([]string, 0, len(running))
	for n := range running {
		names = append(names, n)
	}
	slices.Sort(names)
	oldest, newest := running[names[0]], running[names[0]]
	distinct := map[Version][]string{}
	for _, n := range names {
		v := running[n]
		distinct[v] = append(distinct[v], n)
		if v.Compare(oldest) < 0 {
			oldest = v
		}
		if v.Compare(newest) > 0 {
			newest = v
		}
	}
	describe := func() string {
		var parts []string
		for _, v := range sortedVersions(distinct) {
			parts = append(parts, fmt.Sprintf("%s on %s", v, strings.Join(distinct[v], ", ")))
		}
		return strings.Join(parts, "; ")
	}
	switch {
	case target.Major != oldest.Major:
		return nil, fmt.Errorf("etcd %s is another major version than the members run (%s): not supported", target, describe())
	case target.Compare(newest) < 0:
		return nil, fmt.Errorf("etcd %s would be a downgrade (the members run %s): etcd does not support it this way; restore a snapshot taken before the upgrade instead", target, describe())
	case target.Minor > oldest.Minor+1:
		return nil, fmt.Errorf("etcd %s is more than one minor version ahead of the members (%s): etcd upgrades one minor at a time; upgrade to %d.%d first",
			target, describe(), oldest.Major, oldest.Minor+1)
	case len(distinct) > 1 && target.Compare(newest) != 0:
		return nil, fmt.Errorf("the members run mixed versions (%s), left by an upgrade that did not finish: finish it first (upgrade --version %s)", describe(), newest)
	}
	for _, n := range names {
		if running[n].Compare(target) != 0 {
			todo = append(todo, n)
		}
	}
	return todo, nil
}

func sortedVersions(m map[Version][]string) []Version {
	out := make([]Version, 0, len(m))
	for v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, Version.Compare)
	return out
}

// OfMembers is the etcd version every voting member reports, by the name
// name gives it; an upgrade needs them all, so a member that does not
// answer is an error naming it.
func OfMembers(statuses []etcdcluster.Status, name func(etcdcluster.Member) string) (map[string]Version, error) {
	out := map[string]Version{}
	for _, st := range statuses {
		if st.Member.IsLearner {
			continue
		}
		n := name(st.Member)
		if !st.Healthy || st.Version == "" {
			return nil, fmt.Errorf("member %s does not answer (%s): its version is unknown, and every member must be healthy to be upgraded; nothing was changed", n, st.Reason())
		}
		v, err := Parse(st.Version)
		if err != nil {
			return nil, fmt.Errorf("member %s: %w", n, err)
		}
		out[n] = v
	}
	return out, nil
}
