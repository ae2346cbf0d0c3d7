// Command image builds the kubectl-etcd container image (make image) from the
// linux binaries `make dist` built, so the image runs exactly the released
// binary. There is no docker engine here, and none is needed: the image is a
// single FROM-scratch layer made by pkg/testbed's ImageSpec, the same code
// that makes the image the test bed's clusters run.
//
// It writes, into the dist directory:
//   - kubectl-etcd-image_<version>_linux_<arch>.tar per arch: docker-archive
//     tarballs tagged ghcr.io/kubectl-etcd/kubectl-etcd:<version>
//     (ctr -n k8s.io images import, docker load, crane push);
//   - kubectl-etcd-image_<version>.oci.tar: an OCI image layout holding the
//     multi-arch index of both (skopeo copy --all oci-archive:..., or crane
//     push of the unpacked layout directory; not --index, which would wrap
//     the index in another one).
package main

import (
	"archive/tar"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// Repository is where the plugin pulls its image from (hostpod.DefaultImage).
const Repository = "ghcr.io/kubectl-etcd/kubectl-etcd"

// Arches are the linux architectures the image is built for.
var Arches = []string{"amd64", "arm64"}

func main() {
	version := flag.String("version", "", "image tag, the release version (vX.Y.Z)")
	dist := flag.String("dist", "dist", "directory holding make dist's bin/linux_<arch>/kubectl-etcd; outputs go there")
	flag.Parse()
	paths, err := Build(*version, *dist)
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	ref := Repository + ":" + *version
	fmt.Printf("image: %s\n", ref)
	for _, p := range paths.Arch {
		fmt.Printf("  %s\n", p)
	}
	fmt.Printf("  %s (multi-arch OCI layout)\n", paths.Index)
	fmt.Printf("digest: %s (in %s; make release stamps it into the plugin)\n", paths.Digest, paths.DigestFile)
	fmt.Printf(`load it on a node:   ctr -n k8s.io images import %s
push one arch:       crane push %s %s
push both as one:    skopeo copy --all oci-archive:%s docker://%s
                     (or: mkdir l && tar -xf %s -C l && crane push l %s)
`, paths.Arch[0], paths.Arch[0], ref, paths.Index, ref, paths.Index, ref)
}

// Paths are the files Build wrote.
type Paths struct {
	Arch  []string // docker-archive per arch, in Arches order
	Index string   // OCI layout tarball of the multi-arch index
	// Digest is the multi-arch index's ("sha256:..."), as a registry
	// keeps it when the layout is pushed; DigestFile holds it, for
	// `make release` to stamp into the plugin (version.ImageDigest).
	Digest     string
	DigestFile string
}

// Build writes the images of dist/bin/linux_<arch>/kubectl-etcd into dist.
func Build(version, dist string) (Paths, error) {
	var paths Paths
	if version == "" {
		return paths, fmt.Errorf("--version is required (the image tag)")
	}
	ref := Repository + ":" + version
	tag, err := name.NewTag(ref)
	if err != nil {
		return paths, fmt.Errorf("image name %q: %w", ref, err)
	}
	bin := func(arch string) string { return filepath.Join(dist, "bin", "linux_"+arch, "kubectl-etcd") }
	// All inputs first, so a missing one leaves no partial set of images.
	for _, arch := range Arches {
		if _, err := os.Stat(bin(arch)); err != nil {
			return paths, fmt.Errorf("no linux/%s binary (run make dist first): %w", arch, err)
		}
	}
	idx := v1.ImageIndex(empty.Index)
	for _, arch := range Arches {
		img, err := testbed.ImageSpec{
			Ref:        ref,
			Files:      []testbed.ImageFile{{Src: bin(arch), Dst: "/usr/local/bin/kubectl-etcd", Mode: 0o755}},
			Entrypoint: []string{"/usr/local/bin/kubectl-etcd"},
			Arch:       arch,
		}.Image()
		if err != nil {
			return paths, err
		}
		out := filepath.Join(dist, fmt.Sprintf("kubectl-etcd-image_%s_linux_%s.tar", version, arch))
		if err := tarball.WriteToFile(out+".tmp", tag, img); err != nil {
			return paths, fmt.Errorf("writing %s: %w", out, err)
		}
		if err := os.Rename(out+".tmp", out); err != nil {
			return paths, err
		}
		paths.Arch = append(paths.Arch, out)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}

	// The layout's index.json points at our index; containerd names the
	// image from io.containerd.image.name, OCI tools from ref.name.
	dir, err := os.MkdirTemp("", "kubectl-etcd-oci-")
	if err != nil {
		return paths, err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return paths, fmt.Errorf("writing OCI layout: %w", err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          ref,
		"org.opencontainers.image.ref.name": version,
	})); err != nil {
		return paths, fmt.Errorf("writing OCI layout: %w", err)
	}
	paths.Index = filepath.Join(dist, fmt.Sprintf("kubectl-etcd-image_%s.oci.tar", version))
	if err := tarDir(dir, paths.Index); err != nil {
		return paths, fmt.Errorf("writing %s: %w", paths.Index, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return paths, fmt.Errorf("the index's digest: %w", err)
	}
	paths.Digest = d.String()
	paths.DigestFile = filepath.Join(dist, "image-digest")
	if err := os.WriteFile(paths.DigestFile, []byte(paths.Digest+"\n"), 0o644); err != nil {
		return paths, err
	}
	return paths, nil
}

// tarDir packs dir into out with sorted entries and no times or owners, so
// the same images give the same file.
func tarDir(dir, out string) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	f, err := os.Create(out + ".tmp")
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Format: tar.FormatPAX}
		if st.IsDir() {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
		} else {
			hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size()
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if st.IsDir() {
			continue
		}
		r, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(tw, r)
		r.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(out+".tmp", out)
}
