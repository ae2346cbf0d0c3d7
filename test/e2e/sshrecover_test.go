//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// sshPlugin runs the plugin from the machine's root namespace (the
// workstation) with --ssh and the bed's test key and known_hosts, without
// a kubeconfig: the apiserver is down in these stories.
func sshPlugin(b *testbed.Bed, args ...string) *exec.Cmd {
	a := b.SSH()
	base := []string{"--ssh", "--ssh-user", "root", "--ssh-key", a.KeyFile, "--ssh-known-hosts", a.KnownHostsFile,
		// The bed's addresses have no route from the machine's namespace:
		// its relay, as an operator's bastion relay would be.
		"--ssh-proxy-command", a.ProxyCommand, "--kubeconfig", "/nonexistent"}
	// The verb (its words: "certs check"), then the bed's flags, then the
	// story's, which win.
	verb := 0
	for verb < len(args) && !strings.HasPrefix(args[verb], "-") {
		verb++
	}
	argv := append(append(append([]string{}, args[:verb]...), base...), args[verb:]...)
	cmd := exec.Command(filepath.Join(b.BinDir(), "kubectl-etcd"), argv...)
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

func runSSHPlugin(t *testing.T, b *testbed.Bed, args ...string) (string, error) {
	t.Helper()
	start := time.Now()
	out, err := sshPlugin(b, args...).CombinedOutput()
	t.Logf("workstation: kubectl etcd %s --ssh (%s)\n%s", strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond), out)
	return string(out), err
}

// hostsFlag names the bed's hosts by node name and address.
func hostsFlag(b *testbed.Bed, names ...string) string {
	var hs []string
	for _, n := range names {
		hs = append(hs, n+"="+b.Host(n).Address)
	}
	return "--hosts=" + strings.Join(hs, ",")
}

// storyRecoverSurvivorChoice, over SSH (issue #13): h1 goes down first and
// misses writes; then h3 goes down, leaving h2 alone without a quorum. h1
// comes back with its etcd kept stopped. The host-local recover on h1
// (behind) refuses and names h2. Then, from the workstation: bad input is
// refused with nothing changed on any host; `recover --ssh --dry-run` picks
// h2 (ahead); a `recover --ssh --yes` interrupted (Ctrl-C) during h2's
// recovery stops; the same command again carries on h2's recovery, joins h1
// at once, waits for h3 (powered on meanwhile) and joins it: 3 voters,
// every acknowledged write readable.
func storyRecoverSurvivorChoice(t *testing.T, b *testbed.Bed) {
	h1, h2, h3 := b.Host("h1"), b.Host("h2"), b.Host("h3")
	ctx := context.Background()
	ns := "e2e-survivor"
	w := startWriter(t, b, ns)
	time.Sleep(4 * time.Second)
	if err := h1.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second) // writes only h2 and h3 have
	if err := h3.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	// h1 boots with its etcd manifest parked (as `kubectl-etcd` parks it), so
	// its stale member stays stopped and h2 stays alone.
	disk := b.Dir + "/hosts/h1/disk/etc/kubernetes"
	if err := os.MkdirAll(disk+"/kubectl-etcd", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(disk+"/manifests/etcd.yaml", disk+"/kubectl-etcd/etcd.yaml.stopped"); err != nil {
		t.Fatal(err)
	}
	if err := h1.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	changed := "/etc/kubernetes/kubectl-etcd/recovery.json /etc/kubernetes/manifests/etcd.yaml /var/lib/etcd/.kubectl-etcd-* /var/lib/etcd.stale-member-*"
	before := map[string][]string{"h1": pathsNow(t, h1, changed), "h2": pathsNow(t, h2, changed)}
	unchanged := func(what string) {
		t.Helper()
		for _, h := range []*testbed.Host{h1, h2} {
			if p := newPaths(t, h, changed, before[h.Name]); len(p) > 0 {
				t.Errorf("%s left %s on %s", what, p, h.Name)
			}
		}
	}

	out, err := kectl(t, h1, "recover", "--yes")
	if err == nil || !strings.Contains(out, "further ahead") || !strings.Contains(out, "`kubectl-etcd recover` as root on h2") {
		t.Fatalf("recover on h1 (behind): %v\n%s", err, out)
	}
	unchanged("a refused host-local recover")

	// From the workstation, all read-only, at once (each survey waits on
	// h3's dial timeouts): bad input, each refused; the plan (h2 is ahead
	// of h1, h3 is waited for); each host's own view (h1's etcd stopped,
	// h2's running without a quorum, h3 not answering). Nothing changed.
	all := hostsFlag(b, "h1", "h2", "h3")
	empty := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	refused := func(want string) func(string, error) bool {
		return func(out string, err error) bool {
			return err != nil && strings.Contains(out, "nothing was changed on any host") && strings.Contains(out, want)
		}
	}
	checks := []struct {
		name string
		args []string
		ok   func(out string, err error) bool
	}{
		{"recover with an unknown host key", []string{"recover", "--yes", all, "--ssh-known-hosts", empty}, refused("SHA256:")},
		{"recover as a user without sudo", []string{"recover", "--yes", all, "--ssh-user", testbed.SSHUserNoSudo}, refused("cannot run sudo without a password")},
		{"recover with a wrong --hosts name", []string{"recover", "--yes", all + ",h9"}, refused("h9 does not answer and is no member")},
		{"recover --dry-run", []string{"recover", "--dry-run", all}, func(out string, err error) bool {
			return err == nil && strings.Contains(out, "Plan: h2 is the furthest ahead") &&
				strings.Contains(out, "on h1: kubectl-etcd join --endpoints https://"+h2.Address+":2379") && strings.Contains(out, "on h3, when it answers")
		}},
		{"status", []string{"status", all}, func(out string, err error) bool {
			return err == nil && strings.Contains(out, "== h1 ==") && strings.Contains(out, "== h2 ==") && strings.Contains(out, "== h3 ==\nnot answered: ")
		}},
	}
	outs, errs := make([]string, len(checks)), make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() { outs[i], errs[i] = runSSHPlugin(t, b, c.args...) })
	}
	wg.Wait()
	for i, c := range checks {
		if !c.ok(outs[i], errs[i]) {
			t.Errorf("%s --ssh: %v\n%s", c.name, errs[i], outs[i])
		}
	}
	unchanged("the read-only and refused runs of recover --ssh and status --ssh")
	if fi, err := os.Stat(empty); err != nil || fi.Size() != 0 {
		t.Errorf("a refused unknown host key was written to known_hosts: %v", err)
	}
	if t.Failed() {
		return
	}

	// Ctrl-C in the middle of h2's recovery: the run stops, and the same
	// command carries on from where h2's journal says it got.
	cmd := sshPlugin(b, "recover", "--yes", all, "--ssh-user", testbed.SSHUserSudo)
	var interrupted syncBuffer
	cmd.Stdout, cmd.Stderr = &interrupted, &interrupted
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); !strings.Contains(interrupted.String(), "h2 | [3/11]") && time.Since(start) < 2*time.Minute; {
		time.Sleep(100 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	t.Logf("workstation: kubectl etcd recover --ssh --yes, interrupted during h2's step 3:\n%s", interrupted.String())
	if err == nil || strings.Contains(interrupted.String(), "Joining h1") {
		t.Fatalf("the interrupted recover --ssh went on: %v", err)
	}
	// Without a quorum no apiserver can read kubeadm-config: h2's survey
	// found so, and its recover is not made to wait for it again.
	if !strings.Contains(interrupted.String(), "Recovering on h2 (its survey could not read kubeadm-config") {
		t.Errorf("recover --ssh had h2 read kubeadm-config again")
	}

	// The run; h3 is powered on once it waits for it.
	// As an operator usually logs in: a user with passwordless sudo.
	cmd = sshPlugin(b, "recover", "--yes", all, "--wait-for-hosts", "5m", "-o", "json", "--ssh-user", testbed.SSHUserSudo)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(stderr.String(), "Waiting up to") && time.Since(start) < 5*time.Minute {
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("recovered on h2 and joined h1 after %s; powering h3 on", time.Since(start).Round(100*time.Millisecond))
	if err := h3.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	t.Logf("workstation: kubectl etcd recover --ssh --yes (%s)\n%s", time.Since(start).Round(100*time.Millisecond), stderr.String())
	if err != nil {
		t.Fatalf("recover --ssh: %v\n%s", err, stdout.String())
	}
	var res struct {
		Plan   struct{ Survivor string }
		Joined []string
	}
	if !strings.Contains(stderr.String(), "h2 has an unfinished recovery: it is carried on there") {
		t.Errorf("the rerun after the interrupt did not carry on h2's recovery")
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res.Plan.Survivor != "h2" || strings.Join(res.Joined, ",") != "h1,h3" {
		t.Errorf("recover --ssh -o json: survivor %q, joined %q (%v)\n%s", res.Plan.Survivor, res.Joined, err, stdout.String())
	}
	for _, h := range []*testbed.Host{h1, h2, h3} {
		apiserverReady(t, h)
	}
	wantVoters(t, b, "h2", "h1", "h2", "h3")
	w.finish(t, b, ns)

	// With the apiserver back, --ssh is every workstation verb's transport:
	// certs check reads each host's certificates over SSH, the hosts being
	// the control-plane Nodes (their InternalIP), with no host pod.
	out, err = runSSHPlugin(t, b, "certs", "check", "--kubeconfig", b.Kubeconfig())
	if err != nil || strings.Count(out, "etcd-server") < 3 || strings.Contains(out, "pod ") {
		t.Errorf("certs check --ssh: %v\n%s", err, out)
	}
}

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}
