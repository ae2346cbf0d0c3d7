// Package ociimage builds one-layer FROM-scratch container images from local
// files and writes them as a docker-archive tarball (what `ctr images import`
// and `docker load` take) or as an OCI image layout holding a multi-arch
// index (what `skopeo copy --all oci-archive:` and `crane push` take).
//
// It is the standard library only, on purpose: the images we need are one
// layer of a few static binaries, and a general image library
// (go-containerregistry) would pull docker's client and cobra into the
// plugin's module for the sake of the test bed and `make image`.
//
// The output is reproducible: no timestamps, sorted entries, gzip without a
// name or time, so the same files give the same digests.
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
)

// Media types of what the OCI layout holds (OCI image spec v1.1).
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// File is one file copied into an image.
type File struct {
	Src  string // path on this machine
	Dst  string // absolute path in the image
	Mode int64
}

// Spec describes a one-layer FROM-scratch linux image.
type Spec struct {
	Files      []File
	Symlinks   map[string]string // link path in image -> target
	Entrypoint []string
	Arch       string // GOARCH of the files; empty means amd64
}

// Image is a built image: its blobs and their digests ("sha256:<hex>").
type Image struct {
	Arch           string
	Layer          []byte // gzip-compressed tar
	LayerDigest    string
	DiffID         string // digest of the uncompressed layer
	Config         []byte
	ConfigDigest   string
	Manifest       []byte // OCI image manifest
	ManifestDigest string
}

// Descriptor points at a blob (OCI image spec).
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *Platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Platform is the os/arch an index entry is for.
type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// ConfigFile is the part of the image configuration we write and read.
type ConfigFile struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		Entrypoint []string `json:"Entrypoint,omitempty"`
		Env        []string `json:"Env,omitempty"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// Manifest is an OCI image manifest.
type Manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

// Index is an OCI image index (also the layout's index.json).
type Index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

// Digest is the OCI digest of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// refPattern is a docker reference with a tag, lower-case repository path
// (distribution's reference grammar, without digests, which we never name).
var refPattern = regexp.MustCompile(`^([a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?/)?[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// ValidateRef refuses what a registry or containerd would not take as
// repository:tag, before anything is written.
func ValidateRef(ref string) error {
	if !refPattern.MatchString(ref) {
		return fmt.Errorf("image name %q is not repository:tag (lower-case repository, tag of letters, digits, '.', '_', '-')", ref)
	}
	return nil
}

// Build makes the image of spec in memory.
func Build(spec Spec) (*Image, error) {
	arch := spec.Arch
	if arch == "" {
		arch = "amd64"
	}
	raw, err := layerTar(spec)
	if err != nil {
		return nil, fmt.Errorf("building the layer: %w", err)
	}
	var gz bytes.Buffer
	// BestSpeed: the bed builds images of every Kubernetes component on a
	// cold cache; the smaller files of a slower level are not worth it.
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	img := &Image{Arch: arch, Layer: gz.Bytes(), LayerDigest: Digest(gz.Bytes()), DiffID: Digest(raw)}

	var cfg ConfigFile
	cfg.Architecture, cfg.OS = arch, "linux"
	cfg.Config.Entrypoint = spec.Entrypoint
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cfg.RootFS.Type, cfg.RootFS.DiffIDs = "layers", []string{img.DiffID}
	if img.Config, err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	img.ConfigDigest = Digest(img.Config)

	m := Manifest{
		SchemaVersion: 2,
		MediaType:     MediaTypeManifest,
		Config:        Descriptor{MediaType: MediaTypeConfig, Digest: img.ConfigDigest, Size: int64(len(img.Config))},
		Layers:        []Descriptor{{MediaType: MediaTypeLayer, Digest: img.LayerDigest, Size: int64(len(img.Layer))}},
	}
	if img.Manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	img.ManifestDigest = Digest(img.Manifest)
	return img, nil
}

// layerTar is the uncompressed layer: every parent directory, the files, the
// symlinks, in a fixed order and without times or owners.
func layerTar(spec Spec) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	addDir := func(d string) error {
		var chain []string
		for ; d != "/" && d != "." && !dirs[d]; d = path.Dir(d) {
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
	// Programs (and etcd's snapshot code) want a /tmp.
	if err := addDir("/tmp"); err != nil {
		return nil, err
	}
	for _, f := range spec.Files {
		if !path.IsAbs(f.Dst) {
			return nil, fmt.Errorf("%s: the path in the image must be absolute", f.Dst)
		}
		if err := addDir(path.Dir(f.Dst)); err != nil {
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
		if !path.IsAbs(l) {
			return nil, fmt.Errorf("%s: the link's path in the image must be absolute", l)
		}
		if err := addDir(path.Dir(l)); err != nil {
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

// dockerManifestEntry is one image in a docker-archive's manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// WriteDockerArchive writes img tagged ref as a docker-archive tarball at
// file (through a temporary file renamed at the end, so a reader never sees
// half an image).
func WriteDockerArchive(file, ref string, img *Image) error {
	if err := ValidateRef(ref); err != nil {
		return err
	}
	hexOf := func(d string) string { return strings.TrimPrefix(d, "sha256:") }
	cfgName, layerName := img.ConfigDigest, hexOf(img.LayerDigest)+".tar.gz"
	manifest, err := json.Marshal([]dockerManifestEntry{{Config: cfgName, RepoTags: []string{ref}, Layers: []string{layerName}}})
	if err != nil {
		return err
	}
	return writeTar(file, []entry{
		{name: cfgName, data: img.Config},
		{name: layerName, data: img.Layer},
		{name: "manifest.json", data: manifest},
	})
}

// WriteOCILayout writes imgs as one multi-arch index in an OCI image layout
// packed into the tarball file. The layout's index.json names the index
// twice: io.containerd.image.name (ref, for ctr import) and
// org.opencontainers.image.ref.name (the tag, for OCI tools). It returns the
// index's digest, which a registry keeps when the layout is pushed as is.
func WriteOCILayout(file, ref string, imgs []*Image) (string, error) {
	if err := ValidateRef(ref); err != nil {
		return "", err
	}
	if len(imgs) == 0 {
		return "", fmt.Errorf("an index needs at least one image")
	}
	tag := ref[strings.LastIndex(ref, ":")+1:]
	blobs := map[string][]byte{}
	idx := Index{SchemaVersion: 2, MediaType: MediaTypeIndex}
	for _, img := range imgs {
		blobs[img.LayerDigest] = img.Layer
		blobs[img.ConfigDigest] = img.Config
		blobs[img.ManifestDigest] = img.Manifest
		idx.Manifests = append(idx.Manifests, Descriptor{
			MediaType: MediaTypeManifest, Digest: img.ManifestDigest, Size: int64(len(img.Manifest)),
			Platform: &Platform{Architecture: img.Arch, OS: "linux"},
		})
	}
	idxJSON, err := json.Marshal(idx)
	if err != nil {
		return "", err
	}
	idxDigest := Digest(idxJSON)
	blobs[idxDigest] = idxJSON
	top, err := json.Marshal(Index{SchemaVersion: 2, MediaType: MediaTypeIndex, Manifests: []Descriptor{{
		MediaType: MediaTypeIndex, Digest: idxDigest, Size: int64(len(idxJSON)),
		Annotations: map[string]string{"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag},
	}}})
	if err != nil {
		return "", err
	}

	entries := []entry{{name: "blobs/", dir: true}, {name: "blobs/sha256/", dir: true}}
	digests := make([]string, 0, len(blobs))
	for d := range blobs {
		digests = append(digests, d)
	}
	sort.Strings(digests)
	for _, d := range digests {
		entries = append(entries, entry{name: "blobs/sha256/" + strings.TrimPrefix(d, "sha256:"), data: blobs[d]})
	}
	entries = append(entries,
		entry{name: "index.json", data: top},
		entry{name: "oci-layout", data: []byte(`{"imageLayoutVersion":"1.0.0"}`)})
	if err := writeTar(file, entries); err != nil {
		return "", err
	}
	return idxDigest, nil
}

type entry struct {
	name string
	data []byte
	dir  bool
}

// writeTar writes entries, in order, into file via file.tmp and a rename.
func writeTar(file string, entries []entry) error {
	tmp := file + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	defer os.Remove(tmp) // a no-op after the rename
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e.data)), Format: tar.FormatPAX}
		if e.dir {
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("writing %s: %w", file, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return fmt.Errorf("writing %s: %w", file, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return os.Rename(tmp, file)
}
