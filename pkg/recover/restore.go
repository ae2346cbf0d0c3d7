package recover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	etcdutlsnapshot "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	etcdutil "k8s.io/kubernetes/cmd/kubeadm/app/util/etcd"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcddata"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/snapshot"
)

// RevisionBump is added to the snapshot's revision on restore, with every
// older revision marked compacted, as etcd's recovery guide advises for
// Kubernetes: clients watching from a revision before the disaster get
// "compacted" and relist, instead of silently missing or replaying events.
// 1e9 covers a week at more than 1,500 writes a second.
const RevisionBump = hostapi.RestoreRevisionBump

// ClusterCAKey is where Kubernetes keeps the cluster CA for pods (the
// kube-root-ca.crt ConfigMap): the snapshot's cluster identity.
const ClusterCAKey = "/registry/configmaps/kube-system/kube-root-ca.crt"

// RestoreOptions are restore's inputs beyond the host.
type RestoreOptions struct {
	File string
	// AllowOtherCluster restores a snapshot whose Kubernetes cluster CA is
	// not this host's (a snapshot of another cluster).
	AllowOtherCluster bool
	// ReplaceSoleMember restores over a running cluster whose only member is
	// this host's: a roll-back (`kubectl etcd restore --node` shrinks the
	// cluster to that member first). No second cluster can arise, and the
	// member's writes after the snapshot are lost.
	ReplaceSoleMember bool
}

// restoringDir is where etcd's restore writes before the result is moved in
// place: inside the data dir (its own disk), named so etcd ignores it.
func restoringDir(dataDir string) string {
	return filepath.Join(dataDir, etcddata.AsidePrefix+"restoring")
}

// PlanRestore verifies the snapshot and plans a restore into a fresh data
// dir on this host, as a new single-member cluster. It refuses a damaged
// file, a snapshot of another Kubernetes cluster, and a cluster that still
// has a quorum (restoring beside it would make two clusters).
func PlanRestore(ctx context.Context, e *hostlocal.Env, o RestoreOptions) (*Recovery, error) {
	h, cfg := e.Host, e.Config
	r := &Recovery{env: e, Res: &Result{Result: hostlocal.Result{Verb: "restore", Node: cfg.NodeName(), DryRun: e.DryRun}}}
	r.keepOwnSettings()
	j, err := loadJournal(h)
	if err != nil {
		return r, r.fail(err)
	}
	if j != nil && j.Done {
		if !e.DryRun {
			if err := retireJournal(h, j); err != nil {
				return r, r.fail(err)
			}
		}
		j = nil
	}
	if j != nil && j.Verb != "restore" {
		return r, r.fail(fmt.Errorf("an unfinished %s is recorded in %s (started %s): run `kubectl-etcd %s` again to finish it first",
			j.Verb, journalPath(h), j.Started.Format(time.RFC3339), j.Verb))
	}
	file, err := filepath.Abs(o.File)
	if err != nil {
		return r, r.fail(err)
	}
	if j != nil && j.Snapshot != file {
		return r, r.fail(fmt.Errorf("an unfinished restore of %s is recorded in %s: run `kubectl-etcd restore %s` to finish it first", j.Snapshot, journalPath(h), j.Snapshot))
	}
	info, err := snapshot.Status(file)
	if err != nil {
		return r, r.fail(fmt.Errorf("refusing to restore: %w", err))
	}
	r.Res.Notes = append(r.Res.Notes, fmt.Sprintf("snapshot %s: revision %d, %d keys, %d bytes, sha256 %s, integrity hash %v", file, info.Revision, info.TotalKeys, info.Size, info.SHA256, info.IntegrityHash))
	if !info.IntegrityHash {
		r.Res.Warnings = append(r.Res.Warnings, "the file has no sha256 trailer (a copied db file, not a snapshot): its integrity cannot be checked end to end")
	}
	if err := r.checkSameCluster(file, o.AllowOtherCluster); err != nil {
		return r, r.fail(err)
	}
	if j == nil {
		if err := refuseIfQuorum(ctx, e, o.ReplaceSoleMember); err != nil {
			return r, r.fail(err)
		}
		j = &journal{Verb: "restore", Started: h.Now().UTC(), Node: cfg.NodeName(), Snapshot: file, Revision: info.Revision}
		// The members the restore cuts off, for the marker: those of the
		// snapshot (it carries the membership of its time) and of the old
		// data here, if any.
		seen := map[uint64]bool{}
		var old []etcddata.Member
		if m, err := etcddata.ReadMembershipDB(file); err == nil {
			old = append(old, m.Members...)
		}
		if len(h.EtcdPIDs(cfg)) == 0 {
			if m, err := etcddata.ReadMembership(h.Path(cfg.DataDir())); err == nil {
				old = append(old, m.Members...)
			}
		}
		for _, m := range old {
			if !seen[m.ID] {
				seen[m.ID] = true
				j.Old = append(j.Old, m)
			}
		}
	} else {
		r.Res.Notes = append(r.Res.Notes, fmt.Sprintf("carrying on with the restore started %s (journal %s)", j.Started.Format(time.RFC3339), journalPath(h)))
	}
	r.j = j
	r.useKubeletRestart()
	r.Plan = r.planRestoreSteps(info)
	r.Res.Next = nextSteps(cfg, j)
	return r, nil
}

// checkSameCluster compares the cluster CA in the snapshot's kube-root-ca.crt
// ConfigMap with this host's /etc/kubernetes/pki/ca.crt. A restore makes a
// new etcd cluster either way; what must not happen is another Kubernetes
// cluster's state under this host's certificates.
func (r *Recovery) checkSameCluster(file string, allow bool) error {
	h, cfg := r.env.Host, r.env.Config
	caPath := filepath.Join(cfg.CertDir(), "ca.crt")
	hostCA, err := os.ReadFile(h.Path(caPath))
	if err != nil {
		r.Res.Warnings = append(r.Res.Warnings, fmt.Sprintf("cannot read this host's cluster CA %s (%v): not checking that the snapshot is of this cluster", caPath, err))
		return nil
	}
	val, found, err := latestValue(file, ClusterCAKey)
	switch {
	case err != nil:
		return fmt.Errorf("reading the snapshot %s: %w", file, err)
	case !found:
		if !allow {
			return fmt.Errorf("the snapshot %s has no %s: it is not a snapshot of a Kubernetes cluster's etcd, or one taken before the cluster was up; refusing (--allow-other-cluster to restore it anyway)", file, ClusterCAKey)
		}
		r.Res.Warnings = append(r.Res.Warnings, "--allow-other-cluster: the snapshot has no kube-root-ca.crt ConfigMap")
	case !bytes.Contains(val, bytes.TrimSpace(hostCA)):
		if !allow {
			return fmt.Errorf("the snapshot %s is of another Kubernetes cluster: its kube-system/kube-root-ca.crt does not hold this host's cluster CA %s; refusing (--allow-other-cluster to restore it anyway)", file, caPath)
		}
		r.Res.Warnings = append(r.Res.Warnings, "--allow-other-cluster: the snapshot is of a cluster with another CA")
	default:
		r.Res.Notes = append(r.Res.Notes, "the snapshot is of this cluster (its kube-root-ca.crt holds this host's cluster CA)")
	}
	return nil
}

// latestValue reads the newest live value of key from a snapshot (an etcd
// bbolt database) without etcd: the key bucket maps revisions to KeyValues.
func latestValue(file, key string) (val []byte, found bool, err error) {
	db, err := bolt.Open(file, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, false, err
	}
	defer db.Close()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("damaged: %v", p)
		}
	}()
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(schema.Key.Name())
		if b == nil {
			return errors.New("no key bucket")
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var kv mvccpb.KeyValue
			if proto.Unmarshal(v, &kv) != nil || string(kv.Key) != key {
				continue
			}
			// A tombstone (a deleted key) has an 18-byte revision key ending in 't'.
			if len(k) == 18 && k[17] == 't' {
				return nil
			}
			val, found = bytes.Clone(kv.Value), true
			return nil
		}
		return nil
	})
	return val, found, err
}

// refuseIfQuorum refuses a restore while any member this host knows of
// leads or follows a leader.
func refuseIfQuorum(ctx context.Context, e *hostlocal.Env, soleOK bool) error {
	return restoreOver(e.ReadState(ctx, nil).Members, e.Config.NodeName(), soleOK)
}

// restoreOver is refuseIfQuorum's verdict on the members node sees: a
// restore may not start a second cluster beside one that has a healthy
// member, unless soleOK and the only member is node's own (a roll-back).
func restoreOver(members []hostapi.MemberRow, node string, soleOK bool) error {
	if soleOK && len(members) == 1 && members[0].ThisHost {
		return nil
	}
	if soleOK && len(members) > 1 {
		return fmt.Errorf("--replace-sole-member: the etcd cluster has %d members, not only this host's: shrink it to this host's member first (kubectl etcd scale --nodes %s)", len(members), node)
	}
	for _, m := range members {
		if m.Healthy {
			return fmt.Errorf("the etcd cluster has a quorum (member %s answers with a leader): restoring a snapshot here would start a second cluster beside it. To roll the cluster back, first take every other member out (kubectl-etcd leave on its host, or power it off), or use recover for quorum loss", m.Name)
		}
	}
	return nil
}

func (r *Recovery) planRestoreSteps(info *snapshot.Info) *plan.Plan {
	e, j := r.env, r.j
	h, cfg := e.Host, e.Config
	p := &plan.Plan{Title: fmt.Sprintf("restore: %s (revision %d) on %s as a new single-member etcd cluster; revisions bumped by %d and marked compacted so Kubernetes watches relist",
		j.Snapshot, info.Revision, cfg.NodeName(), RevisionBump)}
	r.addParkStep(p)
	if !j.Restored {
		p.Add("stop local etcd", fmt.Sprintf("move %s out of the manifests dir (if there) and wait until no etcd runs on %s", h.EtcdManifest(), cfg.DataDir()),
			func(ctx context.Context) (string, error) { return stopEtcd(ctx, e) })
		p.Add("move data aside", fmt.Sprintf("move %s aside to %s.before-restore-<time> (inside it, as %sbefore-restore-<time>, when it is a mount point); never deleted", cfg.DataDir(), cfg.DataDir(), etcddata.AsidePrefix),
			func(ctx context.Context) (string, error) {
				if j.Copy != "" {
					return "already moved to " + j.Copy, nil
				}
				if err := j.save(h); err != nil {
					return "", err
				}
				facts, err := etcddata.Read(h.Path(cfg.DataDir()))
				if err == nil && !facts.HasData {
					j.Copy = "(none)"
					return "no old data", j.save(h)
				}
				moved, err := etcddata.MoveAside(h.Path(cfg.DataDir()), "before-restore", h.Now())
				if err != nil {
					return "", err
				}
				j.Copy = h.HostPathOf(moved)
				return "moved to " + j.Copy, j.save(h)
			})
		p.Add("restore", fmt.Sprintf("etcd's own snapshot restore into %s: new cluster %s=%s, revision +%d, older revisions marked compacted", cfg.DataDir(), cfg.NodeName(), cfg.PeerURL(), RevisionBump),
			func(ctx context.Context) (string, error) { return r.restore() })
	}
	if !j.NormalWritten {
		p.Add("start quarantined", fmt.Sprintf("write %s: the restored member under another pod name, client URL %s only (no apiserver reads it), and wait until it serves", quarantineManifest(h), quarantineURL()),
			func(ctx context.Context) (string, error) { return r.quarantine(ctx, false) })
		p.Add("verify", fmt.Sprintf("the member leads itself alone and its revision is at least %d", info.Revision),
			func(ctx context.Context) (string, error) { return r.verify(ctx) })
		p.Add("marker", fmt.Sprintf("write %s (time, host, snapshot, the old members cut off)", MarkerKey),
			func(ctx context.Context) (string, error) { return r.writeMarker(ctx) })
		r.addSwitchSteps(p)
	}
	r.addFinishSteps(p)
	return p
}

// restore runs etcd's restore into a hidden dir inside the data dir, then
// moves its member dir into place: the data dir may be a mount point, and
// a crash must never leave a half-restored member where etcd would start it.
func (r *Recovery) restore() (string, error) {
	e, j := r.env, r.j
	h, cfg := e.Host, e.Config
	dataDir := h.Path(cfg.DataDir())
	if err := etcdutil.CreateDataDirectory(dataDir); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dataDir, "member")); err == nil {
		return "", fmt.Errorf("%s/member exists although the old data was moved aside: look at it (nothing was changed)", cfg.DataDir())
	}
	tmp := restoringDir(dataDir)
	if _, err := os.Stat(tmp); err == nil {
		// An earlier run crashed inside etcd's restore: keep what it left.
		if _, err := etcddata.MoveAside(tmp, "incomplete", h.Now()); err != nil {
			return "", err
		}
	}
	token := "kubectl-etcd-restore-" + j.Started.Format("20060102T150405Z")
	err := etcdutlsnapshot.NewV3(zap.NewNop()).Restore(etcdutlsnapshot.RestoreConfig{
		SnapshotPath:        j.Snapshot,
		Name:                cfg.NodeName(),
		OutputDataDir:       tmp,
		PeerURLs:            []string{cfg.PeerURL()},
		InitialCluster:      cfg.NodeName() + "=" + cfg.PeerURL(),
		InitialClusterToken: token,
		RevisionBump:        RevisionBump,
		MarkCompacted:       true,
	})
	if err != nil {
		return "", fmt.Errorf("etcd's restore of %s: %w", j.Snapshot, err)
	}
	if err := os.Rename(filepath.Join(tmp, "member"), filepath.Join(dataDir, "member")); err != nil {
		return "", fmt.Errorf("moving the restored member into %s: %w", cfg.DataDir(), err)
	}
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err // empty by now; its removal deletes no data
	}
	facts, err := etcddata.Read(dataDir)
	if err != nil {
		return "", err
	}
	j.Restored, j.MemberID, j.ClusterID = true, facts.MemberID, facts.ClusterID
	if err := j.save(h); err != nil {
		return "", err
	}
	return fmt.Sprintf("member %x of new cluster %x, revision %d", facts.MemberID, facts.ClusterID, facts.Revision), nil
}
