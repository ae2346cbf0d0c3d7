package ociimage

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func spec(t *testing.T, content, arch string) Spec {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hello")
	if err := os.WriteFile(bin, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return Spec{
		Files:      []File{{Src: bin, Dst: "/usr/local/bin/hello", Mode: 0o755}},
		Symlinks:   map[string]string{"/bin/sh": "busybox"},
		Entrypoint: []string{"/usr/local/bin/hello"},
		Arch:       arch,
	}
}

func build(t *testing.T, s Spec) *Image {
	t.Helper()
	img, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func checkContents(t *testing.T, c Contents, arch, content string) {
	t.Helper()
	if c.Config.OS != "linux" || c.Config.Architecture != arch || strings.Join(c.Config.Config.Entrypoint, " ") != "/usr/local/bin/hello" {
		t.Errorf("config %+v, want linux/%s with entrypoint /usr/local/bin/hello", c.Config, arch)
	}
	if f := c.Files["usr/local/bin/hello"]; string(f.Data) != content || f.Mode != 0o755 || f.Type != tar.TypeReg {
		t.Errorf("usr/local/bin/hello = %q mode %o type %c, want %q 755", f.Data, f.Mode, f.Type, content)
	}
	if l := c.Files["bin/sh"]; l.Type != tar.TypeSymlink || l.Link != "busybox" {
		t.Errorf("bin/sh = %+v, want a symlink to busybox", l)
	}
	for _, d := range []string{"tmp", "usr", "usr/local", "usr/local/bin", "bin"} {
		if c.Files[d].Type != tar.TypeDir {
			t.Errorf("no directory %s in the layer", d)
		}
	}
}

func TestDockerArchiveRoundTrip(t *testing.T) {
	img := build(t, spec(t, "#!hello", ""))
	p := filepath.Join(t.TempDir(), "img.tar")
	if err := WriteDockerArchive(p, "registry.k8s.io/etcd:3.7.0-0", img); err != nil {
		t.Fatal(err)
	}
	a, err := ReadDockerArchive(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.RepoTags) != 1 || a.RepoTags[0] != "registry.k8s.io/etcd:3.7.0-0" {
		t.Errorf("RepoTags %v", a.RepoTags)
	}
	checkContents(t, a.Image, "amd64", "#!hello")
	if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
}

func TestOCILayoutRoundTripAndReproducible(t *testing.T) {
	imgs := []*Image{build(t, spec(t, "#!amd", "amd64")), build(t, spec(t, "#!arm", "arm64"))}
	dir := t.TempDir()
	p := filepath.Join(dir, "oci.tar")
	d, err := WriteOCILayout(p, "ghcr.io/kubectl-etcd/kubectl-etcd:v1.2.3", imgs)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ReadOCILayout(p)
	if err != nil {
		t.Fatal(err)
	}
	if l.IndexDigest != d || l.Name != "ghcr.io/kubectl-etcd/kubectl-etcd:v1.2.3" || l.RefName != "v1.2.3" {
		t.Errorf("layout %s %q %q, want digest %s named ...:v1.2.3 and v1.2.3", l.IndexDigest, l.Name, l.RefName, d)
	}
	if len(l.Platforms) != 2 || l.Platforms[0].Architecture != "amd64" || l.Platforms[1].Architecture != "arm64" {
		t.Errorf("platforms %+v", l.Platforms)
	}
	checkContents(t, l.Images["amd64"], "amd64", "#!amd")
	checkContents(t, l.Images["arm64"], "arm64", "#!arm")

	// Built again from the same files: the same bytes, so the same digest a
	// release records.
	again := []*Image{build(t, spec(t, "#!amd", "amd64")), build(t, spec(t, "#!arm", "arm64"))}
	p2 := filepath.Join(dir, "oci2.tar")
	d2, err := WriteOCILayout(p2, "ghcr.io/kubectl-etcd/kubectl-etcd:v1.2.3", again)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(p)
	b2, _ := os.ReadFile(p2)
	if d2 != d || !bytes.Equal(b1, b2) {
		t.Errorf("same inputs gave digest %s then %s (files equal: %v)", d, d2, bytes.Equal(b1, b2))
	}
	// Other content, other digest.
	other := []*Image{build(t, spec(t, "#!amd2", "amd64")), imgs[1]}
	if d3, err := WriteOCILayout(filepath.Join(dir, "oci3.tar"), "ghcr.io/kubectl-etcd/kubectl-etcd:v1.2.3", other); err != nil || d3 == d {
		t.Errorf("changed binary kept digest %s (%v)", d3, err)
	}
}

func TestBadReferenceWritesNothing(t *testing.T) {
	img := build(t, spec(t, "#!hello", ""))
	dir := t.TempDir()
	for _, ref := range []string{"registry.k8s.io/etcd", "Registry.k8s.io/etcd:1", "etcd:", "etcd:a b", "/etcd:1"} {
		err := WriteDockerArchive(filepath.Join(dir, "a.tar"), ref, img)
		if err == nil || !strings.Contains(err.Error(), "is not repository:tag") {
			t.Errorf("%q: err = %v, want it refused as not repository:tag", ref, err)
		}
		if _, err := WriteOCILayout(filepath.Join(dir, "o.tar"), ref, []*Image{img}); err == nil {
			t.Errorf("%q: OCI layout accepted it", ref)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
		t.Errorf("wrote %v", m)
	}
	for _, ref := range []string{"localhost:5000/a/b:v1", "registry.k8s.io/etcd:3.7.0-0", "pause:3.10"} {
		if err := ValidateRef(ref); err != nil {
			t.Errorf("%q refused: %v", ref, err)
		}
	}
}

func TestReadersCatchATamperedBlob(t *testing.T) {
	img := build(t, spec(t, "#!hello", ""))
	// A layer whose bytes changed after the digests were taken.
	bad := *img
	bad.Layer = append([]byte(nil), img.Layer...)
	bad.Layer[len(bad.Layer)-5] ^= 0xff
	dir := t.TempDir()
	if err := WriteDockerArchive(filepath.Join(dir, "a.tar"), "x/y:1", &bad); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDockerArchive(filepath.Join(dir, "a.tar")); err == nil || !strings.Contains(err.Error(), "not matching its digest") {
		t.Errorf("docker archive: err = %v, want the digest mismatch", err)
	}
	if _, err := WriteOCILayout(filepath.Join(dir, "o.tar"), "x/y:1", []*Image{&bad}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadOCILayout(filepath.Join(dir, "o.tar")); err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Errorf("OCI layout: err = %v, want the digest mismatch", err)
	}
}

func TestRelativePathRefused(t *testing.T) {
	s := spec(t, "#!hello", "")
	s.Files[0].Dst = "usr/bin/hello"
	if _, err := Build(s); err == nil || !strings.Contains(err.Error(), "must be absolute") {
		t.Errorf("err = %v, want the relative path refused", err)
	}
}
