package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/ociimage"
)

// fakeDist lays out what make dist leaves: a distinct "binary" per arch.
func fakeDist(t *testing.T) (string, map[string][]byte) {
	dist := t.TempDir()
	bins := map[string][]byte{}
	for _, arch := range Arches {
		bins[arch] = []byte("#!kubectl-etcd for " + arch)
		p := filepath.Join(dist, "bin", "linux_"+arch, "kubectl-etcd")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bins[arch], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dist, bins
}

func checkImage(t *testing.T, c ociimage.Contents, arch string, bin []byte) {
	t.Helper()
	if c.Config.OS != "linux" || c.Config.Architecture != arch {
		t.Errorf("platform %s/%s, want linux/%s", c.Config.OS, c.Config.Architecture, arch)
	}
	if got := strings.Join(c.Config.Config.Entrypoint, " "); got != "/usr/local/bin/kubectl-etcd" {
		t.Errorf("entrypoint %q", got)
	}
	f := c.Files["usr/local/bin/kubectl-etcd"]
	if !bytes.Equal(f.Data, bin) || f.Mode != 0o755 {
		t.Errorf("linux/%s image has kubectl-etcd %q mode %o, want %q mode 755", arch, f.Data, f.Mode, bin)
	}
}

func TestBuildWritesPerArchArchivesAndIndex(t *testing.T) {
	dist, bins := fakeDist(t)
	paths, err := Build("v1.2.3", dist)
	if err != nil {
		t.Fatal(err)
	}
	for i, arch := range Arches {
		a, err := ociimage.ReadDockerArchive(paths.Arch[i])
		if err != nil {
			t.Fatalf("docker-archive %s: %v", paths.Arch[i], err)
		}
		if len(a.RepoTags) != 1 || a.RepoTags[0] != Repository+":v1.2.3" {
			t.Errorf("%s tagged %v, want %s:v1.2.3", paths.Arch[i], a.RepoTags, Repository)
		}
		checkImage(t, a.Image, arch, bins[arch])
	}

	l, err := ociimage.ReadOCILayout(paths.Index)
	if err != nil {
		t.Fatal(err)
	}
	if l.Name != Repository+":v1.2.3" || l.RefName != "v1.2.3" {
		t.Fatalf("layout names the index %q / %q, want %s:v1.2.3 / v1.2.3", l.Name, l.RefName, Repository)
	}
	// The digest make release stamps into the plugin is the index's.
	if got, _ := os.ReadFile(paths.DigestFile); paths.Digest != l.IndexDigest || string(got) != paths.Digest+"\n" {
		t.Errorf("digest %q (file %q), the layout's index is %s", paths.Digest, got, l.IndexDigest)
	}
	if len(l.Platforms) != len(Arches) {
		t.Fatalf("index has %d manifests, want %d", len(l.Platforms), len(Arches))
	}
	for i, p := range l.Platforms {
		if p.OS != "linux" || p.Architecture != Arches[i] {
			t.Errorf("index manifest %d platform %+v, want linux/%s", i, p, Arches[i])
			continue
		}
		checkImage(t, l.Images[Arches[i]], Arches[i], bins[Arches[i]])
	}

	// Same inputs, same bytes: the OCI tarball is reproducible.
	first, _ := os.ReadFile(paths.Index)
	if _, err := Build("v1.2.3", dist); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(paths.Index); !bytes.Equal(first, again) {
		t.Error("a second build of the same binaries gave a different OCI tarball")
	}
}

func TestBuildWithoutDistBinaryFailsAndWritesNothing(t *testing.T) {
	dist, _ := fakeDist(t)
	if err := os.Remove(filepath.Join(dist, "bin", "linux_arm64", "kubectl-etcd")); err != nil {
		t.Fatal(err)
	}
	_, err := Build("v1.2.3", dist)
	if err == nil || !strings.Contains(err.Error(), "no linux/arm64 binary (run make dist first)") {
		t.Fatalf("err = %v, want the missing linux/arm64 binary named", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dist, "*")); len(m) != 1 {
		t.Errorf("wrote %v despite the error (want only bin/)", m)
	}
}

func TestBuildRefusesABadVersion(t *testing.T) {
	dist, _ := fakeDist(t)
	_, err := Build("v1 2", dist)
	if err == nil || !strings.Contains(err.Error(), "is not repository:tag") {
		t.Fatalf("err = %v, want the tag refused", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dist, "*")); len(m) != 1 {
		t.Errorf("wrote %v despite the error", m)
	}
}
