package recover

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// startDetached starts argv (host paths) as a process of the host rather
// than of this pod: chrooted to the host's root, in its own session, and
// moved into the cgroups of the host's PID 1. A pod's processes are killed
// by cgroup when the pod goes (with hostPID, the runtime kills every process
// of the container's cgroup), and the pod is deleted, or runs out its
// deadline, long before a restore ends. The child waits for "go" on its
// stdin, sent only once it is out of the pod's cgroups; otherwise it exits
// having done nothing.
func startDetached(h *staticpod.Host, argv []string, logPath, resultPath string) (int, error) {
	logf, err := os.OpenFile(h.Path(logPath), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	resf, err := os.OpenFile(h.Path(resultPath), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer resf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	cmd.Stdout, cmd.Stderr = resf, logf
	attr := &syscall.SysProcAttr{Setsid: true}
	if root := filepath.Clean(h.Root); root != "/" {
		attr.Chroot = root
	}
	cmd.SysProcAttr = attr
	goPipe, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", strings.Join(argv, " "), err)
	}
	pid := cmd.Process.Pid
	if err := intoInitCgroups(h, pid); err != nil {
		goPipe.Close() // the child exits without doing anything
		_ = cmd.Wait()
		return 0, fmt.Errorf("could not detach the restore from the pod (%w): nothing was changed; run it on the host as root instead: %s", err, strings.Join(append([]string{"kubectl-etcd"}, argv[1:len(argv)-1]...), " "))
	}
	if _, err := goPipe.Write([]byte("go\n")); err != nil {
		return 0, fmt.Errorf("starting the restore: %w", err)
	}
	goPipe.Close()
	// Not waited for: it outlives this process (the host's init reaps it).
	_ = cmd.Process.Release()
	return pid, nil
}

// intoInitCgroups moves pid into every cgroup of the host's PID 1 and checks
// that it got there.
func intoInitCgroups(h *staticpod.Host, pid int) error {
	want, err := os.ReadFile(h.Path("/proc/1/cgroup"))
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctrl, path := parts[1], parts[2]
		var dirs []string
		switch {
		case ctrl == "":
			dirs = []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}
		case strings.HasPrefix(ctrl, "name="):
			dirs = []string{"/sys/fs/cgroup/" + strings.TrimPrefix(ctrl, "name=")}
		default:
			dirs = []string{"/sys/fs/cgroup/" + ctrl}
		}
		var errs []string
		moved := false
		for _, d := range dirs {
			procs := h.Path(filepath.Join(d, path, "cgroup.procs"))
			if _, err := os.Stat(procs); err != nil {
				continue
			}
			if err := os.WriteFile(procs, []byte(strconv.Itoa(pid)), 0); err != nil {
				errs = append(errs, err.Error())
				continue
			}
			moved = true
			break
		}
		if !moved && len(errs) > 0 {
			return fmt.Errorf("moving pid %d into cgroup %s:%s: %s", pid, ctrl, path, strings.Join(errs, "; "))
		}
	}
	got, err := os.ReadFile(h.Path("/proc/" + strconv.Itoa(pid) + "/cgroup"))
	if err != nil {
		return err
	}
	if string(got) != string(want) {
		return fmt.Errorf("pid %d is in cgroups %q, not those of the host's init %q", pid, strings.TrimSpace(string(got)), strings.TrimSpace(string(want)))
	}
	return nil
}

// probeDetach checks, before anything is changed, that a process started
// from here can be moved out of the pod's cgroups (startDetached's move):
// it starts this binary as a detached child, moves it, and lets it exit
// without the "go" (it does nothing then).
func probeDetach(h *staticpod.Host) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "restore", "detach-probe", "--detached-child")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	goPipe, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	err = intoInitCgroups(h, cmd.Process.Pid)
	goPipe.Close()
	_ = cmd.Wait() // it exits at once: no "go"
	return err
}
