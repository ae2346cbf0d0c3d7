// Package backup keeps verified etcd snapshots in a directory on a
// control-plane host: one file per run, named by its UTC time and reason,
// each with a JSON sidecar of its facts, the newest N kept. The host-local
// `kubectl-etcd backup run` (by hand, from the scheduled CronJob, or before a
// membership change) is Run; `backup list --local` is List.
package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/atomicfile"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/snapshot"
)

// Dir is where backups live on a control-plane host (a host path). Beside
// the binary the host pods leave in /var/lib/kubectl-etcd, and, like it, out
// of kubeadm's and etcd's own directories, which kubeadm reset cleans.
const Dir = "/var/lib/kubectl-etcd/backups"

// DirMode: the directory holds snapshots, so Secrets.
const DirMode = 0o700

// timeFormat is the UTC time in a backup's name; it sorts as text.
const timeFormat = "20060102T150405Z"

// lockFile serialises runs in one directory (the CronJob and a pre-change
// backup may start together).
const lockFile = ".lock"

// sidecarSuffix: etcd-...db.json holds the snapshot.Info of etcd-...db.
const sidecarSuffix = ".json"

// Only files matching these are ever deleted: our own.
var (
	nameRE   = regexp.MustCompile(`^etcd-([0-9]{8}T[0-9]{6}Z)-([a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?)\.db$`)
	reasonRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)
)

// ValidReason rejects a reason that would not make a file name we recognise.
func ValidReason(reason string) error {
	if !reasonRE.MatchString(reason) {
		return fmt.Errorf("backup reason %q: use 1-32 lowercase letters, digits and dashes (e.g. scheduled, pre-scale, manual)", reason)
	}
	return nil
}

// Name is the file name of a backup taken at t for reason.
func Name(t time.Time, reason string) string {
	return "etcd-" + t.UTC().Format(timeFormat) + "-" + reason + ".db"
}

// Entry is one snapshot in the backup directory; its wire form is the
// host API's, which the workstation lists.
type Entry = hostapi.BackupEntry

// List returns the backups in dir, newest first. A backup without a sidecar
// (the run was killed between the rename and the sidecar) is verified now
// when verifyMissing, else reported unverified. A missing dir is no backups.
func List(dir string, verifyMissing bool) ([]Entry, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading backup directory %s: %w", dir, err)
	}
	var out []Entry
	for _, de := range des {
		m := nameRE.FindStringSubmatch(de.Name())
		if m == nil || !de.Type().IsRegular() {
			continue
		}
		t, err := time.Parse(timeFormat, m[1])
		if err != nil {
			continue
		}
		e := Entry{Name: de.Name(), Path: filepath.Join(dir, de.Name()), Time: t, Reason: m[2]}
		if fi, err := de.Info(); err == nil {
			e.Size = fi.Size()
		}
		e.Info, e.Problem = readSidecar(e.Path + sidecarSuffix)
		switch {
		case e.Info != nil && e.Info.Size == e.Size:
			e.Verified = true
		case e.Info != nil:
			e.Problem = fmt.Sprintf("size %d differs from the %d bytes verified when it was taken", e.Size, e.Info.Size)
		case verifyMissing:
			if info, err := snapshot.Status(e.Path); err != nil {
				e.Problem = err.Error()
			} else {
				e.Info, e.Verified, e.Problem = info, true, ""
			}
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.After(out[j].Time)
		}
		return out[i].Name > out[j].Name
	})
	return out, nil
}

func readSidecar(path string) (*snapshot.Info, string) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "no sidecar " + filepath.Base(path) + ": not verified since it was written"
	}
	if err != nil {
		return nil, err.Error()
	}
	var info snapshot.Info
	if err := json.Unmarshal(raw, &info); err != nil {
		return nil, fmt.Sprintf("sidecar %s: %v", filepath.Base(path), err)
	}
	return &info, ""
}

// PlanPrune splits entries (newest first, as List returns them) into those
// kept — the newest keep verified ones, always including protect (the
// backup just taken) — and those removed: every other backup older than the
// oldest kept, verified or not. Unverified backups newer than that stay
// until they age out, so a run never deletes a file it cannot judge while
// newer verified ones are scarce. keep <= 0 keeps everything.
func PlanPrune(entries []Entry, keep int, protect string) (kept, removed []Entry) {
	if keep <= 0 {
		return entries, nil
	}
	keepSet := map[string]bool{}
	if protect != "" {
		keepSet[protect] = true
	}
	for _, e := range entries {
		if len(keepSet) >= keep {
			break
		}
		if e.Verified {
			keepSet[e.Name] = true
		}
	}
	var oldestKept time.Time
	for _, e := range entries {
		if keepSet[e.Name] && (oldestKept.IsZero() || e.Time.Before(oldestKept)) {
			oldestKept = e.Time
		}
	}
	for _, e := range entries {
		switch {
		case keepSet[e.Name]:
			kept = append(kept, e)
		case len(keepSet) > 0 && e.Time.Before(oldestKept):
			removed = append(removed, e)
		default:
			kept = append(kept, e)
		}
	}
	return kept, removed
}

// RunOptions say where and how to take a backup.
type RunOptions struct {
	Dir    string // as this process sees it (the host root prefixed)
	Reason string
	Keep   int // newest verified backups kept; <= 0 keeps all
	DryRun bool
	// Node labels the snapshot's facts.
	Node string
	Now  func() time.Time
	// LockTimeout bounds the wait for another run in the same directory.
	LockTimeout time.Duration
}

// RunResult is what a run did.
type RunResult struct {
	Dir      string         `json:"dir"`
	DryRun   bool           `json:"dryRun"`
	File     string         `json:"file"`
	Snapshot *snapshot.Info `json:"snapshot,omitempty"`
	Kept     []string       `json:"kept"`
	Removed  []string       `json:"removed"`
	Problems []string       `json:"problems,omitempty"`
}

// Run takes a verified snapshot from src into the directory, writes its
// sidecar, then removes the backups PlanPrune says to. Only files named like
// ours (and their sidecars and .part leftovers) are ever removed. A failed
// snapshot removes nothing. Safe to rerun after a crash: a leftover .part is
// removed, a backup without a sidecar is verified and gets one.
func Run(ctx context.Context, src snapshot.Source, o RunOptions) (*RunResult, error) {
	if err := ValidReason(o.Reason); err != nil {
		return nil, err
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	res := &RunResult{Dir: o.Dir, DryRun: o.DryRun, Kept: []string{}, Removed: []string{}}
	if o.DryRun {
		name := Name(now(), o.Reason)
		res.File = filepath.Join(o.Dir, name)
		entries, err := List(o.Dir, false)
		if err != nil {
			return nil, err
		}
		virtual := append([]Entry{{Name: name, Time: now().UTC().Truncate(time.Second), Verified: true}}, entries...)
		kept, removed := PlanPrune(virtual, o.Keep, name)
		res.Kept, res.Removed = names(kept), names(removed)
		return res, nil
	}

	if err := os.MkdirAll(o.Dir, DirMode); err != nil {
		return nil, fmt.Errorf("creating backup directory %s: %w", o.Dir, err)
	}
	// A directory made by the kubelet (hostPath DirectoryOrCreate) is 0755:
	// restricted to its owner, as long as it is ours (empty, or holding only
	// backups). One that holds other files is someone else's (--dir / would
	// lock every user out of the host): its mode is left alone, said in the
	// result; each backup is 0600 either way.
	ours, err := onlyOurs(o.Dir)
	if err != nil {
		return nil, err
	}
	if ours {
		if err := os.Chmod(o.Dir, DirMode); err != nil {
			return nil, fmt.Errorf("restricting backup directory %s to its owner: %w", o.Dir, err)
		}
	} else if fi, err := os.Stat(o.Dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%s holds files other than backups, so its mode (%04o) was left as it is; each backup in it is 0600", o.Dir, fi.Mode().Perm()))
	}
	unlock, err := lock(ctx, filepath.Join(o.Dir, lockFile), o.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer unlock()
	removeParts(o.Dir)

	// One name per second: under the lock, wait out a second already used.
	t := now()
	name := Name(t, o.Reason)
	for exists(filepath.Join(o.Dir, name)) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(t.Truncate(time.Second).Add(time.Second).Sub(t)):
		}
		t = now()
		name = Name(t, o.Reason)
	}
	path := filepath.Join(o.Dir, name)
	res.File = path
	info, err := snapshot.Save(ctx, src, path, snapshot.SaveOptions{Now: now})
	if err != nil {
		return res, err
	}
	// The time in the name, so file and facts agree to the second.
	info.TakenAt = t.UTC()
	info.Node = o.Node
	res.Snapshot = info
	if err := writeSidecar(path+sidecarSuffix, info); err != nil {
		return res, err
	}

	entries, err := List(o.Dir, true)
	if err != nil {
		return res, err
	}
	for _, e := range entries {
		if e.Verified && e.Problem == "" && e.Name != name {
			if _, serr := os.Stat(e.Path + sidecarSuffix); errors.Is(serr, os.ErrNotExist) {
				// Verified just now by List: keep the verdict.
				_ = writeSidecar(e.Path+sidecarSuffix, e.Info)
			}
		}
		if e.Problem != "" {
			res.Problems = append(res.Problems, e.Name+": "+e.Problem)
		}
	}
	kept, removed := PlanPrune(entries, o.Keep, name)
	res.Kept = names(kept)
	for _, e := range removed {
		if err := removeBackup(e.Path); err != nil {
			return res, err
		}
		res.Removed = append(res.Removed, e.Name)
	}
	if len(removed) > 0 {
		if err := atomicfile.SyncDir(o.Dir); err != nil {
			return res, err
		}
	}
	return res, nil
}

func names(es []Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// removeBackup removes one of our backups and its sidecar. It checks the
// name again: nothing else in the directory is ever deleted.
func removeBackup(path string) error {
	if !nameRE.MatchString(filepath.Base(path)) {
		return fmt.Errorf("refusing to remove %s: not a kubectl-etcd backup name", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing old backup %s: %w", path, err)
	}
	if err := os.Remove(path + sidecarSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", path+sidecarSuffix, err)
	}
	return nil
}

// onlyOurs: dir holds nothing but backups, their sidecars and part files,
// and the lock.
func onlyOurs(dir string) (bool, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("reading backup directory %s: %w", dir, err)
	}
	for _, de := range des {
		name := de.Name()
		if base, ok := snapshot.PartBase(name); ok {
			name = base
		}
		name = strings.TrimSuffix(name, sidecarSuffix)
		if name != lockFile && !nameRE.MatchString(name) {
			return false, nil
		}
	}
	return true, nil
}

// CheckDir refuses backup directories that must not hold backups: the
// filesystem's root and its top-level directories (a backup run restricts
// a directory of its own to root), and any directory in (or holding) one
// of avoid, which maps a path to why (etcd's data dir, kubeadm's own
// directories).
func CheckDir(dir string, avoid map[string]string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("--dir %s: give an absolute path", dir)
	}
	dir = filepath.Clean(dir)
	if filepath.Dir(dir) == string(filepath.Separator) || dir == string(filepath.Separator) {
		return fmt.Errorf("--dir %s: a backup directory must be one of its own, not the filesystem's root or a top-level directory (e.g. %s)", dir, Dir)
	}
	for p, why := range avoid {
		p = filepath.Clean(p)
		if dir == p || strings.HasPrefix(dir, p+string(filepath.Separator)) || strings.HasPrefix(p, dir+string(filepath.Separator)) {
			return fmt.Errorf("--dir %s: not in or above %s (%s); choose a directory of its own, e.g. %s", dir, p, why, Dir)
		}
	}
	return nil
}

// removeParts removes .part files of ours: under the lock, no run writes one.
func removeParts(dir string) {
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		if base, ok := snapshot.PartBase(de.Name()); ok && nameRE.MatchString(base) {
			os.Remove(filepath.Join(dir, de.Name()))
		}
	}
}

// writeSidecar writes info as JSON next to its snapshot, atomically.
func writeSidecar(path string, info *snapshot.Info) error {
	raw, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(raw, '\n'), snapshot.FileMode)
}

// lock takes an exclusive flock on path, waiting at most timeout (default
// one minute) for another run to finish.
func lock(ctx context.Context, path string, timeout time.Duration) (func(), error) {
	if timeout <= 0 {
		timeout = time.Minute
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", path, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := tryLock(f)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, errLocked) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("another backup run holds %s for more than %s", path, timeout)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
