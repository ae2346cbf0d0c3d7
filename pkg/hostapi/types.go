package hostapi

import (
	"path/filepath"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/plan"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/snapshot"
)

// Where things are on a control-plane host. The workstation names them in
// plans and messages; the host side reads and writes them.
const (
	// HostBinaryPath is where every host-side run leaves a copy of this
	// binary, so the host-local verbs are at hand there when the apiserver
	// (and with it every transport that needs it) cannot be used any more.
	HostBinaryPath = "/var/lib/kubectl-etcd/kubectl-etcd"
	// UploadDir holds snapshots sent to the host for `restore --node`,
	// named by their sha256.
	UploadDir = "/var/lib/kubectl-etcd/restore"
	// LogDir is where a detached restore writes its progress and result.
	LogDir = "/var/log/kubectl-etcd"
)

// UploadPath is where the upload of the snapshot with that sha256 goes.
func UploadPath(sum string) string { return filepath.Join(UploadDir, sum[:16]+".db") }

// RestoreRevisionBump is how far a restore moves revisions past the
// snapshot's (etcdutl's --bump-revision), marking the ones between
// compacted, so that every watcher of the old cluster relists.
const RestoreRevisionBump = 1_000_000_000

// VerbResult is the part of a host-local verb's -o json result the
// workstation reads (host verbs add more fields; decoding ignores them).
type VerbResult struct {
	Verb     string            `json:"verb"`
	Node     string            `json:"node"`
	DryRun   bool              `json:"dryRun"`
	Steps    []plan.StepResult `json:"steps"`
	Error    string            `json:"error,omitempty"`
	Notes    []string          `json:"notes,omitempty"`
	Warnings []string          `json:"warnings,omitempty"`
	Next     []string          `json:"nextSteps,omitempty"`
}

// CertsRenewRequest is `certs renew` on one host.
type CertsRenewRequest struct {
	// Before is --before as the host verb takes it ("30d", "720h").
	Before string
	// DryRun asks for the host's plan only.
	DryRun bool
}

// SignedClientCert is a short-lived etcd client certificate, signed on a
// member host for a key that exists only in the caller's memory, and the CA
// to trust.
type SignedClientCert struct {
	CertificatePEM string    `json:"certificate"`
	CAPEM          string    `json:"ca"`
	NotAfter       time.Time `json:"notAfter"`
}

// JoinRequest adds the host's member to the cluster (as a learner, promoted
// once caught up) and points its kube-apiserver at it.
type JoinRequest struct {
	// Endpoints are client URLs of the cluster's voting members.
	Endpoints []string
	// ReplaceMember, when not 0, is the host's own member to start over:
	// its data is moved aside, it is removed and added back fresh.
	ReplaceMember uint64
	// EtcdArgs are etcd flags, NAME=VALUE, for the member's manifest on
	// top of etcd.local.extraArgs: the settings the members that stay run
	// and kubeadm-config does not give (see drift.CarryFor).
	EtcdArgs []string
}

// BackupRunRequest takes a snapshot into the host's backup directory.
type BackupRunRequest struct {
	// Reason ends up in the file name (e.g. "pre-scale").
	Reason string
}

// BackupList is the host's backup directory, newest first.
type BackupList struct {
	Backups []BackupEntry `json:"backups"`
}

// BackupEntry is one snapshot in a host's backup directory.
type BackupEntry struct {
	Name   string    `json:"name"`
	Path   string    `json:"path"`
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
	Size   int64     `json:"size"`
	// Verified: the file was verified when taken (its sidecar says so and
	// its size still matches) or just now. `snapshot status` re-reads it.
	Verified bool           `json:"verified"`
	Info     *snapshot.Info `json:"info,omitempty"`
	Problem  string         `json:"problem,omitempty"`
}

// UploadCheck is what the host says about an uploaded snapshot.
type UploadCheck struct {
	Path     string         `json:"path"`
	Present  bool           `json:"present"`
	Info     *snapshot.Info `json:"info,omitempty"`
	Notes    []string       `json:"notes,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`
	Error    string         `json:"error,omitempty"`
	Run      *RunReport     `json:"run,omitempty"`
	// DetachError says why a restore could not be started detached from
	// the host's transport here (checked before anything is changed).
	DetachError string `json:"detachError,omitempty"`
}

// Received is an upload written on the host.
type Received struct {
	Path string `json:"path"`
	// AlreadyThere: an identical upload was there already.
	AlreadyThere bool `json:"alreadyThere"`
}

// RestoreStarted answers the start of a detached restore.
type RestoreStarted struct {
	// Started is false when one was running or done already (Run says which).
	Started bool       `json:"started"`
	Run     *RunReport `json:"run"`
}

// RestoreRun is the host's record of a detached restore: nil Run when none
// was started.
type RestoreRun struct {
	Run *RunReport `json:"run"`
}

// Detached restore states (RunReport.State).
const (
	RunRunning = "running"
	RunDone    = "done"
	RunFailed  = "failed"
)

// RunReport is a detached restore on the host, as far as it got.
type RunReport struct {
	Snapshot string    `json:"snapshot"`
	PID      int       `json:"pid"`
	Started  time.Time `json:"started"`
	Log      string    `json:"log"`
	Result   string    `json:"resultFile"`
	// State: running | done | failed.
	State string `json:"state,omitempty"`
	// Error says why it failed (from its result, or its log).
	Error   string   `json:"error,omitempty"`
	LogTail []string `json:"logTail,omitempty"`
	// Outcome is the restore's own result, once it ended.
	Outcome *VerbResult `json:"outcome,omitempty"`
}

// HostState is the part of a host's `status --local -o json` (hostlocal's
// State) the workstation reads: whether etcd runs there, and the identity
// of the data in its data dir when it does not.
type HostState struct {
	Node            string `json:"node"`
	ManifestPresent bool   `json:"manifestPresent"`
	EtcdRunning     bool   `json:"etcdRunning"`
	DataDir         string `json:"dataDir"`
	// DataDirFacts is set when etcd is stopped and the data dir could be
	// read (etcddata.State's fields, by their Go names).
	DataDirFacts *DataDirFacts `json:"dataDirFacts,omitempty"`
}

// DataDirFacts is the identity of the data in a stopped member's data dir
// (etcddata.State's fields, by their Go names, as hostlocal writes them).
type DataDirFacts struct {
	HasData   bool
	MemberID  uint64
	ClusterID uint64
	Revision  int64
}

// CertsReport is a host's etcd certificates, as `certs check` reads them.
type CertsReport struct {
	Node  string       `json:"node"`
	Certs []CertReport `json:"certificates"`
}

// CertReport is one certificate: what it says and whether it is what
// kubeadm would issue for this host now.
type CertReport struct {
	Name     string    `json:"name"` // kubeadm's name, e.g. etcd-server
	Path     string    `json:"path"`
	Subject  string    `json:"subject,omitempty"`
	Issuer   string    `json:"issuer,omitempty"`
	DNSNames []string  `json:"dnsNames,omitempty"`
	IPs      []string  `json:"ipAddresses,omitempty"`
	NotAfter time.Time `json:"notAfter,omitzero"`
	DaysLeft int       `json:"daysLeft"`
	// Status: ok, renew (under 30 days left), expired, mismatch (not what
	// kubeadm would issue: a missing name, another CA, a key that does not
	// match), missing.
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// Certificate statuses, worst last.
const (
	CertOK       = "ok"
	CertRenew    = "renew"
	CertMismatch = "mismatch"
	CertExpired  = "expired"
	CertMissing  = "missing"
)
