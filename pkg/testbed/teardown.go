package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Leftovers lists what exists of a bed named name: its state directory,
// network namespaces, processes and cgroups. Empty means nothing is left.
func Leftovers(name, root string) []string {
	if root == "" {
		root = defaultRoot
	}
	var left []string
	if _, err := os.Stat(filepath.Join(root, name)); err == nil {
		left = append(left, "state dir "+filepath.Join(root, name))
	}
	for _, ns := range bedNetns(name) {
		left = append(left, "netns "+ns)
		if pids := processesInNetns("/run/netns/" + ns); len(pids) > 0 {
			left = append(left, fmt.Sprintf("%d processes in %s", len(pids), ns))
		}
	}
	for _, c := range append(cgroupHierarchies, "unified") {
		m, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", c, name+"-*"))
		for _, d := range m {
			left = append(left, "cgroup "+d)
		}
	}
	if pid := proxyPID(filepath.Join(root, name)); pid > 1 && alive(pid) {
		left = append(left, fmt.Sprintf("proxy process %d", pid))
	}
	return left
}

func bedNetns(name string) []string {
	ents, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), name+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}

func proxyPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "proxy.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// processesInNetns lists PIDs of the real machine whose network namespace is
// the one at nsPath. It refuses the root namespace (and unreadable paths), so
// a teardown can never signal the machine's own processes.
func processesInNetns(nsPath string) []int {
	var st syscall.Stat_t
	if syscall.Stat(nsPath, &st) != nil {
		return nil
	}
	// Our own namespace is the machine's (the bed never runs from inside a
	// host); PID 1's may be unreadable here, but is refused when readable.
	for _, root := range []string{"/proc/self/ns/net", "/proc/1/ns/net"} {
		var r syscall.Stat_t
		if syscall.Stat(root, &r) == nil && r.Ino == st.Ino && r.Dev == st.Dev {
			return nil
		}
	}
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 1 {
			continue
		}
		var pst syscall.Stat_t
		if syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &pst) != nil {
			continue
		}
		if pst.Ino == st.Ino && pst.Dev == st.Dev && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Down tears a bed down completely: every host powered off, the proxy
// stopped, namespaces, cgroups and state removed. It works from names alone,
// so it also cleans a bed whose state file is lost or half written.
func Down(ctx context.Context, name, root string, log io.Writer) error {
	if root == "" {
		root = defaultRoot
	}
	if name == "" || strings.ContainsAny(name, "/ ") {
		return fmt.Errorf("refusing to tear down a bed with name %q", name)
	}
	if log == nil {
		log = io.Discard
	}
	start := time.Now()
	dir := filepath.Join(root, name)
	var errs []error
	if pid := proxyPID(dir); pid > 1 && alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if b, err := Load(name, root); err == nil {
		for _, h := range b.Hosts {
			if err := h.PowerOff(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Anything still living in one of the bed's namespaces (a host whose
	// state was lost, a stray nsenter) is killed by namespace.
	for _, ns := range bedNetns(name) {
		for _, pid := range processesInNetns("/run/netns/" + ns) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if err := poll(ctx, 30*time.Second, "the bed's processes to exit", func() (bool, error) {
		for _, ns := range bedNetns(name) {
			if len(processesInNetns("/run/netns/"+ns)) > 0 {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		errs = append(errs, err)
	}
	for _, ns := range bedNetns(name) {
		if out, err := exec.CommandContext(ctx, "ip", "netns", "delete", ns).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("deleting netns %s: %w: %s", ns, err, out))
		}
	}
	for _, c := range append(cgroupHierarchies, "unified") {
		m, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", c, name+"-*"))
		for _, d := range m {
			h := &Host{HostConfig: HostConfig{Name: strings.TrimPrefix(filepath.Base(d), name+"-")}, bed: &Bed{State: State{Name: name}}}
			if err := h.removeCgroups(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if _, err := os.Stat(dir); err == nil {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", dir, err))
		}
	}
	if left := Leftovers(name, root); len(left) > 0 {
		errs = append(errs, fmt.Errorf("still left after teardown: %s", strings.Join(left, ", ")))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tearing down bed %q: %w", name, err)
	}
	fmt.Fprintf(log, "[testbed] bed %q torn down in %s, nothing left\n", name, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// MemoryPSS sums the proportional set size of every process of the bed's
// hosts (kubelet, containerd, every container), in bytes: what the bed costs
// the machine, without counting shared pages twice.
func (b *Bed) MemoryPSS() (int64, error) {
	var total int64
	for _, h := range b.Hosts {
		for _, pid := range h.processes() {
			raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
			if err != nil {
				continue // exited meanwhile
			}
			for _, line := range strings.Split(string(raw), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
					kb, _ := strconv.ParseInt(f[1], 10, 64)
					total += kb * 1024
				}
			}
		}
	}
	return total, nil
}
