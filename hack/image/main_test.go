package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
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

// fileInImage is the content and mode of path in img's layers.
func fileInImage(t *testing.T, img v1.Image, path string) ([]byte, int64) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name == strings.TrimPrefix(path, "/") {
				b, _ := io.ReadAll(tr)
				rc.Close()
				return b, h.Mode
			}
		}
		rc.Close()
	}
	t.Fatalf("%s not in image", path)
	return nil, 0
}

func checkImage(t *testing.T, img v1.Image, arch string, bin []byte) {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != arch {
		t.Errorf("platform %s/%s, want linux/%s", cfg.OS, cfg.Architecture, arch)
	}
	if got := strings.Join(cfg.Config.Entrypoint, " "); got != "/usr/local/bin/kubectl-etcd" {
		t.Errorf("entrypoint %q", got)
	}
	got, mode := fileInImage(t, img, "/usr/local/bin/kubectl-etcd")
	if !bytes.Equal(got, bin) || mode != 0o755 {
		t.Errorf("linux/%s image has kubectl-etcd %q mode %o, want %q mode 755", arch, got, mode, bin)
	}
}

func TestBuildWritesPerArchArchivesAndIndex(t *testing.T) {
	dist, bins := fakeDist(t)
	paths, err := Build("v1.2.3", dist)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(Repository + ":v1.2.3")
	for i, arch := range Arches {
		img, err := tarball.ImageFromPath(paths.Arch[i], &tag)
		if err != nil {
			t.Fatalf("docker-archive %s has no %s: %v", paths.Arch[i], tag, err)
		}
		checkImage(t, img, arch, bins[arch])
	}

	// Unpack the OCI tarball as a user would, then read it as a layout.
	dir := t.TempDir()
	f, err := os.Open(paths.Index)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 || tm.Manifests[0].Annotations["io.containerd.image.name"] != Repository+":v1.2.3" ||
		tm.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "v1.2.3" {
		t.Fatalf("layout index.json = %+v, want one index named %s:v1.2.3", tm.Manifests, Repository)
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	// The digest make release stamps into the plugin is the index's.
	if got, _ := os.ReadFile(paths.DigestFile); paths.Digest != tm.Manifests[0].Digest.String() || string(got) != paths.Digest+"\n" {
		t.Errorf("digest %q (file %q), the layout's index is %s", paths.Digest, got, tm.Manifests[0].Digest)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != len(Arches) {
		t.Fatalf("index has %d manifests, want %d", len(im.Manifests), len(Arches))
	}
	for i, d := range im.Manifests {
		if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != Arches[i] {
			t.Errorf("index manifest %d platform %+v, want linux/%s", i, d.Platform, Arches[i])
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, img, Arches[i], bins[Arches[i]])
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
	if m, _ := filepath.Glob(filepath.Join(dist, "*.tar")); len(m) != 0 {
		t.Errorf("wrote %v despite the error", m)
	}
}
