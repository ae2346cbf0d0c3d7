package cmd

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/backup"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/workstation"
)

// NewCmdBackup returns `kubectl etcd backup` (run, list, schedule, unschedule).
func NewCmdBackup(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Verified etcd snapshots kept on the control-plane hosts, on a schedule",
		Long: `Backups are verified snapshots kept on the control-plane hosts in
` + backup.Dir + `, named etcd-<UTC time>-<reason>.db, each with a .json
sidecar of its facts. "backup schedule" installs a CronJob that runs
"backup run" on a control-plane host; "backup list" shows every host's backups.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fmt.Errorf("backup needs a subcommand: run, list, schedule or unschedule\nSee '%s --help' for usage", cmd.CommandPath())
		},
	}
	cmd.AddCommand(NewCmdBackupRun(streams), NewCmdBackupList(configFlags, streams),
		NewCmdBackupSchedule(configFlags, streams), NewCmdBackupUnschedule(configFlags, streams))
	return cmd
}

// BackupRunOptions: one backup of this host's member.
type BackupRunOptions struct {
	HostOptions
	Keep     int
	Reason   string
	Dir      string
	Endpoint string
	Timeout  time.Duration
}

// NewCmdBackupRun returns the host-local `backup run`.
func NewCmdBackupRun(streams genericiooptions.IOStreams) *cobra.Command {
	o := &BackupRunOptions{HostOptions: HostOptions{IOStreams: streams}}
	cmd := &cobra.Command{
		Use:   "run [--keep N] [--reason REASON]",
		Short: "Take a verified snapshot of this host's member into the backup directory (as root on a control-plane host)",
		Long: `Run as root on a control-plane host (the scheduled CronJob runs it, and so
does every membership change unless --no-snapshot): a snapshot of this host's
member, written and verified like "snapshot save --local", into --dir as
etcd-<UTC time>-<reason>.db with a .json sidecar of its facts. Then, with
--keep N, only the newest N verified backups stay: older ones are removed,
oldest first, and never the one just taken. Only files named like backups
(etcd-<time>-<reason>.db, their .json and .part) are ever removed. A failed
snapshot removes nothing. Runs in one directory take turns (a lock file).

With -o json the last line of output is one JSON document: the file, its
facts, what was kept and removed.`,
		Example: `  kubectl-etcd backup run --reason pre-upgrade
  kubectl-etcd backup run --keep 24 --reason scheduled -o json`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.HostOptions.AddFlags(cmd.Flags(), true)
	cmd.Flags().IntVar(&o.Keep, "keep", 0, "keep the newest N verified backups, remove older ones (0: remove nothing)")
	cmd.Flags().StringVar(&o.Reason, "reason", "manual", "why (part of the file name): scheduled, pre-scale, manual, ...")
	cmd.Flags().StringVar(&o.Dir, "dir", backup.Dir, "backup directory on the host")
	cmd.Flags().StringVar(&o.Endpoint, "endpoint", "", "the member's client URL (default: this host's member on loopback)")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 15*time.Minute, "give up if the backup has not been written and verified by then")
	return cmd
}

// Complete has nothing to fill in: backup run takes no arguments.
func (o *BackupRunOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate rejects bad flags, then a caller that is not root.
func (o *BackupRunOptions) Validate() error {
	return o.validate(func() error {
		if o.Keep < 0 {
			return fmt.Errorf("--keep %d: use 0 (keep all) or more", o.Keep)
		}
		if o.Timeout <= 0 {
			return fmt.Errorf("--timeout %s must be positive", o.Timeout)
		}
		return backup.ValidReason(o.Reason)
	})
}

// Run takes the backup.
func (o *BackupRunOptions) Run(ctx context.Context) error {
	if err := o.loadReadOnly(ctx); err != nil {
		return err
	}
	dir, err := hostFilePath(o.host, o.Dir)
	if err != nil {
		return err
	}
	if err := backup.CheckDir(o.host.HostPathOf(dir), map[string]string{
		o.config.DataDir():   "etcd's data dir, which kubectl-etcd moves aside whole; and a backup on etcd's own disk takes the space etcd needs",
		o.host.KubernetesDir: "kubeadm's configuration, certificates and static-pod manifests",
	}); err != nil {
		return err
	}
	endpoint := o.Endpoint
	if endpoint == "" {
		endpoint = staticpod.LocalEtcdServer(o.config)
	}
	progress := o.Out
	if o.Output == "json" {
		progress = o.ErrOut
	}
	src, done, err := localSource(o.host, o.config, endpoint)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if !o.DryRun {
		fmt.Fprintf(progress, "backing up the member at %s into %s\n", endpoint, o.Dir)
	}
	res, err := backup.Run(ctx, src, backup.RunOptions{Dir: dir, Reason: o.Reason, Keep: o.Keep, DryRun: o.DryRun, Node: o.config.NodeName()})
	if res != nil {
		// Report host paths, not this process's view of them.
		res.Dir, res.File = o.Dir, staticpod.NewHost(o.Root).HostPathOf(res.File)
		if res.Snapshot != nil {
			res.Snapshot.Path = res.File
		}
	}
	if err != nil {
		return err
	}
	if o.Output == "json" {
		return printJSON(o.Out, res, false)
	}
	if res.DryRun {
		fmt.Fprintf(o.Out, "(dry run) would stream a snapshot from %s to %s, verify it, and then keep %s, remove %s\n",
			endpoint, res.File, listOrNone(res.Kept), listOrNone(res.Removed))
		return nil
	}
	if err := printSnapshotInfo(o.Out, "", "Backup saved to", res.Snapshot); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "Kept %d backup(s) in %s; removed: %s\n", len(res.Kept), o.Dir, listOrNone(res.Removed))
	for _, p := range res.Problems {
		fmt.Fprintf(o.Out, "warning: %s\n", p)
	}
	return nil
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// BackupListOptions: the backups of this host, or of every control-plane host.
type BackupListOptions struct {
	HostOptions
	WorkstationOptions
	Local bool
	Dir   string

	face face
}

// NewCmdBackupList returns `backup list [--local]`.
func NewCmdBackupList(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &BackupListOptions{HostOptions: HostOptions{IOStreams: streams}, WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}}
	cmd := &cobra.Command{
		Use:   "list [--local]",
		Short: "List the backups on every control-plane host and the schedule (or, with --local, this host's)",
		Long: `From a workstation: the backup CronJob (schedule, last run, last success)
and, read through a short-lived pod on each control-plane node, the backups in
its ` + backup.Dir + `. With --local, as root on a host: the backups there
(without --local, list is the workstation's wherever it runs).
A backup is "verified" when it was verified as it was taken and its size has
not changed since; "snapshot status FILE" reads it again in full.`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.HostOptions.AddFlags(cmd.Flags(), false)
	o.WorkstationOptions.AddFlags(cmd)
	cmd.Flags().BoolVar(&o.Local, "local", false, "list this host's backups (as root on a control-plane host)")
	cmd.Flags().StringVar(&o.Dir, "dir", backup.Dir, "with --local: backup directory on the host")
	return cmd
}

// Complete chooses the face (--local).
func (o *BackupListOptions) Complete(*cobra.Command, []string) error {
	f, err := chooseFace(verbBackupList, o.Local, "", nil)
	o.face = f
	return err
}

// Validate rejects bad flags before anything is contacted or, with --local,
// a caller that is not root.
func (o *BackupListOptions) Validate() error {
	if o.face == hostLocalFace {
		return o.validate(nil)
	}
	return o.validateFlags()
}

// Run lists the backups.
func (o *BackupListOptions) Run(ctx context.Context) error {
	if o.face == hostLocalFace {
		return o.runLocal()
	}
	return o.runWorkstation(ctx)
}

func (o *BackupListOptions) runLocal() error {
	// Only the directory is read: no cluster configuration needed.
	o.host = staticpod.NewHost(o.Root)
	dir, err := hostFilePath(o.host, o.Dir)
	if err != nil {
		return err
	}
	entries, err := backup.List(dir, true)
	if err != nil {
		return err
	}
	for i := range entries {
		entries[i].Path = staticpod.NewHost(o.Root).HostPathOf(entries[i].Path)
		if entries[i].Info != nil {
			entries[i].Info.Path = entries[i].Path
		}
	}
	if entries == nil {
		entries = []backup.Entry{}
	}
	if o.Output == "json" {
		// One line: the plugin reads the last JSON line of a host pod's output.
		return printJSON(o.Out, map[string]any{"node": o.NodeName, "dir": o.Dir, "backups": entries}, false)
	}
	printBackups(o.Out, entries, "")
	return nil
}

func (o *BackupListOptions) runWorkstation(ctx context.Context) error {
	s, err := o.session(o.ErrOut)
	if err != nil {
		return err
	}
	l, err := s.ListBackups(ctx)
	if err != nil {
		return err
	}
	if o.Output == "json" {
		return printJSON(o.Out, l, true)
	}
	printBackupList(o.Out, l)
	return nil
}

func printBackupList(w io.Writer, l *workstation.BackupList) {
	if cj := l.CronJob; cj != nil {
		fmt.Fprintf(w, "Schedule: CronJob %s, every %s (%q UTC), keep %s, on %s, image %s\n", cj.Name, cj.Every, cj.Schedule, cj.Keep, nodeOrAny(cj.Node), cj.Image)
		fmt.Fprintf(w, "  last run: %s   last success: %s   running: %d\n", timeOrNever(cj.LastScheduleTime), timeOrNever(cj.LastSuccessfulTime), cj.Active)
		if cj.LastFailed != "" {
			fmt.Fprintf(w, "  %s\n", cj.LastFailed)
		}
	} else {
		fmt.Fprintln(w, "Schedule: none (kubectl etcd backup schedule --every 1h --keep 24)")
	}
	fmt.Fprintln(w)
	for _, n := range l.Nodes {
		if n.Error != "" {
			fmt.Fprintf(w, "%s: cannot read %s: %s\n", n.Node, l.Dir, n.Error)
			continue
		}
		printBackups(w, n.Backups, n.Node)
	}
}

func printBackups(w io.Writer, entries []backup.Entry, node string) {
	prefix := ""
	if node != "" {
		prefix = node + ": "
	}
	if len(entries) == 0 {
		fmt.Fprintf(w, "%sno backups\n", prefix)
		return
	}
	fmt.Fprintf(w, "%s%d backup(s)\n", prefix, len(entries))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  FILE\tTAKEN (UTC)\tREASON\tSIZE\tREVISION\tKEYS\tVERIFIED\tSHA256")
	for _, e := range entries {
		rev, keys, sum, ok := "-", "-", "-", "yes"
		if e.Info != nil {
			rev, keys, sum = fmt.Sprint(e.Info.Revision), fmt.Sprint(e.Info.TotalKeys), shortSum(e.Info.SHA256)
		}
		if !e.Verified {
			ok = "NO: " + e.Problem
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Path, e.Time.Format("2006-01-02 15:04:05"), e.Reason, mib(e.Size), rev, keys, ok, sum)
	}
	tw.Flush()
}

func shortSum(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

func nodeOrAny(n string) string {
	if n == "" {
		return "any control-plane node"
	}
	return "node " + n
}

func timeOrNever(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// BackupScheduleOptions: install or update the backup CronJob.
type BackupScheduleOptions struct {
	WorkstationOptions
	genericiooptions.IOStreams
	Every  string
	Keep   int
	Node   string
	DryRun bool
	Output string
}

// NewCmdBackupSchedule returns `backup schedule`.
func NewCmdBackupSchedule(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &BackupScheduleOptions{WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "schedule --every 1h --keep 24 [--node NODE]",
		Short: "Install (or update) the CronJob that backs etcd up on a control-plane host",
		Long: `Install the CronJob kube-system/` + backup.CronJobName + ` (manifests/backup-cronjob.yaml):
every --every it runs "kubectl-etcd backup run --keep N --reason scheduled" in
this image on a control-plane node (--node pins one), which snapshots that
host's member into ` + backup.Dir + ` and keeps the newest N verified backups.
The pod mounts only the host's etcd CA directory and static-pod manifests
(read-only) and the backup directory; it signs a short-lived client
certificate in memory. No key is put in the spec, its environment or a Secret.
Runs never overlap; each is stopped after 10 minutes.

--every is Nm or Nh and must divide an hour or a day (cron runs on the
clock). Running it again with other flags updates the CronJob; with the same
flags it changes nothing.`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.WorkstationOptions.AddFlags(cmd)
	cmd.Flags().StringVar(&o.Every, "every", "1h", "interval between backups: Nm or Nh dividing an hour or a day (e.g. 15m, 1h, 6h, 24h)")
	cmd.Flags().IntVar(&o.Keep, "keep", 24, "verified backups kept on each host")
	cmd.Flags().StringVar(&o.Node, "node", "", "run on this control-plane node only (default: any control-plane node)")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "print the CronJob and change nothing")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json")
	return cmd
}

// Complete has nothing to fill in: backup schedule takes no arguments.
func (o *BackupScheduleOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate rejects bad flags before the cluster is contacted.
func (o *BackupScheduleOptions) Validate() error {
	if o.Output != "" && o.Output != "json" {
		return fmt.Errorf("unknown output format %q: only json is supported", o.Output)
	}
	if _, _, err := backup.ParseEvery(o.Every); err != nil {
		return err
	}
	if o.Keep < 1 {
		return fmt.Errorf("--keep %d: keep at least one backup", o.Keep)
	}
	return nil
}

// Run installs or updates the CronJob (or, with --dry-run, prints it).
func (o *BackupScheduleOptions) Run(ctx context.Context) error {
	s, err := o.session(o.ErrOut)
	if err != nil {
		return err
	}
	res, err := s.ScheduleBackups(ctx, backup.Schedule{Every: o.Every, Keep: o.Keep, Node: o.Node, Image: o.Image}, o.DryRun)
	if err != nil {
		return err
	}
	if o.Output == "json" {
		return printJSON(o.Out, res, true)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(o.ErrOut, "warning: %s\n", w)
	}
	if res.Object != nil {
		raw, err := yaml.Marshal(res.Object)
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "(dry run) %s CronJob %s:\n---\n%s", res.Action, res.CronJob, raw)
		return nil
	}
	fmt.Fprintf(o.Out, "CronJob %s %s: every %s (%q UTC), keep %d, on %s, image %s; backups in %s on the host\n",
		res.CronJob, res.Action, res.Every, res.Schedule, res.Keep, nodeOrAny(res.Node), res.Image, res.Dir)
	return nil
}

// BackupUnscheduleOptions: remove the backup CronJob.
type BackupUnscheduleOptions struct {
	WorkstationOptions
	genericiooptions.IOStreams
	DryRun bool
	Output string
}

// NewCmdBackupUnschedule returns `backup unschedule`.
func NewCmdBackupUnschedule(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &BackupUnscheduleOptions{WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "unschedule",
		Short: "Remove the backup CronJob (the backups on the hosts stay)",
		Args:  cobra.NoArgs,
		RunE:  runE(o),
	}
	o.WorkstationOptions.AddFlags(cmd)
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "say what would be removed and change nothing")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json")
	return cmd
}

// Complete has nothing to fill in: backup unschedule takes no arguments.
func (o *BackupUnscheduleOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate rejects an output format other than json before the cluster is
// contacted.
func (o *BackupUnscheduleOptions) Validate() error {
	if o.Output != "" && o.Output != "json" {
		return fmt.Errorf("unknown output format %q: only json is supported", o.Output)
	}
	return nil
}

// Run removes the CronJob (or, with --dry-run, says what it would remove).
func (o *BackupUnscheduleOptions) Run(ctx context.Context) error {
	s, err := o.session(o.ErrOut)
	if err != nil {
		return err
	}
	msg, err := s.UnscheduleBackups(ctx, o.DryRun)
	if err != nil {
		return err
	}
	if o.Output == "json" {
		return printJSON(o.Out, map[string]any{"dryRun": o.DryRun, "result": msg}, true)
	}
	fmt.Fprintln(o.Out, msg)
	return nil
}
