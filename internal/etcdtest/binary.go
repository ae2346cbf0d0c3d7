// Package etcdtest runs real etcd servers for tests: a throw-away PKI laid out
// like kubeadm's, and clusters of etcd child processes on loopback ports with
// TLS and client-certificate auth on both the client and the peer side.
//
// The etcd binaries are the ones the project builds from Go modules
// (hack/build-components.sh etcd), the same release the test bed deploys, so
// tests exercise the server behaviour the tool meets on real hosts.
package etcdtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// modulePath identifies this repository's go.mod, so the walk up from a test's
// working directory stops at this module and not at a nested build module
// (hack/build/etcd has a go.mod of its own).
const modulePath = "github.com/kubectl-etcd/kubectl-etcd"

// RepoRoot returns the directory holding this module's go.mod, found by walking
// up from the working directory (go test runs each package in its own dir).
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	return root
}

func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	for dir := wd; ; {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && isModule(data) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod for module %s in %s or any parent directory", modulePath, wd)
		}
		dir = parent
	}
}

func isModule(gomod []byte) bool {
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" && f[1] == modulePath {
			return true
		}
	}
	return false
}

// BinDir returns the directory holding the etcd, etcdctl and etcdutl binaries,
// building them on first use. The build script caches its result outside the
// work tree, so after the first build this costs a few milliseconds.
func BinDir(t testing.TB) string {
	t.Helper()
	dir, err := binDir()
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	return dir
}

func binDir() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "hack", "build-components.sh")
	cmd := exec.Command(script, "etcd")
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building etcd with %s etcd: %w\n%s", script, err, stderr.String())
	}
	// The script reports progress on stderr and the directory as the last
	// line of stdout.
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	if dir == "" {
		return "", fmt.Errorf("%s etcd printed no directory\n%s", script, stderr.String())
	}
	for _, name := range []string{"etcd", "etcdctl", "etcdutl"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("%s etcd reported %s, but: %w", script, dir, err)
		}
	}
	return dir, nil
}

// Binary returns the path of the etcd server binary.
func Binary(t testing.TB) string {
	t.Helper()
	return filepath.Join(BinDir(t), "etcd")
}
