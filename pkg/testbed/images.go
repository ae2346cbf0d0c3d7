package testbed

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ImageFile is one file copied into an image.
type ImageFile struct {
	Src  string // path on this machine
	Dst  string // absolute path in the image
	Mode int64
}

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
	}{s.Ref, dsts(s.Files), s.Symlinks, s.Entrypoint, s.Arch})
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
	tag, err := name.NewTag(spec.Ref)
	if err != nil {
		return "", fmt.Errorf("image name %q: %w", spec.Ref, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		return "", fmt.Errorf("writing image %s: %w", spec.Ref, err)
	}
	return out, os.Rename(tmp, out)
}

// Image is the one-layer FROM-scratch image of the spec, in memory. make
// image builds the released kubectl-etcd image with it too, so the bed runs
// the same image layout users get.
func (s ImageSpec) Image() (v1.Image, error) {
	layerTar, err := layerBytes(s)
	if err != nil {
		return nil, fmt.Errorf("building layer of %s: %w", s.Ref, err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("building layer of %s: %w", s.Ref, err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("building image %s: %w", s.Ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("building image %s: %w", s.Ref, err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", s.arch()
	cfg.Config = v1.Config{
		Entrypoint: s.Entrypoint,
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("building image %s: %w", s.Ref, err)
	}
	return img, nil
}

func (s ImageSpec) arch() string {
	if s.Arch == "" {
		return "amd64"
	}
	return s.Arch
}

func layerBytes(spec ImageSpec) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	addDir := func(d string) error {
		var chain []string
		for ; d != "/" && d != "." && !dirs[d]; d = filepath.Dir(d) {
			chain = append([]string{d}, chain...)
		}
		for _, c := range chain {
			dirs[c] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: c[1:] + "/", Mode: 0o755}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := addDir("/tmp"); err != nil {
		return nil, err
	}
	for _, f := range spec.Files {
		if err := addDir(filepath.Dir(f.Dst)); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(f.Src)
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.Dst[1:], Mode: f.Mode, Size: int64(len(data))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	links := make([]string, 0, len(spec.Symlinks))
	for l := range spec.Symlinks {
		links = append(links, l)
	}
	sort.Strings(links)
	for _, l := range links {
		if err := addDir(filepath.Dir(l)); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: l[1:], Linkname: spec.Symlinks[l], Mode: 0o777}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
