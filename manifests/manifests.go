// Package manifests holds the Kubernetes manifests kubectl-etcd installs,
// embedded in the binary so the plugin needs no files beside it.
package manifests

import _ "embed"

// BackupCronJob is the text/template of the scheduled-backup CronJob; see
// pkg/backup for the values it takes and docs/backup.md for what it runs.
//
//go:embed backup-cronjob.yaml
var BackupCronJob string
