// Command image builds the kubectl-etcd container image (make image) from the
// linux binaries `make dist` built, so the image runs exactly the released
// binary. There is no docker engine here, and none is needed: the image is a
// single FROM-scratch layer made by pkg/ociimage, the same code that makes
// the images the test bed's clusters run.
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
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/ociimage"
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
	if err := ociimage.ValidateRef(ref); err != nil {
		return paths, err
	}
	bin := func(arch string) string { return filepath.Join(dist, "bin", "linux_"+arch, "kubectl-etcd") }
	// All inputs first, so a missing one leaves no partial set of images.
	for _, arch := range Arches {
		if _, err := os.Stat(bin(arch)); err != nil {
			return paths, fmt.Errorf("no linux/%s binary (run make dist first): %w", arch, err)
		}
	}
	var imgs []*ociimage.Image
	for _, arch := range Arches {
		img, err := ociimage.Build(ociimage.Spec{
			Files:      []ociimage.File{{Src: bin(arch), Dst: "/usr/local/bin/kubectl-etcd", Mode: 0o755}},
			Entrypoint: []string{"/usr/local/bin/kubectl-etcd"},
			Arch:       arch,
		})
		if err != nil {
			return paths, fmt.Errorf("building the linux/%s image: %w", arch, err)
		}
		imgs = append(imgs, img)
	}
	for _, img := range imgs {
		out := filepath.Join(dist, fmt.Sprintf("kubectl-etcd-image_%s_linux_%s.tar", version, img.Arch))
		if err := ociimage.WriteDockerArchive(out, ref, img); err != nil {
			return paths, err
		}
		paths.Arch = append(paths.Arch, out)
	}
	paths.Index = filepath.Join(dist, fmt.Sprintf("kubectl-etcd-image_%s.oci.tar", version))
	digest, err := ociimage.WriteOCILayout(paths.Index, ref, imgs)
	if err != nil {
		return paths, err
	}
	// Read it back before recording the digest: make release stamps that
	// digest into every plugin it builds, so it must name what we wrote.
	l, err := ociimage.ReadOCILayout(paths.Index)
	if err != nil {
		return paths, fmt.Errorf("checking %s: %w", paths.Index, err)
	}
	if l.IndexDigest != digest || len(l.Platforms) != len(Arches) {
		return paths, fmt.Errorf("checking %s: index %s of %d platforms, wrote %s of %d", paths.Index, l.IndexDigest, len(l.Platforms), digest, len(Arches))
	}
	paths.Digest = digest
	paths.DigestFile = filepath.Join(dist, "image-digest")
	if err := os.WriteFile(paths.DigestFile, []byte(paths.Digest+"\n"), 0o644); err != nil {
		return paths, err
	}
	return paths, nil
}
