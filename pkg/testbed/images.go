package testbed

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/ociimage"
)

// ImageFile is one file copied into an image.
type ImageFile = ociimage.File

// ImageSpec describes a one-layer FROM-scratch image. The bed has no registry,
// so every image a host runs is built from local files and imported into each
// host's containerd under the name kubeadm (or a test) expects.
type ImageSpec struct {
	Ref        string // e.g. registry.k8s.io/etcd:3.7.0-0
	Files      []ImageFile
	Symlinks   map[string]string // link path in image -> target
	Entrypoint []string
	Arch       string // GOARCH of the files; empty means amd64, the bed's
}

// key identifies the spec and the content of its files, so a cached tarball is
// reused only when nothing that goes into it changed.
func (s ImageSpec) key() (string, error) {
	h := sha256.New()
	meta, _ := json.Marshal(struct {
		Ref        string
		Dsts       []string
		Symlinks   map[string]string
		Entrypoint []string
		Arch       string `json:",omitempty"` // so amd64 images keep their cache key
		// Writer names the code that writes the tarball: images
		// cached by an earlier writer are rebuilt, so a cache never
		// hides a change in how images are written.
		Writer string
	}{s.Ref, dsts(s.Files), s.Symlinks, s.Entrypoint, s.Arch, "ociimage/1"})
	h.Write(meta)
	for _, f := range s.Files {
		r, err := os.Open(f.Src)
		if err != nil {
			return "", fmt.Errorf("reading %s for image %s: %w", f.Src, s.Ref, err)
		}
		_, err = io.Copy(h, r)
		r.Close()
		if err != nil {
			return "", fmt.Errorf("reading %s for image %s: %w", f.Src, s.Ref, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func dsts(fs []ImageFile) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s:%o", f.Dst, f.Mode))
	}
	return out
}

// BuildImage writes the image as a docker-archive tarball in dir (reusing an
// identical earlier build) and returns its path.
func BuildImage(spec ImageSpec, dir string) (string, error) {
	if err := ociimage.ValidateRef(spec.Ref); err != nil {
		return "", err
	}
	key, err := spec.key()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, key+".tar")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	img, err := spec.Image()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := ociimage.WriteDockerArchive(out, spec.Ref, img); err != nil {
		return "", fmt.Errorf("writing image %s: %w", spec.Ref, err)
	}
	return out, nil
}

// Image is the one-layer FROM-scratch image of the spec, in memory. make
// image builds the released kubectl-etcd image the same way, so the bed runs
// the same image layout users get.
func (s ImageSpec) Image() (*ociimage.Image, error) {
	img, err := ociimage.Build(ociimage.Spec{Files: s.Files, Symlinks: s.Symlinks, Entrypoint: s.Entrypoint, Arch: s.Arch})
	if err != nil {
		return nil, fmt.Errorf("building image %s: %w", s.Ref, err)
	}
	return img, nil
}
