package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// imageConfig is what an image says about how it runs, and the names it
// is imported under.
type imageConfig struct {
	Names      []string // references, e.g. cairn.local/e2e-test-images/agnhost:2.63.0
	Arch       string   // GOARCH: amd64, arm64
	Entrypoint []string
	Cmd        []string
	Env        []string
	User       string // "" is root, as in the upstream images (pause: 65535:65535)
	WorkingDir string
}

// epoch is every timestamp in an archive: the output depends only on the
// tree and the config.
var epoch = time.Unix(0, 0).UTC()

// maxLayer bounds one image's layer; the largest here (agnhost with its
// Debian tools) is about 150 MB.
const maxLayer = 1 << 30

// writeImageArchive packs the directory tree as the one layer of an image
// and writes it to out as a tarball that `ctr images import` (what each
// node runs at boot, init/node/worker.go) and `docker load` both read: an
// OCI image layout (oci-layout, index.json, blobs/sha256/...) plus
// docker's manifest.json naming the same blobs. Every name in cfg.Names
// points at the same manifest. Files are owned by root; modes, setuid
// bits and symlinks are kept; device files and sockets are refused.
func writeImageArchive(tree string, cfg imageConfig, out string) error {
	if len(cfg.Names) == 0 {
		return fmt.Errorf("image from %s has no name", tree)
	}
	for _, n := range cfg.Names {
		if !strings.Contains(path.Base(n), ":") {
			return fmt.Errorf("image name %q has no tag", n)
		}
	}
	if cfg.Arch != "amd64" && cfg.Arch != "arm64" {
		return fmt.Errorf("image %s: architecture %q, want amd64 or arm64", cfg.Names[0], cfg.Arch)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	layerFile, err := os.CreateTemp(filepath.Dir(out), ".layer-*")
	if err != nil {
		return err
	}
	defer os.Remove(layerFile.Name())
	defer layerFile.Close()
	layerDesc, err := writeLayer(tree, layerFile)
	if err != nil {
		return fmt.Errorf("image %s: %w", cfg.Names[0], err)
	}

	type runConfig struct {
		Entrypoint []string `json:"Entrypoint,omitempty"`
		Cmd        []string `json:"Cmd,omitempty"`
		Env        []string `json:"Env,omitempty"`
		User       string   `json:"User,omitempty"`
		WorkingDir string   `json:"WorkingDir,omitempty"`
	}
	type rootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	}
	cfgJSON, err := json.Marshal(struct {
		Architecture string    `json:"architecture"`
		OS           string    `json:"os"`
		Created      time.Time `json:"created"`
		Config       runConfig `json:"config"`
		RootFS       rootFS    `json:"rootfs"`
	}{
		Architecture: cfg.Arch,
		OS:           "linux",
		Created:      epoch,
		Config:       runConfig{cfg.Entrypoint, cfg.Cmd, cfg.Env, cfg.User, cfg.WorkingDir},
		RootFS:       rootFS{Type: "layers", DiffIDs: []string{layerDesc.Digest}}, // not compressed
	})
	if err != nil {
		return err
	}
	cfgDesc := describe("application/vnd.oci.image.config.v1+json", cfgJSON)
	man, err := json.Marshal(struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Config        descriptor   `json:"config"`
		Layers        []descriptor `json:"layers"`
	}{2, "application/vnd.oci.image.manifest.v1+json", cfgDesc, []descriptor{layerDesc}})
	if err != nil {
		return err
	}
	manDesc := describe("application/vnd.oci.image.manifest.v1+json", man)
	var manifests []descriptor
	for _, n := range cfg.Names {
		d := manDesc
		d.Platform = &platform{Architecture: cfg.Arch, OS: "linux"}
		d.Annotations = map[string]string{
			"io.containerd.image.name":          n,
			"org.opencontainers.image.ref.name": n[strings.LastIndex(n, ":")+1:],
		}
		manifests = append(manifests, d)
	}
	idx, err := json.Marshal(struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}{2, "application/vnd.oci.image.index.v1+json", manifests})
	if err != nil {
		return err
	}
	docker, err := json.Marshal([]struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{{blobPath(cfgDesc), cfg.Names, []string{blobPath(layerDesc)}}})
	if err != nil {
		return err
	}

	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			f.Close()
			return err
		}
	}
	for _, e := range []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", idx},
		{"manifest.json", docker},
		{blobPath(manDesc), man},
		{blobPath(cfgDesc), cfgJSON},
	} {
		if err := writeTarFile(tw, e.name, int64(len(e.data)), strings.NewReader(string(e.data))); err != nil {
			f.Close()
			return err
		}
	}
	if _, err := layerFile.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	if err := writeTarFile(tw, blobPath(layerDesc), layerDesc.Size, layerFile); err != nil {
		f.Close()
		return err
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// writeLayer writes tree as an uncompressed layer tar to w, in path order,
// and describes it.
func writeLayer(tree string, w io.Writer) (descriptor, error) {
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(w, h)}
	tw := tar.NewWriter(cw)
	var names []string
	err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != tree {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return descriptor{}, err
	}
	sort.Strings(names)
	for _, p := range names {
		rel, err := filepath.Rel(tree, p)
		if err != nil {
			return descriptor{}, err
		}
		rel = filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return descriptor{}, err
		}
		link := ""
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return descriptor{}, err
			}
		case fi.IsDir(), fi.Mode().IsRegular():
		default:
			return descriptor{}, fmt.Errorf("%s: %s files have no place in an image here", rel, fi.Mode().Type())
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return descriptor{}, fmt.Errorf("%s: %w", rel, err)
		}
		hdr.Name = rel
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = epoch, time.Time{}, time.Time{}
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return descriptor{}, fmt.Errorf("%s: %w", rel, err)
		}
		if fi.Mode().IsRegular() {
			if err := copyFile(tw, p); err != nil {
				return descriptor{}, fmt.Errorf("%s: %w", rel, err)
			}
		}
		if cw.n > maxLayer {
			return descriptor{}, fmt.Errorf("the layer passed %d MiB at %s", maxLayer>>20, rel)
		}
	}
	if err := tw.Close(); err != nil {
		return descriptor{}, err
	}
	return descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: digestOf(h), Size: cw.n}, nil
}

func copyFile(w io.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

func writeTarFile(tw *tar.Writer, name string, size int64, r io.Reader) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := io.CopyN(tw, r, size); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

func describe(mediaType string, data []byte) descriptor {
	h := sha256.New()
	h.Write(data)
	return descriptor{MediaType: mediaType, Digest: digestOf(h), Size: int64(len(data))}
}

func digestOf(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

func blobPath(d descriptor) string { return "blobs/sha256/" + strings.TrimPrefix(d.Digest, "sha256:") }

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
