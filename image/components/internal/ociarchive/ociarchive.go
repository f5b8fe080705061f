// Package ociarchive writes a one-binary container image as a tarball in
// both the OCI image layout and docker's `docker save` format, so containerd
// (`ctr images import`) and docker (`docker load`) accept it without a
// registry. The output is reproducible: it depends only on the Image.
package ociarchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// Media types of the OCI image spec.
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar"
)

// epoch is every timestamp in the archive, for reproducible output.
var epoch = time.Unix(0, 0).UTC()

// Image is a single-layer image holding one executable, its entrypoint,
// and any others beside it.
type Image struct {
	Name   string // reference, e.g. registry.k8s.io/pause:3.10.2
	Arch   string // GOARCH: amd64, arm64
	Path   string // absolute path of the binary in the image, also the entrypoint
	Binary []byte // the executable
	// Extra are more executables in the same layer, run only when a
	// container names them as its command (a helper of the entrypoint's).
	Extra []File
}

// File is an executable at an absolute path in the image.
type File struct {
	Path string
	Data []byte
}

// Descriptor points at a blob (OCI image spec).
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *Platform         `json:"platform,omitempty"`
}

// Platform names an image's OS and architecture.
type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		Entrypoint []string `json:"Entrypoint"`
		User       string   `json:"User,omitempty"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Validate reports what is missing or wrong in img.
func (img *Image) Validate() error {
	switch {
	case img.Name == "":
		return fmt.Errorf("image has no name; give a reference like registry.k8s.io/pause:3.10.2")
	case !strings.Contains(path.Base(img.Name), ":"):
		return fmt.Errorf("image name %q has no tag; add one (name:tag)", img.Name)
	case img.Arch != "amd64" && img.Arch != "arm64":
		return fmt.Errorf("image architecture %q is not supported; use amd64 or arm64", img.Arch)
	case !path.IsAbs(img.Path) || path.Clean(img.Path) != img.Path || img.Path == "/":
		return fmt.Errorf("path %q in the image must be absolute and clean, e.g. /pause", img.Path)
	case len(img.Binary) == 0:
		return fmt.Errorf("image %s has an empty binary", img.Name)
	}
	seen := map[string]bool{img.Path: true}
	for _, f := range img.Extra {
		switch {
		case !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/":
			return fmt.Errorf("path %q in the image must be absolute and clean, e.g. /usr/bin/helper", f.Path)
		case seen[f.Path]:
			return fmt.Errorf("image %s has two files at %s", img.Name, f.Path)
		case len(f.Data) == 0:
			return fmt.Errorf("image %s has an empty file at %s", img.Name, f.Path)
		}
		for p := range seen {
			if strings.HasPrefix(p, f.Path+"/") || strings.HasPrefix(f.Path, p+"/") {
				return fmt.Errorf("image %s has files at %s and %s, one below the other", img.Name, p, f.Path)
			}
		}
		seen[f.Path] = true
	}
	return nil
}

// Write writes img as an image tarball to w.
func (img *Image) Write(w io.Writer) error {
	if err := img.Validate(); err != nil {
		return err
	}
	layer, err := img.layer()
	if err != nil {
		return err
	}
	layerDesc := describe(MediaTypeLayer, layer)

	var cfg imageConfig
	cfg.Architecture = img.Arch
	cfg.OS = "linux"
	cfg.Config.Entrypoint = []string{img.Path}
	cfg.Config.User = "65535:65535"
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{layerDesc.Digest} // the layer is not compressed
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encoding the image config: %w", err)
	}
	cfgDesc := describe(MediaTypeConfig, cfgJSON)

	man, err := json.Marshal(manifest{SchemaVersion: 2, MediaType: MediaTypeManifest, Config: cfgDesc, Layers: []Descriptor{layerDesc}})
	if err != nil {
		return fmt.Errorf("encoding the manifest: %w", err)
	}
	manDesc := describe(MediaTypeManifest, man)
	manDesc.Platform = &Platform{Architecture: img.Arch, OS: "linux"}
	manDesc.Annotations = map[string]string{
		"io.containerd.image.name":          img.Name,
		"org.opencontainers.image.ref.name": img.Name[strings.LastIndex(img.Name, ":")+1:],
	}
	idx, err := json.Marshal(index{SchemaVersion: 2, MediaType: MediaTypeIndex, Manifests: []Descriptor{manDesc}})
	if err != nil {
		return fmt.Errorf("encoding the index: %w", err)
	}
	docker, err := json.Marshal([]dockerManifest{{
		Config:   blobPath(cfgDesc),
		RepoTags: []string{img.Name},
		Layers:   []string{blobPath(layerDesc)},
	}})
	if err != nil {
		return fmt.Errorf("encoding manifest.json: %w", err)
	}

	tw := tar.NewWriter(w)
	files := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", idx},
		{"manifest.json", docker},
		{blobPath(manDesc), man},
		{blobPath(cfgDesc), cfgJSON},
		{blobPath(layerDesc), layer},
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return fmt.Errorf("writing %s: %w", dir, err)
		}
	}
	for _, f := range files {
		if err := writeFile(tw, f.name, 0o644, f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("finishing the archive: %w", err)
	}
	return nil
}

// layer is an uncompressed tar with the binaries, each after the
// directories above it (each directory once).
func (img *Image) layer() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range append([]File{{img.Path, img.Binary}}, img.Extra...) {
		rel := strings.TrimPrefix(f.Path, "/")
		parts := strings.Split(rel, "/")
		for i := 1; i < len(parts); i++ {
			dir := strings.Join(parts[:i], "/") + "/"
			if dirs[dir] {
				continue
			}
			dirs[dir] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
				return nil, fmt.Errorf("writing layer directory %s: %w", dir, err)
			}
		}
		if err := writeFile(tw, rel, 0o755, f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("finishing the layer: %w", err)
	}
	return buf.Bytes(), nil
}

func writeFile(tw *tar.Writer, name string, mode int64, data []byte) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

func describe(mediaType string, data []byte) Descriptor {
	sum := sha256.Sum256(data)
	return Descriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data))}
}

func blobPath(d Descriptor) string {
	return "blobs/sha256/" + strings.TrimPrefix(d.Digest, "sha256:")
}
