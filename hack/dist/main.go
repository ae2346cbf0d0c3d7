// Command dist builds the release artifacts of kubectl-etcd into a directory
// (make dist): the static binary for each platform krew serves, one
// reproducible .tar.gz per platform holding the binary and LICENSE, a
// sha256sum-style checksums file, and the krew manifest rendered from the
// committed template plugins.yaml with the version and the archives' sha256.
//
// Archives are reproducible: entries in a fixed order, fixed mtime
// (SOURCE_DATE_EPOCH, default 0), owner root, fixed modes and an empty gzip
// header, so the same commit and Go version give the same sha256 everywhere.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// Platform is one os/arch krew serves.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Bin is the binary's name inside the archive, the manifest's `bin`.
func (p Platform) Bin() string {
	if p.OS == "windows" {
		return "kubectl-etcd.exe"
	}
	return "kubectl-etcd"
}

// Platforms are the ones plugins.yaml lists; rendering fails if the two ever
// disagree (a missing sha256 key is an error, an unused archive too).
var Platforms = []Platform{
	{"linux", "amd64"}, {"linux", "arm64"},
	{"darwin", "amd64"}, {"darwin", "arm64"},
	{"windows", "amd64"}, {"windows", "arm64"},
}

// ArchiveName is the release asset name the manifest's uri points at.
func ArchiveName(version string, p Platform) string {
	return fmt.Sprintf("kubectl-etcd_%s_%s_%s.tar.gz", version, p.OS, p.Arch)
}

// krew parses versions as semver with a leading v (internal/installation/semver).
var semverRE = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

func main() {
	var o options
	flag.StringVar(&o.version, "version", "", "release version, vX.Y.Z (semver with a leading v, as krew requires)")
	flag.StringVar(&o.ldflags, "ldflags", "", "go build -ldflags (the Makefile's, which stamp the version)")
	flag.StringVar(&o.out, "out", "dist", "output directory")
	flag.StringVar(&o.template, "manifest", "plugins.yaml", "krew manifest template")
	flag.StringVar(&o.license, "license", "LICENSE", "license file put in every archive")
	flag.StringVar(&o.pkg, "pkg", "./cmd/kubectl-etcd", "package of the binary")
	flag.Parse()
	if err := o.run(); err != nil {
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(1)
	}
}

type options struct {
	version, ldflags, out, template, license, pkg string
}

func (o options) run() error {
	if !semverRE.MatchString(o.version) {
		return fmt.Errorf("version %q is not semver with a leading v (e.g. v0.1.0); krew would reject it", o.version)
	}
	mtime, err := sourceDate()
	if err != nil {
		return err
	}
	license, err := os.ReadFile(o.license)
	if err != nil {
		return fmt.Errorf("reading the license every archive carries: %w", err)
	}
	tmplText, err := os.ReadFile(o.template)
	if err != nil {
		return fmt.Errorf("reading the krew manifest template: %w", err)
	}
	binDir := filepath.Join(o.out, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}

	sums := map[string]string{}
	var sumLines strings.Builder
	for _, p := range Platforms {
		start := time.Now()
		bin := filepath.Join(binDir, p.OS+"_"+p.Arch, p.Bin())
		if err := build(o.pkg, o.ldflags, p, bin); err != nil {
			return err
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			return err
		}
		arc, err := archive(mtime, []entry{
			{name: "LICENSE", mode: 0o644, data: license},
			{name: p.Bin(), mode: 0o755, data: data},
		})
		if err != nil {
			return fmt.Errorf("archiving %s: %w", p, err)
		}
		name := ArchiveName(o.version, p)
		if err := writeFile(filepath.Join(o.out, name), arc); err != nil {
			return err
		}
		sum := sha256.Sum256(arc)
		sums[p.String()] = hex.EncodeToString(sum[:])
		fmt.Fprintf(&sumLines, "%s  %s\n", sums[p.String()], name)
		fmt.Printf("dist: %-14s %s  %s (%.1f MiB, %s)\n", p, sums[p.String()], name,
			float64(len(arc))/(1<<20), time.Since(start).Round(100*time.Millisecond))
	}
	if err := writeFile(filepath.Join(o.out, "kubectl-etcd_"+o.version+"_checksums.txt"), []byte(sumLines.String())); err != nil {
		return err
	}

	manifest, err := render(tmplText, o.version, sums)
	if err != nil {
		return fmt.Errorf("krew manifest template %s: %w", o.template, err)
	}
	path := filepath.Join(o.out, "plugins.yaml")
	if err := writeFile(path, manifest); err != nil {
		return err
	}
	fmt.Printf("dist: krew manifest %s (version %s)\n", path, o.version)
	return nil
}

// render fills the manifest template: {{ .Version }}, and {{ sha256 "os/arch" }}
// for each archive. A platform the build did not make is an error, not an
// empty string.
func render(tmplText []byte, version string, sums map[string]string) ([]byte, error) {
	funcs := template.FuncMap{"sha256": func(platform string) (string, error) {
		s, ok := sums[platform]
		if !ok {
			return "", fmt.Errorf("no archive built for platform %q", platform)
		}
		return s, nil
	}}
	// The template's leading comment explains the template; the output
	// says where it came from instead.
	body := string(tmplText)
	for strings.HasPrefix(body, "#") {
		_, body, _ = strings.Cut(body, "\n")
	}
	tmpl, err := template.New("plugins.yaml").Option("missingkey=error").Funcs(funcs).Parse(body)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "# krew plugin manifest for kubectl-etcd %s, made by `make dist` from plugins.yaml.\n"+
		"# Attach to the GitHub release; submit to krew-index as plugins/etcd.yaml.\n", version)
	if err := tmpl.Execute(&out, struct{ Version string }{version}); err != nil {
		return nil, err
	}
	if err := checkManifest(out.String(), version, sums); err != nil {
		return nil, fmt.Errorf("rendered manifest %w", err)
	}
	return out.Bytes(), nil
}

// checkManifest catches a template that drifted from Platforms: every archive
// must be referenced with its own sha256, and nothing left unrendered.
func checkManifest(m, version string, sums map[string]string) error {
	if strings.Contains(m, "{{") || strings.Contains(m, "}}") {
		return fmt.Errorf("still has template braces")
	}
	for _, p := range Platforms {
		uri := "/releases/download/" + version + "/" + ArchiveName(version, p)
		if !strings.Contains(m, uri) {
			return fmt.Errorf("has no uri ending in %s", uri)
		}
		if !strings.Contains(m, "'"+sums[p.String()]+"'") {
			return fmt.Errorf("does not carry the sha256 of %s", ArchiveName(version, p))
		}
	}
	return nil
}

// sourceDate is the mtime of every archive entry: SOURCE_DATE_EPOCH (the
// reproducible-builds convention) or the Unix epoch.
func sourceDate() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

func build(pkg, ldflags string, p Platform, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s for %s: %w\n%s", pkg, p, err, b)
	}
	return nil
}

type entry struct {
	name string
	mode int64
	data []byte
}

// archive writes entries, in the given order, as a reproducible tar.gz.
func archive(mtime time.Time, entries []entry) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	// The gzip header carries no name and no time (ModTime zero writes 0).
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg, Name: e.name, Mode: e.mode, Size: int64(len(e.data)),
			ModTime: mtime, Uname: "root", Gname: "root", Format: tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeFile replaces path atomically, so a failed run never leaves a
// half-written archive next to a manifest that names it.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
