package testbed

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/version"
)

// Prereqs is everything a bed needs built or installed before a host boots.
type Prereqs struct {
	// HostBinaries are linked into every host's PATH, by name.
	HostBinaries map[string]string
	// Images are docker-archive tarballs imported into every host's containerd.
	Images []string
}

// SelfImage is the image of this build of kubectl-etcd, as the plugin names it.
func SelfImage() string { return "ghcr.io/kubectl-etcd/kubectl-etcd:" + version.Get().Version }

// cacheDir holds builds that outlive a bed and a clone (binaries, images).
func cacheDir() string {
	if d := os.Getenv("KETCD_CACHE"); d != "" {
		return d
	}
	return "/var/cache/kubectl-etcd"
}

// RepoRoot finds the kubectl-etcd source tree: $KETCD_REPO, or the nearest
// parent of the working directory whose go.mod is this module's.
func RepoRoot() (string, error) {
	if d := os.Getenv("KETCD_REPO"); d != "" {
		return d, nil
	}
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if raw, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil &&
			strings.HasPrefix(string(raw), "module github.com/kubectl-etcd/kubectl-etcd\n") {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("cannot find the kubectl-etcd source tree above %s: run from the repository or set KETCD_REPO", d)
		}
		d = parent
	}
}

// RequiredTools maps each command the bed runs to the Debian package that has it.
func RequiredTools() map[string]string {
	return map[string]string{
		"containerd": "containerd", "ctr": "containerd", "runc": "runc",
		"nsenter": "util-linux", "unshare": "util-linux", "ip": "iproute2",
		"/usr/lib/cni/loopback": "containernetworking-plugins",
		"/bin/busybox":          "busybox-static",
		// Every host runs its own sshd, with users that sudo (ssh.go).
		"/usr/sbin/sshd": "openssh-server", "ssh-keygen": "openssh-client", "sudo": "sudo",
	}
}

// withoutServiceStarts runs install with Debian's policy-rc.d saying no to
// every service start, so that installing openssh-server does not start an
// sshd on the machine's own port 22 (the bed starts one per host). A
// policy-rc.d already in place (a container image's, another installer's)
// is left alone, and so is the machine when nothing needs installing.
func withoutServiceStarts(tools map[string]string, install func() error) error {
	if missing, _ := missingTools(tools); len(missing) == 0 {
		return install()
	}
	const policy = "/usr/sbin/policy-rc.d"
	f, err := os.OpenFile(policy, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return install()
		}
		return fmt.Errorf("creating %s: %w", policy, err)
	}
	_, err = f.WriteString("#!/bin/sh\n# The kubectl-etcd test bed installs packages whose services it runs itself.\nexit 101\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	defer os.Remove(policy)
	if err != nil {
		return fmt.Errorf("writing %s: %w", policy, err)
	}
	return install()
}

func missingTools(tools map[string]string) (missing []string, pkgs []string) {
	seen := map[string]bool{}
	for tool, pkg := range tools {
		var err error
		if strings.HasPrefix(tool, "/") {
			_, err = os.Stat(tool)
		} else {
			_, err = exec.LookPath(tool)
		}
		if err != nil {
			missing = append(missing, tool)
			if !seen[pkg] {
				seen[pkg] = true
				pkgs = append(pkgs, pkg)
			}
		}
	}
	return missing, pkgs
}

// EnsureTools installs, with apt-get, the packages holding the tools (command
// name or absolute path -> Debian package) that are missing.
func EnsureTools(ctx context.Context, log io.Writer, tools map[string]string) error {
	missing, pkgs := missingTools(tools)
	if len(missing) == 0 {
		return nil
	}
	fmt.Fprintf(log, "[testbed] installing %s (missing: %s)\n", strings.Join(pkgs, " "), strings.Join(missing, " "))
	var out strings.Builder
	// Wait for dpkg's lock rather than fail: another apt-get (a prepare
	// running alongside, unattended upgrades) may hold it for a while.
	lock := []string{"-o", "DPkg::Lock::Timeout=600"}
	for _, args := range [][]string{append(lock, "update", "-qq"), append(lock, append([]string{"install", "-y", "-qq", "--no-install-recommends"}, pkgs...)...)} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("the test bed needs %s and `apt-get %s` failed: %w\n%s",
				strings.Join(missing, ", "), strings.Join(args, " "), err, tail([]byte(out.String()), 15))
		}
	}
	if still, _ := missingTools(tools); len(still) > 0 {
		return fmt.Errorf("the test bed needs %s, still missing after installing %s", strings.Join(still, ", "), strings.Join(pkgs, " "))
	}
	return nil
}

// Prepare installs missing tools, builds (or finds cached) components and
// project binaries, and builds the images.
func Prepare(ctx context.Context, log io.Writer) (*Prereqs, error) {
	tools := RequiredTools()
	if err := withoutServiceStarts(tools, func() error { return EnsureTools(ctx, log, tools) }); err != nil {
		return nil, err
	}
	repo, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	dirs := map[string]string{}
	for _, group := range []string{"etcd", "etcd36", "kube"} {
		cmd := exec.CommandContext(ctx, filepath.Join(repo, "hack", "build-components.sh"), group)
		cmd.Stderr = log
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("building %s components: %w", group, err)
		}
		dirs[group] = lastLine(string(out))
	}
	// One directory per checkout: two work trees building at once must
	// not overwrite each other's binaries (images are keyed by content).
	proj := filepath.Join(cacheDir(), "project", fmt.Sprintf("%x", sha256.Sum256([]byte(repo)))[:12])
	fmt.Fprintf(log, "[testbed] building kubectl-etcd, testbed and pause into %s\n", proj)
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", proj+"/", "./cmd/kubectl-etcd", "./cmd/testbed", "./hack/pause")
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building kubectl-etcd: %w\n%s", err, out)
	}
	kube, etcd, etcd36 := dirs["kube"], dirs["etcd"], dirs["etcd36"]
	p := &Prereqs{HostBinaries: map[string]string{
		"kubeadm": kube + "/kubeadm", "kubelet": kube + "/kubelet", "kubectl": kube + "/kubectl",
		"etcdctl": etcd + "/etcdctl", "etcdutl": etcd + "/etcdutl",
		// A plain etcd server for tests that need another cluster's data; under
		// another name so that `pgrep -x etcd` still means the host's member.
		"etcd-scratch": etcd + "/etcd",
		"kubectl-etcd": proj + "/kubectl-etcd", "testbed": proj + "/testbed",
	}}
	bin := func(src, name string) ImageFile {
		return ImageFile{Src: src, Dst: "/usr/local/bin/" + name, Mode: 0o755}
	}
	specs := []ImageSpec{
		{Ref: PauseImage, Files: []ImageFile{{Src: proj + "/pause", Dst: "/pause", Mode: 0o755}}, Entrypoint: []string{"/pause"}},
		{Ref: EtcdImage, Files: []ImageFile{bin(etcd+"/etcd", "etcd"), bin(etcd+"/etcdctl", "etcdctl"), bin(etcd+"/etcdutl", "etcdutl")}},
		{Ref: "registry.k8s.io/etcd:" + EtcdPreviousTag, Files: []ImageFile{bin(etcd36+"/etcd", "etcd"), bin(etcd36+"/etcdctl", "etcdctl"), bin(etcd36+"/etcdutl", "etcdutl")}},
		{Ref: SelfImage(), Files: []ImageFile{bin(proj+"/kubectl-etcd", "kubectl-etcd")}, Entrypoint: []string{"/usr/local/bin/kubectl-etcd"}},
		{Ref: ToolboxImage, Files: []ImageFile{{Src: "/bin/busybox", Dst: "/bin/busybox", Mode: 0o755}},
			Symlinks: busyboxLinks(), Entrypoint: []string{"/bin/sh"}},
	}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		specs = append(specs, ImageSpec{Ref: "registry.k8s.io/" + c + ":" + KubernetesVersion, Files: []ImageFile{bin(kube+"/"+c, c)}})
	}
	for _, s := range specs {
		path, err := BuildImage(s, filepath.Join(cacheDir(), "images"))
		if err != nil {
			return nil, err
		}
		p.Images = append(p.Images, path)
	}
	return p, nil
}

func busyboxLinks() map[string]string {
	m := map[string]string{}
	for _, a := range []string{"sh", "cat", "echo", "ls", "mkdir", "rm", "sleep", "touch", "test", "hostname", "mv", "cp", "sync"} {
		m["/bin/"+a] = "busybox"
	}
	return m
}

func lastLine(s string) string {
	var last string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if t := strings.TrimSpace(sc.Text()); t != "" {
			last = t
		}
	}
	return last
}
