package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func fakeSums() map[string]string {
	sums := map[string]string{}
	for i, p := range Platforms {
		sums[p.String()] = strings.Repeat(fmt.Sprintf("%x", i+10), 64)
	}
	return sums
}

func TestRenderCommittedTemplate(t *testing.T) {
	tmpl, err := os.ReadFile("../../plugins.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sums := fakeSums()
	out, err := render(tmpl, "v1.2.3", sums)
	if err != nil {
		t.Fatal(err)
	}
	m := string(out)
	if !strings.HasPrefix(m, "# krew plugin manifest for kubectl-etcd v1.2.3, made by `make dist`") || strings.Contains(m, "TEMPLATE") {
		t.Error("rendered manifest still has the template's header")
	}
	for _, want := range []string{
		"submit to krew-index as plugins/etcd.yaml.\napiVersion: krew.googlecontainertools.github.com/v1alpha2\n",
		"name: etcd\n", "version: 'v1.2.3'\n",
		"uri: https://github.com/kubectl-etcd/kubectl-etcd/releases/download/v1.2.3/kubectl-etcd_v1.2.3_windows_arm64.tar.gz\n",
		"sha256: '" + sums["darwin/arm64"] + "'\n",
		"bin: kubectl-etcd.exe\n", "/var/lib/kubectl-etcd/kubectl-etcd", "cluster-admin",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("rendered manifest lacks %q", want)
		}
	}
	// Each platform's sha256 sits right after its own archive's uri.
	for _, p := range Platforms {
		uri := ArchiveName("v1.2.3", p) + "\n    sha256: '" + sums[p.String()] + "'"
		if !strings.Contains(m, uri) {
			t.Errorf("sha256 of %s does not follow its uri", p)
		}
	}
}

func TestRenderRejectsDriftedTemplate(t *testing.T) {
	tmpl, err := os.ReadFile("../../plugins.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// A platform key the build does not make: missingkey=error.
	bad := strings.Replace(string(tmpl), `"linux/arm64"`, `"linux/riscv64"`, 1)
	if _, err := render([]byte(bad), "v1.2.3", fakeSums()); err == nil || !strings.Contains(err.Error(), "linux/riscv64") {
		t.Errorf("unknown sha256 key: err = %v, want it named", err)
	}
	// A platform the build makes but the manifest lost.
	i := strings.Index(string(tmpl), "  - selector:")
	if _, err := render(tmpl[:i], "v1.2.3", fakeSums()); err == nil || !strings.Contains(err.Error(), "has no uri ending in") {
		t.Errorf("template without platforms: err = %v, want a missing uri", err)
	}
}

func TestArchiveIsReproducibleAndComplete(t *testing.T) {
	entries := []entry{{name: "LICENSE", mode: 0o644, data: []byte("license")}, {name: "kubectl-etcd", mode: 0o755, data: []byte("bin")}}
	a, err := archive(time.Unix(0, 0), entries)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := archive(time.Unix(0, 0), entries)
	if !bytes.Equal(a, b) {
		t.Fatal("same entries gave different archives")
	}
	if c, _ := archive(time.Unix(1, 0), entries); bytes.Equal(a, c) {
		t.Fatal("mtime does not reach the archive (SOURCE_DATE_EPOCH would be ignored)")
	}
	zr, err := gzip.NewReader(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header carries name %q / time %v", zr.Name, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	for _, want := range entries {
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if h.Name != want.name || h.Mode != want.mode || string(data) != string(want.data) || h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0 {
			t.Errorf("entry %+v (%q), want %s mode %o content %q owned by 0 at epoch", h, data, want.name, want.mode, want.data)
		}
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("extra entries after %d: %v", len(entries), err)
	}
}

func TestVersionMustBeKrewSemver(t *testing.T) {
	for _, v := range []string{"1.2.3", "v1.2", "vX.Y.Z", "v01.2.3", ""} {
		err := options{version: v}.run()
		if err == nil || !strings.Contains(err.Error(), "not semver with a leading v") {
			t.Errorf("version %q: err = %v, want a semver error", v, err)
		}
	}
	for _, v := range []string{"v0.0.0-dev", "v1.2.3", "v1.2.3-rc.1+build.5"} {
		if !semverRE.MatchString(v) {
			t.Errorf("version %q rejected", v)
		}
	}
}
