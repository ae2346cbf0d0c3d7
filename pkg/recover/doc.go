// Package recover will hold disaster recovery for stacked etcd: taking
// snapshots, restoring a member or the whole cluster from a snapshot, and
// recovering from quorum loss.
//
// It is intentionally empty: the functionality is added by a later issue,
// and no command exposes it yet.
package recover
