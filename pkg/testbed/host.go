package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Role says how a host takes part in the cluster.
type Role string

const (
	// RoleInit runs `kubeadm init`: the first control-plane host and etcd member.
	RoleInit Role = "init"
	// RoleControlPlane joins with `kubeadm join --control-plane`, the normal way,
	// which gives it a stacked etcd member.
	RoleControlPlane Role = "control-plane"
	// RoleControlPlaneNoEtcd is a control-plane host without an etcd member: its
	// kubelet talks to the load balancer, its apiserver waits for a local member.
	RoleControlPlaneNoEtcd Role = "control-plane-no-etcd"
	// RoleWorker joins with a plain `kubeadm join`.
	RoleWorker Role = "worker"
	// RoleBare is started (containerd, images) but not joined.
	RoleBare Role = "bare"
)

// HostConfig is what is recorded about a host in the bed's state file.
type HostConfig struct {
	// Name is the bed's name for the host (h1, h2, ...): of its namespaces,
	// state dir, cgroups and veth.
	Name string `json:"name"`
	// Node is its hostname, node name and etcd member name, when it is not
	// Name (a bed with Options.Domain: h1.cp.example.internal).
	Node    string `json:"node,omitempty"`
	Address string `json:"address"`
	Role    Role   `json:"role"`
}

// NodeName is the host's hostname, which kubeadm makes its node name and
// its etcd member's name.
func (hc HostConfig) NodeName() string {
	if hc.Node != "" {
		return hc.Node
	}
	return hc.Name
}

// newHostConfig is the i-th host (from 0) of a bed.
func newHostConfig(a addressing, domain string, i int, r Role) HostConfig {
	hc := HostConfig{Name: fmt.Sprintf("h%d", i+1), Address: a.host(i), Role: r}
	if domain != "" {
		hc.Node = hc.Name + "." + domain
	}
	return hc
}

// validDomain refuses a domain that would not make node names kubelet and
// the apiserver accept (lower-case DNS labels, 253 characters in all).
func validDomain(d string) error {
	if d == "" {
		return nil
	}
	if len("h200."+d) > 253 {
		return fmt.Errorf("domain %q makes node names longer than 253 characters", d)
	}
	for _, l := range strings.Split(d, ".") {
		ok := l != "" && len(l) <= 63 && l[0] != '-' && l[len(l)-1] != '-'
		for _, c := range l {
			ok = ok && (c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-')
		}
		if !ok {
			return fmt.Errorf("domain %q: %q is not a lower-case DNS label", d, l)
		}
	}
	return nil
}

// Host is one machine of the bed: its own network, mount, UTS and PID
// namespaces, filesystem, containerd and kubelet.
type Host struct {
	HostConfig
	bed *Bed
}

// LocalEtcdURL is where the host's etcd member serves clients on loopback,
// as kubeadm lays it out: https://127.0.0.1:2379, or https://[::1]:2379 on
// an IPv6 bed, whose members do not listen on 127.0.0.1.
func (h *Host) LocalEtcdURL() string {
	if h.bed.IPv6 {
		return "https://[::1]:2379"
	}
	return "https://127.0.0.1:2379"
}

// Netns is the name of the host's network namespace.
func (h *Host) Netns() string { return h.bed.Name + "-" + h.Name }

// NetnsPath is the path of the host's network namespace.
func (h *Host) NetnsPath() string { return "/run/netns/" + h.Netns() }

// StateDir holds the host's disk: overlay upper dirs and its ext4 directories.
func (h *Host) StateDir() string { return filepath.Join(h.bed.Dir, "hosts", h.Name) }

// CgroupRoot is the kubelet cgroupRoot of this host.
func (h *Host) CgroupRoot() string { return "/" + h.bed.Name + "-" + h.Name }

func (h *Host) launcherPIDFile() string { return filepath.Join(h.StateDir(), "launcher.pid") }

// InitPID is the host's PID 1, seen from the real machine (0 when off).
func (h *Host) InitPID() int {
	b, err := os.ReadFile(h.launcherPIDFile())
	if err != nil {
		return 0
	}
	launcher, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if launcher <= 1 || !alive(launcher) {
		return 0
	}
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", launcher, launcher))
	f := strings.Fields(string(kids))
	if len(f) == 0 {
		return 0
	}
	pid, _ := strconv.Atoi(f[0])
	if pid <= 1 || !alive(pid) {
		return 0
	}
	return pid
}

// IsOn reports whether the host is running.
func (h *Host) IsOn() bool { return h.InitPID() != 0 }

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Field 3 is the state; a zombie is already dead.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// Path is where a path inside the host can be read or written from the real
// machine: through the host's PID 1, which sees the host's mounts.
func (h *Host) Path(p string) (string, error) {
	pid := h.InitPID()
	if pid == 0 {
		return "", fmt.Errorf("host %s is powered off", h.Name)
	}
	return fmt.Sprintf("/proc/%d/root%s", pid, filepath.Clean("/"+p)), nil
}

// ReadFile reads a file as the host sees it.
func (h *Host) ReadFile(p string) ([]byte, error) {
	hp, err := h.Path(p)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(hp)
	if err != nil {
		return nil, fmt.Errorf("reading %s on host %s: %w", p, h.Name, err)
	}
	return b, nil
}

// WriteFile writes a file inside the host, creating its directory.
func (h *Host) WriteFile(p string, data []byte, mode os.FileMode) error {
	hp, err := h.Path(p)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
		return fmt.Errorf("writing %s on host %s: %w", p, h.Name, err)
	}
	if err := os.WriteFile(hp, data, mode); err != nil {
		return fmt.Errorf("writing %s on host %s: %w", p, h.Name, err)
	}
	return nil
}

// Command prepares a command to run inside the host, as root, with the host's
// PATH (which has kubeadm, kubelet, kubectl, etcdctl and kubectl-etcd) and
// KUBECONFIG set to the host's admin.conf.
func (h *Host) Command(ctx context.Context, args ...string) (*exec.Cmd, error) {
	pid := h.InitPID()
	if pid == 0 {
		return nil, fmt.Errorf("host %s is powered off", h.Name)
	}
	full := append([]string{"-t", strconv.Itoa(pid), "-m", "-u", "-n", "-p", "--wd=/", "--",
		"env", "-i", "PATH=" + h.bed.hostPATH(), "HOME=/root", "KUBECONFIG=/etc/kubernetes/admin.conf"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", full...)
	// nsenter forks into the host's PID namespace: when ctx ends, killing
	// nsenter leaves its child holding the output pipe, so Wait must not
	// wait for the pipe forever.
	cmd.WaitDelay = 10 * time.Second
	return cmd, nil
}

// Exec runs a command inside the host and returns its combined output; the
// error carries the output so a failure explains itself.
func (h *Host) Exec(ctx context.Context, args ...string) ([]byte, error) {
	cmd, err := h.Command(ctx, args...)
	if err != nil {
		return nil, err
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("on host %s: %s: %w\n%s", h.Name, strings.Join(args, " "), err, tail(out, 40))
	}
	return out, nil
}

func tail(b []byte, lines int) string {
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// cgroupHierarchies are the v1 hierarchies kubelet needs the host's cgroupRoot in.
var cgroupHierarchies = []string{"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "systemd"}

func (h *Host) makeCgroups() error {
	for _, c := range cgroupHierarchies {
		base := filepath.Join("/sys/fs/cgroup", c)
		if _, err := os.Stat(base); err != nil {
			continue
		}
		dir := filepath.Join(base, h.CgroupRoot())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating cgroup %s: %w", dir, err)
		}
		if c == "cpuset" {
			// A new cpuset is empty and refuses tasks until given its parent's cpus and mems.
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(base, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("setting %s of %s: %w", f, dir, err)
				}
			}
		}
	}
	return nil
}

// removeCgroups removes the host's cgroup trees, deepest first, in every
// hierarchy (runc may also use the unified one).
func (h *Host) removeCgroups() error {
	var errs []error
	for _, c := range append(cgroupHierarchies, "unified") {
		root := filepath.Join("/sys/fs/cgroup", c, h.CgroupRoot())
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := rmdirRetry(dirs[i]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func rmdirRetry(d string) error {
	var err error
	for i := 0; i < 50; i++ {
		if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("removing cgroup %s: %w", d, err)
}

// PowerOn boots the host from its disk and waits until its containerd and
// sshd answer.
func (h *Host) PowerOn(ctx context.Context) error {
	if h.IsOn() {
		return nil
	}
	// A real boot starts without the cgroups of the containers that ran
	// before the power cut; here they outlive the host's processes, and
	// kubelet's cAdvisor then spends about 3 s on each at every kubelet
	// start before it syncs any pod.
	if err := h.removeCgroups(); err != nil {
		return fmt.Errorf("powering on %s: clearing the cgroups left from before: %w", h.Name, err)
	}
	if err := h.makeCgroups(); err != nil {
		return err
	}
	state := h.StateDir()
	console, err := os.OpenFile(filepath.Join(state, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("powering on %s: %w", h.Name, err)
	}
	defer console.Close()
	cmd := exec.Command("nsenter", "--net="+h.NetnsPath(), "--",
		"unshare", "--mount", "--uts", "--pid", "--fork", "--mount-proc", "--propagation", "private",
		"--kill-child=SIGKILL",
		"bash", filepath.Join(h.bed.Dir, "hostinit.sh"), h.NodeName(), state, h.bed.BinDir())
	cmd.Stdout, cmd.Stderr = console, console
	// Its own session: a Ctrl-C meant for the caller is not a power cut.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("powering on %s: %w", h.Name, err)
	}
	go cmd.Wait() // reap it if we are still around when it dies
	if err := os.WriteFile(h.launcherPIDFile(), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	return poll(ctx, 30*time.Second, fmt.Sprintf("host %s to boot (see %s)", h.Name, filepath.Join(state, "console.log")), func() (bool, error) {
		if !alive(cmd.Process.Pid) {
			return false, fmt.Errorf("host %s died while booting: %s", h.Name, tailFile(filepath.Join(state, "console.log")))
		}
		p, err := h.Path("/run/containerd/containerd.sock")
		if err != nil {
			return false, nil
		}
		if _, err := os.Stat(p); err != nil {
			return false, nil
		}
		if _, err = h.Exec(ctx, "ctr", "--timeout", "2s", "version"); err != nil {
			return false, nil
		}
		return h.sshdUp(ctx), nil
	})
}

func tailFile(p string) string {
	b, _ := os.ReadFile(p)
	return tail(b, 20)
}

// PowerOff cuts the host's power: every process of the host (kubelet,
// containerd, all containers) is killed at once; its disk is kept.
func (h *Host) PowerOff(ctx context.Context) error {
	b, err := os.ReadFile(h.launcherPIDFile())
	if err != nil {
		return nil // never started
	}
	launcher, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	init := h.InitPID()
	if launcher > 1 && alive(launcher) {
		syscall.Kill(launcher, syscall.SIGKILL)
	}
	if init > 1 {
		syscall.Kill(init, syscall.SIGKILL)
	}
	err = poll(ctx, 30*time.Second, "host "+h.Name+" to power off", func() (bool, error) {
		return (launcher <= 1 || !alive(launcher)) && (init <= 1 || !alive(init)) && len(h.processes()) == 0, nil
	})
	os.Remove(h.launcherPIDFile())
	return err
}

// processes lists every process on the machine living in the host's network
// namespace: what must be gone once the host is off.
func (h *Host) processes() []int {
	return processesInNetns(h.NetnsPath())
}

// Disconnect unplugs the host's network cable; loopback keeps working.
func (h *Host) Disconnect(ctx context.Context) error {
	return run(ctx, "ip", "-n", h.bed.bridgeNetns(), "link", "set", h.Name, "down")
}

// Reconnect plugs the cable back in.
func (h *Host) Reconnect(ctx context.Context) error {
	return run(ctx, "ip", "-n", h.bed.bridgeNetns(), "link", "set", h.Name, "up")
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func poll(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
