package workstation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/backup"
)

// specHashAnnotation records what was rendered, so a rerun with the same
// flags is "unchanged" (the server adds defaults, so specs never compare
// equal).
const specHashAnnotation = "kubectl-etcd.io/spec-hash"

// ScheduleResult is what `backup schedule` did.
type ScheduleResult struct {
	Action   string           `json:"action"` // created | updated | unchanged | (dry run) would create ...
	DryRun   bool             `json:"dryRun"`
	CronJob  string           `json:"cronJob"`
	Schedule string           `json:"schedule"`
	Every    string           `json:"every"`
	Keep     int              `json:"keep"`
	Node     string           `json:"node,omitempty"`
	Image    string           `json:"image"`
	Dir      string           `json:"dir"`
	Warnings []string         `json:"warnings,omitempty"`
	Object   *batchv1.CronJob `json:"object,omitempty"` // with --dry-run
}

// ScheduleBackups installs or updates the backup CronJob. The etcd PKI dir
// comes from the cluster's kubeadm-config (certificatesDir), so the job
// mounts the right host directory. --node must be a control-plane node with
// an etcd member; without it the job may land on any control-plane node, so
// nodes without etcd are a warning.
func (s *Session) ScheduleBackups(ctx context.Context, sched backup.Schedule, dryRun bool) (*ScheduleResult, error) {
	if _, _, err := backup.ParseEvery(sched.Every); err != nil {
		return nil, err
	}
	nodes, err := s.ControlPlaneNodes(ctx)
	if err != nil {
		return nil, err
	}
	etcdNodes, err := s.EtcdPodNodes(ctx)
	if err != nil {
		return nil, err
	}
	res := &ScheduleResult{DryRun: dryRun, CronJob: backup.CronJobNamespace + "/" + backup.CronJobName, Every: sched.Every,
		Keep: sched.Keep, Node: sched.Node, Image: sched.Image, Dir: backup.Dir}
	if sched.Node != "" {
		if _, ok := nodeNamed(nodes, sched.Node); !ok {
			return nil, fmt.Errorf("--node %s is not a control-plane node (they are: %s)", sched.Node, nodeNames(nodes))
		}
		if !slices.Contains(etcdNodes, sched.Node) {
			return nil, fmt.Errorf("--node %s runs no etcd member to back up (members run on: %s)", sched.Node, strings.Join(etcdNodes, ", "))
		}
	} else {
		for _, n := range nodes {
			if !slices.Contains(etcdNodes, n.Name) {
				res.Warnings = append(res.Warnings, fmt.Sprintf("control-plane node %s runs no etcd member: a run scheduled there fails; pin the job with --node", n.Name))
			}
		}
	}
	if sched.EtcdPKIDir == "" {
		sched.EtcdPKIDir = filepath.Join(s.certificatesDir(ctx), "etcd")
	}
	want, err := backup.CronJob(sched)
	if err != nil {
		return nil, err
	}
	res.Schedule = want.Spec.Schedule
	raw, _ := json.Marshal(want.Spec)
	sum := sha256.Sum256(append(raw, []byte(fmt.Sprint(want.Labels, want.Annotations))...))
	want.Annotations[specHashAnnotation] = hex.EncodeToString(sum[:8])

	if !dryRun {
		// The CronJob is shared state: two schedules at once would race
		// on its update, and an unschedule meanwhile would be undone.
		lctx, release, err := s.lock(ctx, "backup schedule", "backup schedule: CronJob "+res.CronJob+" every "+sched.Every)
		if err != nil {
			return nil, err
		}
		defer release()
		ctx = lctx
	}
	cjs := s.Clientset.BatchV1().CronJobs(backup.CronJobNamespace)
	have, err := cjs.Get(ctx, backup.CronJobName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		res.Action = "created"
		if dryRun {
			res.Action, res.Object = "would create", want
			return res, nil
		}
		if _, err := cjs.Create(ctx, want, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("creating CronJob %s: %w", res.CronJob, err)
		}
	case err != nil:
		return nil, fmt.Errorf("reading CronJob %s: %w", res.CronJob, err)
	case have.Annotations[specHashAnnotation] == want.Annotations[specHashAnnotation]:
		res.Action = "unchanged"
	default:
		res.Action = "updated"
		if dryRun {
			res.Action, res.Object = "would update", want
			return res, nil
		}
		have.Labels, have.Annotations, have.Spec = want.Labels, want.Annotations, want.Spec
		if _, err := cjs.Update(ctx, have, metav1.UpdateOptions{}); err != nil {
			return nil, fmt.Errorf("updating CronJob %s: %w", res.CronJob, err)
		}
	}
	return res, nil
}

// certificatesDir is kubeadm's certificatesDir from the cluster's
// kubeadm-config, or kubeadm's default when it cannot be read.
func (s *Session) certificatesDir(ctx context.Context) string {
	const def = "/etc/kubernetes/pki"
	cc, err := s.clusterConfiguration(ctx)
	if err != nil || cc.CertificatesDir == "" {
		return def
	}
	return cc.CertificatesDir
}

// UnscheduleBackups removes the CronJob and its Jobs; the backups on the
// hosts stay. Nothing to remove is not an error (a rerun).
func (s *Session) UnscheduleBackups(ctx context.Context, dryRun bool) (string, error) {
	name := backup.CronJobNamespace + "/" + backup.CronJobName
	cjs := s.Clientset.BatchV1().CronJobs(backup.CronJobNamespace)
	if _, err := cjs.Get(ctx, backup.CronJobName, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		return fmt.Sprintf("no CronJob %s: backups are not scheduled; nothing to do", name), nil
	} else if err != nil {
		return "", fmt.Errorf("reading CronJob %s: %w", name, err)
	}
	if dryRun {
		return fmt.Sprintf("would delete CronJob %s and its Jobs; the backups on the hosts stay in %s", name, backup.Dir), nil
	}
	ctx, release, err := s.lock(ctx, "backup unschedule", "backup unschedule: CronJob "+name)
	if err != nil {
		return "", err
	}
	defer release()
	bg := metav1.DeletePropagationBackground
	if err := cjs.Delete(ctx, backup.CronJobName, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
		return "", fmt.Errorf("deleting CronJob %s: %w", name, err)
	}
	return fmt.Sprintf("deleted CronJob %s and its Jobs; the backups on the hosts stay in %s", name, backup.Dir), nil
}

// CronJobState is the schedule as the cluster has it.
type CronJobState struct {
	Name               string     `json:"name"`
	Schedule           string     `json:"schedule"`
	Every              string     `json:"every,omitempty"`
	Keep               string     `json:"keep,omitempty"`
	Node               string     `json:"node,omitempty"`
	Image              string     `json:"image"`
	Suspended          bool       `json:"suspended"`
	Active             int        `json:"active"`
	LastScheduleTime   *time.Time `json:"lastScheduleTime,omitempty"`
	LastSuccessfulTime *time.Time `json:"lastSuccessfulTime,omitempty"`
	// LastFailed is the newest failed Job, when it is newer than the last success.
	LastFailed string `json:"lastFailed,omitempty"`
}

// NodeBackups is one control-plane node's backup directory.
type NodeBackups struct {
	Node    string         `json:"node"`
	Backups []backup.Entry `json:"backups"`
	Error   string         `json:"error,omitempty"`
}

// BackupList is what `backup list` reports.
type BackupList struct {
	CronJob *CronJobState `json:"cronJob,omitempty"`
	Dir     string        `json:"dir"`
	Nodes   []NodeBackups `json:"nodes"`
}

// ListBackups reads the CronJob and, through a host pod on each
// control-plane node (in parallel), the backups in its directory. A node
// that cannot be read is a row with its error.
func (s *Session) ListBackups(ctx context.Context) (*BackupList, error) {
	nodes, err := s.ControlPlaneNodes(ctx)
	if err != nil {
		return nil, err
	}
	out := &BackupList{Dir: backup.Dir, Nodes: make([]NodeBackups, len(nodes))}
	if out.CronJob, err = s.cronJobState(ctx); err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			nb := NodeBackups{Node: n.Name, Backups: []backup.Entry{}}
			local, err := s.Hosts.BackupList(ctx, n.Name)
			if err != nil {
				nb.Error = err.Error()
			} else if local.Backups != nil {
				nb.Backups = local.Backups
			}
			out.Nodes[i] = nb
		})
	}
	wg.Wait()
	return out, nil
}

func (s *Session) cronJobState(ctx context.Context) (*CronJobState, error) {
	cj, err := s.Clientset.BatchV1().CronJobs(backup.CronJobNamespace).Get(ctx, backup.CronJobName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading CronJob %s/%s: %w", backup.CronJobNamespace, backup.CronJobName, err)
	}
	st := &CronJobState{Name: cj.Namespace + "/" + cj.Name, Schedule: cj.Spec.Schedule, Every: cj.Annotations["kubectl-etcd.io/every"],
		Keep: cj.Annotations["kubectl-etcd.io/keep"], Node: cj.Annotations["kubectl-etcd.io/node"],
		Suspended: cj.Spec.Suspend != nil && *cj.Spec.Suspend, Active: len(cj.Status.Active)}
	if c := cj.Spec.JobTemplate.Spec.Template.Spec.Containers; len(c) > 0 {
		st.Image = c[0].Image
	}
	if t := cj.Status.LastScheduleTime; t != nil {
		st.LastScheduleTime = &t.Time
	}
	if t := cj.Status.LastSuccessfulTime; t != nil {
		st.LastSuccessfulTime = &t.Time
	}
	// Jobs made from the CronJob by hand (kubectl create job --from) count
	// too: they are owned by it.
	jobs, err := s.Clientset.BatchV1().Jobs(backup.CronJobNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=kubectl-etcd-backup"})
	if err == nil {
		for _, j := range jobs.Items {
			for _, c := range j.Status.Conditions {
				if c.Status != "True" {
					continue
				}
				switch c.Type {
				case batchv1.JobComplete:
					if st.LastSuccessfulTime == nil || c.LastTransitionTime.After(*st.LastSuccessfulTime) {
						t := c.LastTransitionTime.Time
						st.LastSuccessfulTime = &t
					}
				case batchv1.JobFailed:
					if st.LastSuccessfulTime == nil || c.LastTransitionTime.After(*st.LastSuccessfulTime) {
						st.LastFailed = fmt.Sprintf("Job %s failed at %s: %s", j.Name, c.LastTransitionTime.UTC().Format(time.RFC3339), c.Message)
					}
				}
			}
		}
	}
	return st, nil
}

func nodeNames(nodes []Node) string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return strings.Join(out, ", ")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
