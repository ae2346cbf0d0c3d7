package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// The readers below check what the writers wrote (make image checks its
// output before it records the digest; the tests read images back). They
// verify every digest and size on the way, so a reader that returns without
// error has seen a consistent image.

// Entry is one file, directory or symlink in an image's layer.
type Entry struct {
	Type byte // tar.TypeReg, tar.TypeDir, tar.TypeSymlink
	Mode int64
	Data []byte
	Link string
}

// Contents is one image as read back: its configuration and its files by
// path in the image, without the leading "/".
type Contents struct {
	Config ConfigFile
	Files  map[string]Entry
}

// Archive is a docker-archive tarball as read back.
type Archive struct {
	RepoTags []string
	Image    Contents
}

// Layout is an OCI layout tarball holding one multi-arch index.
type Layout struct {
	Name        string // io.containerd.image.name
	RefName     string // org.opencontainers.image.ref.name
	IndexDigest string
	Platforms   []Platform          // in index order
	Images      map[string]Contents // by architecture
}

// readTar loads every regular file of the tarball by name.
func readTar(file string) (map[string][]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", file, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", file, err)
		}
		out[h.Name] = b
	}
}

// contents checks the layer against the config's diff ID and unpacks it.
func contents(config, layer []byte) (Contents, error) {
	var c Contents
	if err := json.Unmarshal(config, &c.Config); err != nil {
		return c, fmt.Errorf("image config: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(layer))
	if err != nil {
		return c, fmt.Errorf("layer: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return c, fmt.Errorf("layer: %w", err)
	}
	if len(c.Config.RootFS.DiffIDs) != 1 || c.Config.RootFS.DiffIDs[0] != Digest(raw) {
		return c, fmt.Errorf("layer's diff ID %s is not the config's %v", Digest(raw), c.Config.RootFS.DiffIDs)
	}
	c.Files = map[string]Entry{}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return c, nil
		}
		if err != nil {
			return c, fmt.Errorf("layer: %w", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return c, fmt.Errorf("layer: %w", err)
		}
		c.Files[strings.TrimSuffix(h.Name, "/")] = Entry{Type: h.Typeflag, Mode: h.Mode, Data: b, Link: h.Linkname}
	}
}

// ReadDockerArchive reads back a one-image docker-archive tarball.
func ReadDockerArchive(file string) (*Archive, error) {
	files, err := readTar(file)
	if err != nil {
		return nil, err
	}
	var m []dockerManifestEntry
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil {
		return nil, fmt.Errorf("%s: manifest.json: %w", file, err)
	}
	if len(m) != 1 || len(m[0].Layers) != 1 {
		return nil, fmt.Errorf("%s: want one image of one layer, manifest.json has %+v", file, m)
	}
	cfg, ok := files[m[0].Config]
	if !ok || Digest(cfg) != m[0].Config {
		return nil, fmt.Errorf("%s: config %s missing or not matching its digest", file, m[0].Config)
	}
	layer, ok := files[m[0].Layers[0]]
	if !ok || Digest(layer) != "sha256:"+strings.TrimSuffix(m[0].Layers[0], ".tar.gz") {
		return nil, fmt.Errorf("%s: layer %s missing or not matching its digest", file, m[0].Layers[0])
	}
	c, err := contents(cfg, layer)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &Archive{RepoTags: m[0].RepoTags, Image: c}, nil
}

// ReadOCILayout reads back an OCI layout tarball of one multi-arch index.
func ReadOCILayout(file string) (*Layout, error) {
	files, err := readTar(file)
	if err != nil {
		return nil, err
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		return nil, fmt.Errorf("%s: oci-layout is %q", file, files["oci-layout"])
	}
	// blob returns the blob d points at, checked against d.
	blob := func(d Descriptor, mediaType string) ([]byte, error) {
		b, ok := files["blobs/sha256/"+strings.TrimPrefix(d.Digest, "sha256:")]
		switch {
		case !ok:
			return nil, fmt.Errorf("%s: blob %s missing", file, d.Digest)
		case Digest(b) != d.Digest || int64(len(b)) != d.Size:
			return nil, fmt.Errorf("%s: blob %s does not match its digest or size %d", file, d.Digest, d.Size)
		case d.MediaType != mediaType:
			return nil, fmt.Errorf("%s: blob %s is %s, want %s", file, d.Digest, d.MediaType, mediaType)
		}
		return b, nil
	}
	var top Index
	if err := json.Unmarshal(files["index.json"], &top); err != nil {
		return nil, fmt.Errorf("%s: index.json: %w", file, err)
	}
	if len(top.Manifests) != 1 {
		return nil, fmt.Errorf("%s: index.json names %d entries, want 1", file, len(top.Manifests))
	}
	l := &Layout{
		Name:        top.Manifests[0].Annotations["io.containerd.image.name"],
		RefName:     top.Manifests[0].Annotations["org.opencontainers.image.ref.name"],
		IndexDigest: top.Manifests[0].Digest,
		Images:      map[string]Contents{},
	}
	b, err := blob(top.Manifests[0], MediaTypeIndex)
	if err != nil {
		return nil, err
	}
	var idx Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s: index: %w", file, err)
	}
	for _, d := range idx.Manifests {
		if d.Platform == nil {
			return nil, fmt.Errorf("%s: index entry %s has no platform", file, d.Digest)
		}
		b, err := blob(d, MediaTypeManifest)
		if err != nil {
			return nil, err
		}
		var m Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("%s: manifest %s: %w", file, d.Digest, err)
		}
		if len(m.Layers) != 1 {
			return nil, fmt.Errorf("%s: manifest %s has %d layers, want 1", file, d.Digest, len(m.Layers))
		}
		cfg, err := blob(m.Config, MediaTypeConfig)
		if err != nil {
			return nil, err
		}
		layer, err := blob(m.Layers[0], MediaTypeLayer)
		if err != nil {
			return nil, err
		}
		c, err := contents(cfg, layer)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if c.Config.Architecture != d.Platform.Architecture || c.Config.OS != d.Platform.OS {
			return nil, fmt.Errorf("%s: index says %s/%s, its config %s/%s", file, d.Platform.OS, d.Platform.Architecture, c.Config.OS, c.Config.Architecture)
		}
		l.Platforms = append(l.Platforms, *d.Platform)
		l.Images[d.Platform.Architecture] = c
	}
	return l, nil
}
