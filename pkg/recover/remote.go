package recover

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/atomicfile"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/diskspace"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/snapshot"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// The host side of `kubectl etcd restore FILE --node X`: the plugin uploads
// the snapshot into UploadDir, has it checked here, then starts the
// host-local restore detached from its pod (the restore stops the etcd every
// apiserver reads, so the pod's connection breaks), and reads its outcome
// once the apiserver is back.

// UploadDir is where snapshots uploaded for a restore are kept on the host.
const UploadDir = hostapi.UploadDir

// LogDir is where a detached restore writes its progress and result.
const LogDir = hostapi.LogDir

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// UploadPath is the host path of the upload of the snapshot with that
// sha256: named by content, so a rerun finds it.
func UploadPath(sum string) string { return hostapi.UploadPath(sum) }

func runStatePath(sum string) string { return UploadPath(sum) + ".run.json" }

// CheckSHA256 rejects anything but a lower-case hex sha256.
func CheckSHA256(sum string) error {
	if !sha256Hex.MatchString(sum) {
		return fmt.Errorf("%q is not a sha256 (64 lower-case hex digits)", sum)
	}
	return nil
}

// Receive writes the snapshot read from r to its upload path on the host:
// into a .part file, fsynced, its size and sha256 checked, then renamed and
// the directory fsynced, so a file at the final name is always whole. An
// upload already there (same content) is kept and r is not read.
func Receive(h *staticpod.Host, r io.Reader, sum string, size int64) (string, bool, error) {
	if err := CheckSHA256(sum); err != nil {
		return "", false, err
	}
	final := UploadPath(sum)
	if got, err := fileSHA256(h.Path(final)); err == nil && got == sum {
		return final, true, nil
	}
	dir := h.Path(UploadDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, err
	}
	if err := diskspace.Check(dir, size, "the uploaded snapshot"); err != nil {
		return "", false, err
	}
	f, err := snapshot.CreatePart(h.Path(final))
	if err != nil {
		return "", false, err
	}
	part := f.Name()
	hash := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, hash), r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = fmt.Errorf("received %d bytes, want %d: the upload was cut short", n, size)
	}
	if got := hex.EncodeToString(hash.Sum(nil)); err == nil && got != sum {
		err = fmt.Errorf("the upload's sha256 is %s, want %s: it was damaged on the way", got, sum)
	}
	if err != nil {
		os.Remove(part) // a damaged upload is of no use; the next run sends it again
		return "", false, fmt.Errorf("receiving the snapshot into %s: %w", final, err)
	}
	if err := os.Rename(part, h.Path(final)); err != nil {
		return "", false, err
	}
	// Best effort: the file is already whole under its final name; if a power
	// cut loses the rename, the next run does not find it and receives it again.
	_ = atomicfile.SyncDir(dir)
	return final, false, nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hash := sha256.New()
	if _, err := io.Copy(hash, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(hash.Sum(nil)), nil
}

// UploadCheck is what the host says about an uploaded snapshot.
type UploadCheck = hostapi.UploadCheck

// CheckUpload looks for the upload of the snapshot with that sha256 and, if
// it is there, runs the checks restore makes before it changes anything: a
// sound snapshot file (sha256 trailer, complete database, etcd's status)
// and a snapshot of this Kubernetes cluster. It changes nothing.
func CheckUpload(e *hostlocal.Env, sum string, allowOther bool) (*UploadCheck, error) {
	if err := CheckSHA256(sum); err != nil {
		return nil, err
	}
	h := e.Host
	c := &UploadCheck{Path: UploadPath(sum)}
	run, err := ReadRun(h, sum)
	if err != nil {
		return nil, err
	}
	c.Run = run
	if err := probeDetach(h); err != nil {
		c.DetachError = err.Error()
	}
	got, err := fileSHA256(h.Path(c.Path))
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	if got != sum {
		// Damaged on the host's disk since: move it aside, the plugin sends it again.
		_ = os.Rename(h.Path(c.Path), h.Path(c.Path)+".bad-"+h.Now().UTC().Format("20060102T150405Z"))
		return c, nil
	}
	c.Present = true
	info, err := snapshot.Status(h.Path(c.Path))
	if err != nil {
		c.Error = fmt.Sprintf("refusing to restore: %v", err)
		return c, nil
	}
	info.Path = c.Path
	c.Info = info
	r := &Recovery{env: e, Res: &Result{}}
	if err := r.checkSameCluster(h.Path(c.Path), allowOther); err != nil {
		c.Error = strings.ReplaceAll(err.Error(), h.Path(c.Path), c.Path)
	}
	c.Notes, c.Warnings = r.Res.Notes, r.Res.Warnings
	return c, nil
}

// RunReport is a detached restore on the host, as far as it got.
type RunReport = hostapi.RunReport

// ReadRun reports the detached restore of the snapshot with that sha256, or
// nil when none was started.
func ReadRun(h *staticpod.Host, sum string) (*RunReport, error) {
	raw, err := os.ReadFile(h.Path(runStatePath(sum)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r := &RunReport{}
	if err := json.Unmarshal(raw, r); err != nil {
		return nil, fmt.Errorf("the restore record %s is damaged (%v): look at it and move it aside", runStatePath(sum), err)
	}
	r.LogTail = tailLines(h.Path(r.Log), 15)
	out, _ := os.ReadFile(h.Path(r.Result))
	var res hostapi.VerbResult
	if len(out) > 0 && json.Unmarshal(out, &res) == nil {
		r.Outcome = &res
		r.State = hostapi.RunDone
		if res.Error != "" {
			r.State, r.Error = hostapi.RunFailed, res.Error
		}
		return r, nil
	}
	if alive(h, r.PID, r.Snapshot) {
		r.State = hostapi.RunRunning
		return r, nil
	}
	r.State = hostapi.RunFailed
	r.Error = "the restore process ended without a result"
	if n := len(r.LogTail); n > 0 {
		r.Error += ": " + r.LogTail[n-1]
	}
	return r, nil
}

// alive says whether pid is still the restore of file (a pid is reused).
func alive(h *staticpod.Host, pid int, file string) bool {
	if pid <= 0 {
		return false
	}
	cmdline, err := os.ReadFile(h.Path("/proc/" + strconv.Itoa(pid) + "/cmdline"))
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	return len(args) > 2 && args[1] == "restore" && args[2] == file
}

func tailLines(p string, n int) []string {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return lines
}

// StartRestore starts `kubectl-etcd restore` of the uploaded snapshot on the
// host, detached from this process (its own session, the host's root and
// PID 1's cgroups: a pod's deletion must not stop it), and returns at once.
// binary is the host's copy of kubectl-etcd. A restore of it that is
// running, or one that finished, is reported instead of starting another.
func StartRestore(e *hostlocal.Env, sum, binary string) (*RunReport, bool, error) {
	if err := CheckSHA256(sum); err != nil {
		return nil, false, err
	}
	h := e.Host
	if run, err := ReadRun(h, sum); err != nil || (run != nil && run.State != hostapi.RunFailed) {
		return run, false, err
	}
	stamp := h.Now().UTC().Format("20060102T150405Z")
	run := &RunReport{Snapshot: UploadPath(sum), Started: h.Now().UTC(),
		Log: filepath.Join(LogDir, "restore-"+stamp+".log"), Result: filepath.Join(LogDir, "restore-"+stamp+".json")}
	if _, err := os.Stat(h.Path(run.Snapshot)); err != nil {
		return nil, false, fmt.Errorf("the snapshot is not on the host: %w", err)
	}
	if err := os.MkdirAll(h.Path(LogDir), 0o755); err != nil {
		return nil, false, err
	}
	argv := []string{binary, "restore", run.Snapshot, "--yes", "--replace-sole-member", "-o", "json", "--node-name", e.Config.NodeName(), "--detached-child"}
	pid, err := startDetached(h, argv, run.Log, run.Result)
	if err != nil {
		return nil, false, err
	}
	run.PID, run.State = pid, hostapi.RunRunning
	raw, _ := json.MarshalIndent(run, "", "  ")
	if err := h.WriteFile(runStatePath(sum), raw, 0o600); err != nil {
		return run, true, fmt.Errorf("the restore runs (pid %d, log %s), but its record could not be written: %w", pid, run.Log, err)
	}
	return run, true, nil
}

// WaitGo is the detached child's first act: it goes on only when its parent
// says so on stdin, after having moved it out of the pod's cgroups.
func WaitGo(in io.Reader) error {
	line, _ := bufio.NewReader(in).ReadString('\n')
	if strings.TrimSpace(line) != "go" {
		return errors.New("not started: the process that launched this restore did not confirm it had detached it")
	}
	return nil
}
