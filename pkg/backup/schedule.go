package backup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"text/template"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-etcd/kubectl-etcd/manifests"
)

// The CronJob `backup schedule` installs.
const (
	CronJobName      = "kubectl-etcd-backup"
	CronJobNamespace = "kube-system"
	// jobDeadline bounds one run (snapshot, verification, pruning);
	// runTimeout is the run's own bound, inside it.
	jobDeadline = 10 * time.Minute
	runTimeout  = 9 * time.Minute
)

// ParseEvery turns an interval (Nm or Nh, as Go durations) into a cron
// schedule. cron fires on the clock, so only intervals that divide an hour
// (1-30 minutes) or a day (1, 2, 3, 4, 6, 8, 12 or 24 hours) repeat evenly;
// anything else is refused rather than silently run at uneven gaps.
func ParseEvery(every string) (schedule string, interval time.Duration, err error) {
	d, perr := time.ParseDuration(every)
	const divisors = "intervals must divide an hour (1, 2, 3, 4, 5, 6, 10, 12, 15, 20 or 30 minutes) or a day (1, 2, 3, 4, 6, 8, 12 or 24 hours)"
	switch {
	case perr != nil:
		return "", 0, fmt.Errorf("--every %q: not an interval like 30m or 6h", every)
	case d < time.Minute:
		return "", 0, fmt.Errorf("--every %s: the shortest interval is 1m (cron runs at most once a minute)", every)
	case d%time.Minute != 0:
		return "", 0, fmt.Errorf("--every %s: use whole minutes (cron has no seconds)", every)
	case d < time.Hour:
		m := int(d / time.Minute)
		if 60%m != 0 {
			return "", 0, fmt.Errorf("--every %s: %d minutes does not divide an hour, so runs would not be evenly spaced; %s", every, m, divisors)
		}
		if m == 1 {
			return "* * * * *", d, nil
		}
		return fmt.Sprintf("*/%d * * * *", m), d, nil
	case d%time.Hour != 0:
		return "", 0, fmt.Errorf("--every %s: over an hour, use whole hours; %s", every, divisors)
	default:
		h := int(d / time.Hour)
		switch {
		case h == 24:
			return "0 0 * * *", d, nil
		case h > 24 || 24%h != 0:
			return "", 0, fmt.Errorf("--every %s: %d hours does not divide a day; %s", every, h, divisors)
		case h == 1:
			return "0 * * * *", d, nil
		}
		return fmt.Sprintf("0 */%d * * *", h), d, nil
	}
}

// Schedule says what CronJob to install.
type Schedule struct {
	Every string // as given, e.g. 1h
	Keep  int
	// Node pins the runs to one control-plane node; empty runs on any.
	Node  string
	Image string
	// EtcdPKIDir is the host directory of the etcd certificates (kubeadm's
	// certificatesDir + "/etcd"); default /etc/kubernetes/pki/etcd. The
	// runs get its ca.crt and healthcheck-client.crt/.key, not the CA key.
	EtcdPKIDir string
	// Dir is the host backup directory; default Dir.
	Dir string
}

// CronJob renders the CronJob from manifests/backup-cronjob.yaml.
func CronJob(s Schedule) (*batchv1.CronJob, error) {
	cron, _, err := ParseEvery(s.Every)
	if err != nil {
		return nil, err
	}
	if s.Keep < 1 {
		return nil, fmt.Errorf("--keep %d: keep at least one backup", s.Keep)
	}
	if s.Image == "" {
		return nil, fmt.Errorf("no image to run the backups with")
	}
	if s.EtcdPKIDir == "" {
		s.EtcdPKIDir = "/etc/kubernetes/pki/etcd"
	}
	if s.Dir == "" {
		s.Dir = Dir
	}
	for _, p := range []string{s.EtcdPKIDir, s.Dir} {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return nil, fmt.Errorf("host path %q must be absolute and clean", p)
		}
	}
	tmpl, err := template.New("backup-cronjob.yaml").Option("missingkey=error").Funcs(template.FuncMap{
		// A JSON string is a YAML string: whatever the value, it stays one scalar.
		"quote": func(v string) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
	}).Parse(manifests.BackupCronJob)
	if err != nil {
		return nil, fmt.Errorf("parsing the CronJob template: %w", err)
	}
	var buf bytes.Buffer
	err = tmpl.Execute(&buf, map[string]any{
		"Name": CronJobName, "Namespace": CronJobNamespace, "Schedule": cron, "Every": s.Every,
		"Keep": s.Keep, "KeepString": strconv.Itoa(s.Keep), "Node": s.Node, "Image": s.Image,
		"EtcdPKIDir": s.EtcdPKIDir, "Dir": s.Dir, "ActiveDeadlineSeconds": int64(jobDeadline / time.Second), "RunTimeout": runTimeout.String(),
	})
	if err != nil {
		return nil, fmt.Errorf("rendering the CronJob: %w", err)
	}
	var cj batchv1.CronJob
	if err := yaml.UnmarshalStrict(buf.Bytes(), &cj); err != nil {
		return nil, fmt.Errorf("the rendered CronJob is not valid: %w\n%s", err, buf.String())
	}
	return &cj, nil
}
