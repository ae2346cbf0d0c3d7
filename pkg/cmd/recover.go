package cmd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/workstation"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/fleet"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostlocal"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/recover"
)

// RecoverOptions: bring etcd back from this host's data after quorum loss.
type RecoverOptions struct {
	HostOptions
	WorkstationOptions
	Local bool
	Yes   bool
	Here  bool
	// WaitHosts bounds recover --ssh's wait for hosts that do not answer.
	WaitHosts time.Duration

	face  face
	shown bool // the survey and notes were printed before the plan ran
}

// NewCmdRecover returns `kubectl-etcd recover` (host-local) and, from a
// workstation, `kubectl etcd recover`, which explains what to run where.
func NewCmdRecover(configFlags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RecoverOptions{HostOptions: HostOptions{IOStreams: streams}, WorkstationOptions: WorkstationOptions{ConfigFlags: configFlags}}
	cmd := &cobra.Command{
		Use:   "recover [--yes] [--here]",
		Short: "After quorum loss: restart etcd from this host's data as a new single-member cluster (host-local, as root)",
		Long: `After etcd lost its quorum (the apiserver is down with it), run as root on a
surviving control-plane host. recover:

 1. surveys what is left: this host's member (running, or its data dir read
    offline) and every other member it can reach with this host's etcd CA,
    with each one's raft index and revision. It refuses when the cluster still
    has a quorum, when this host has no etcd data, and when another reachable
    survivor is further ahead (it names the host to run on; --here overrides);
 2. prints the plan and asks for confirmation (--yes for scripts);
 3. stops the local member and copies its data dir aside (never deleted);
 4. restarts it once with --force-new-cluster on a quarantine client port
    (127.0.0.1:2479) that no apiserver reads, verifies it (alone, leading,
    revision not behind the survey), writes the marker /kubectl-etcd/recovery;
 5. writes kubeadm's normal single-member manifest, waits until this host's
    apiserver is ready, and says what to run on every other host.

The other members are removed by --force-new-cluster: etcd answers their peer
traffic with 410 Gone, so a stale member that comes back and reaches this host
stops itself. Bring each back with "kubectl-etcd join --endpoints ..." on it
(its stale data is moved aside). Safe to rerun after a crash: a journal in
/etc/kubernetes/kubectl-etcd/recovery.json records what is done.

Run on a control-plane host (one with /etc/kubernetes/manifests under
--host-root), recover is the host-local one above; --local forces it
elsewhere. From a workstation ("kubectl etcd recover"), it checks the
apiserver: if it answers, there is nothing to recover; if not, it says what
to run on a host.`,
		Example: `  kubectl-etcd recover --dry-run
  kubectl-etcd recover
  kubectl-etcd recover --yes -o json`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.HostOptions.AddFlags(cmd.Flags(), true)
	o.WorkstationOptions.AddFlags(cmd)
	cmd.Flags().BoolVar(&o.Local, "local", false, "recover on this host (as root) even if it has no /etc/kubernetes/manifests under --host-root (with it, the default)")
	cmd.Flags().BoolVarP(&o.Yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().DurationVar(&o.WaitHosts, "wait-for-hosts", 10*time.Minute, "with --ssh: how long to wait for hosts that do not answer (powered off, booting) to join them as they come back")
	cmd.Flags().BoolVar(&o.Here, "here", false, "recover from this host even if another reachable survivor is further ahead (its newer writes are lost)")
	cmd.Flags().BoolVar(&o.SkipKubeadmConfig, hostapi.SkipKubeadmConfigFlag, false, "do not read kubeadm-config through admin.conf; go by this host's manifests (recover --ssh passes it when its survey of this host found kubeadm-config unreadable)")
	_ = cmd.Flags().MarkHidden(hostapi.SkipKubeadmConfigFlag)
	return cmd
}

// Complete chooses the face: --local, else whether this is a control-plane
// host.
func (o *RecoverOptions) Complete(*cobra.Command, []string) error {
	if o.SSH.Enabled {
		// The workstation drives every host over SSH, wherever it runs.
		if o.Local {
			return errors.New("--ssh recovers every host from here and --local this host: give one, not both")
		}
		o.face = workstationFace
		return nil
	}
	f, err := chooseFace(verbRecover, o.Local, "", func() bool { return isControlPlaneHost(o.Root) })
	o.face = f
	return err
}

// Validate rejects, on a host, bad flags and a caller that is not root. From
// a workstation recover only explains, and no flag changes that.
func (o *RecoverOptions) Validate() error {
	if o.face == hostLocalFace {
		return o.validate(nil)
	}
	if o.SSH.Enabled {
		if o.Here {
			return errors.New("--here is for recover on one host; with --ssh the host furthest ahead recovers (run `kubectl-etcd recover --here` as root on the host you choose instead)")
		}
		if o.Output != "" && o.Output != "json" {
			return fmt.Errorf("--output %q: recover supports json", o.Output)
		}
		if o.WaitHosts < 0 {
			return fmt.Errorf("--wait-for-hosts %s is negative", o.WaitHosts)
		}
		return o.SSH.Validate()
	}
	return o.SSH.Validate()
}

// Run recovers on a host, or explains from a workstation.
func (o *RecoverOptions) Run(ctx context.Context) error {
	if o.face == workstationFace {
		return o.workstation(ctx)
	}
	if err := o.loadWithoutQuorum(ctx); err != nil {
		return err
	}
	env := o.env()
	r, err := recover.PlanRecover(ctx, env, recover.Options{Here: o.Here})
	if err != nil {
		return o.reportRecovery(r.Res, err)
	}
	if o.DryRun {
		printSurvey(env.Out, r)
		o.shown = true
	} else if !o.Yes {
		o.shown = true
		if err := confirm(o.In, env.Out, r); err != nil {
			return err
		}
	}
	err = r.Run(ctx)
	return o.reportRecovery(r.Res, err)
}

// confirm prints the plan and asks; anything but yes changes nothing.
func confirm(in io.Reader, out io.Writer, r *recover.Recovery) error {
	printPlan(out, r)
	fmt.Fprint(out, "Proceed? Type 'yes' to continue: ")
	line, _ := bufio.NewReader(in).ReadString('\n')
	if strings.TrimSpace(strings.ToLower(line)) != "yes" && strings.TrimSpace(strings.ToLower(line)) != "y" {
		return errors.New("not confirmed: nothing was changed")
	}
	return nil
}

// printSurvey shows what the survey found, the notes and warnings.
func printSurvey(out io.Writer, r *recover.Recovery) {
	if s := r.Res.Survey; s != nil {
		fmt.Fprintln(out, "What is left:")
		printSurvivor(out, s.Local)
		for _, x := range s.Others {
			printSurvivor(out, x)
		}
	}
	for _, n := range r.Res.Notes {
		fmt.Fprintln(out, n)
	}
	for _, w := range r.Res.Warnings {
		fmt.Fprintln(out, "WARNING:", w)
	}
}

func printPlan(out io.Writer, r *recover.Recovery) {
	printSurvey(out, r)
	fmt.Fprintf(out, "Plan: %s\n", r.Plan.Title)
	for i, s := range r.Plan.Steps {
		fmt.Fprintf(out, "  %d. %s: %s\n", i+1, s.Name, s.Detail)
	}
	if r.Res.Verb == "restore" {
		fmt.Fprintln(out, "Risk: writes made after the snapshot are lost. Hosts whose old data survived are not told they were removed")
		fmt.Fprintln(out, "(the restored cluster has a new cluster ID): keep them off until you run join on each. Then, on each:")
	} else {
		fmt.Fprintln(out, "Risk: the other members' hosts, when they come back, still hold the old data. Each one's etcd stops itself")
		fmt.Fprintln(out, "as soon as it reaches this member (removed: HTTP 410). Do not bring them back while this host is unreachable")
		fmt.Fprintln(out, "from them: two of them together would have a quorum of the old membership. Then, on each:")
	}
	for _, n := range r.Res.Next {
		fmt.Fprintln(out, "  -", n)
	}
}

func printSurvivor(out io.Writer, s recover.Survivor) {
	where := "reachable"
	switch {
	case s.ThisHost && s.Offline:
		where = "this host, stopped (data dir read offline)"
	case s.ThisHost:
		where = "this host, running"
	case !s.Running:
		where = "unreachable: " + s.Error
	}
	lead := "no leader"
	if s.Leader != "" {
		lead = "leader " + s.Leader
	}
	if !s.Running && !s.ThisHost {
		fmt.Fprintf(out, "  %-12s member %-16s %s\n", s.Name, s.ID, where)
		return
	}
	fmt.Fprintf(out, "  %-12s member %-16s raft index %-8d revision %-8d %s; %s\n", s.Name, s.ID, s.RaftIndex, s.Revision, lead, where)
}

func (o *RecoverOptions) reportRecovery(res *recover.Result, runErr error) error {
	if o.Output == "json" {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
		return runErr
	}
	if !o.shown {
		for _, n := range res.Notes {
			fmt.Fprintln(o.Out, n)
		}
	}
	if res.State != nil && !res.DryRun {
		fmt.Fprintln(o.Out)
		hostlocal.PrintState(o.Out, res.State)
	}
	if runErr == nil && len(res.Next) > 0 {
		if res.DryRun {
			fmt.Fprintln(o.Out, "After the recovery, on each other host:")
		} else {
			fmt.Fprintln(o.Out, "\nNext, host by host:")
		}
		for _, n := range res.Next {
			fmt.Fprintln(o.Out, "  -", n)
		}
	}
	return runErr
}

// workstation is `kubectl etcd recover` run with a kubeconfig: it cannot
// recover anything through an apiserver that needs etcd, so it explains.
func (o *RecoverOptions) workstation(ctx context.Context) error {
	if o.SSH.Enabled {
		return o.recoverSSH(ctx)
	}
	// /readyz, not /version: an apiserver whose etcd lost quorum still
	// answers /version, but not /readyz.
	err := o.apiserverReady(ctx)
	var s *workstation.Session
	if err == nil {
		s, err = o.session(o.ErrOut)
	}
	if err != nil {
		return fmt.Errorf("%v\n\nThe apiserver does not answer. If etcd lost its quorum, recover on a surviving control-plane host, as root:\n"+
			"  kubectl-etcd status --local      # what is left, on each host you can reach\n"+
			"  kubectl-etcd recover             # on the host with the most recent data (recover says if another is ahead)\n"+
			"The binary is on every host the plugin ran a host pod on: /var/lib/kubectl-etcd/kubectl-etcd. See docs/runbooks.md", err)
	}
	st, err := s.Status(ctx)
	if err != nil {
		return err
	}
	if err := printClusterStatus(o.Out, st, ""); err != nil {
		return err
	}
	return errors.New("the apiserver answers, so etcd has a quorum: there is nothing to recover (to replace a dead member: kubectl etcd scale, or kubectl-etcd join on its host)")
}

func (o *RecoverOptions) apiserverReady(ctx context.Context) error {
	rc, err := o.ConfigFlags.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	rc.Timeout = 15 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err == nil {
		return nil
	}
	// /readyz lists every check; the failing ones say why.
	var failing []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "[-]") {
			failing = append(failing, strings.TrimPrefix(l, "[-]"))
		}
	}
	if len(failing) > 0 {
		return fmt.Errorf("the apiserver at %s is not ready: %s", rc.Host, strings.Join(failing, "; "))
	}
	return fmt.Errorf("the apiserver at %s is not ready: %w", rc.Host, err)
}

// recoverSSH is `kubectl etcd recover --ssh`: the whole recovery after
// quorum loss from the workstation, every host reached over SSH (package
// fleet decides and drives; each host runs its own host-local verbs).
func (o *RecoverOptions) recoverSSH(ctx context.Context) error {
	progress := progressWriter(o.IOStreams, o.Output)
	var cs kubernetes.Interface
	csErr := errors.New("no kubeconfig")
	if hosts, err := o.SSH.inventory(); err == nil && hosts == nil {
		// No inventory: the Node objects, if the apiserver still serves them.
		if rc, err := o.ConfigFlags.ToRESTConfig(); err != nil {
			csErr = fmt.Errorf("loading kubeconfig: %w", err)
		} else {
			rc.Timeout = 10 * time.Second
			cs, csErr = kubernetes.NewForConfig(rc)
		}
	}
	hosts, err := o.SSH.sshHosts(ctx, cs, csErr)
	if err != nil {
		return err
	}
	t, err := o.SSH.transport(hosts, progress)
	if err != nil {
		return err
	}
	defer t.Close()
	client := &hostapi.Client{Transport: t, Out: progress}
	var names []string
	addrs := map[string]string{}
	for _, h := range hosts {
		names = append(names, h.Name)
		addrs[h.Name] = h.Address
	}
	res, err := fleet.Recover(ctx, client, fleet.Options{Hosts: names, Addresses: addrs, DryRun: o.DryRun, Wait: o.WaitHosts, Poll: 500 * time.Millisecond, Out: progress,
		Confirm: func(*fleet.Plan) error {
			if o.Yes {
				return nil
			}
			fmt.Fprint(progress, "Proceed? Type 'yes' to continue: ")
			line, _ := bufio.NewReader(o.In).ReadString('\n')
			if a := strings.TrimSpace(strings.ToLower(line)); a != "yes" && a != "y" {
				return errors.New("not confirmed: nothing was changed")
			}
			return nil
		}})
	if o.Output == "json" {
		if perr := printObject(o.Out, res, "json"); perr != nil {
			return perr
		}
	}
	return err
}
