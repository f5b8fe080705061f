package ociarchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

func readTar(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("reading the archive: %v", err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || !hdr.ModTime.Equal(epoch) {
			t.Errorf("%s: owner %d:%d, mtime %v; want 0:0 at the epoch", hdr.Name, hdr.Uid, hdr.Gid, hdr.ModTime)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %s: %v", hdr.Name, err)
		}
		files[hdr.Name] = b
	}
}

func blob(t *testing.T, files map[string][]byte, d Descriptor) []byte {
	t.Helper()
	b, ok := files[blobPath(d)]
	if !ok {
		t.Fatalf("blob %s is missing", d.Digest)
	}
	sum := sha256.Sum256(b)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != d.Digest || int64(len(b)) != d.Size {
		t.Fatalf("blob %s: digest %s size %d; descriptor says %s size %d", blobPath(d), got, len(b), d.Digest, d.Size)
	}
	return b
}

func TestWriteReadsBackAsAnImage(t *testing.T) {
	img := Image{Name: "registry.k8s.io/pause:3.10.2", Arch: "arm64", Path: "/pause", Binary: []byte("\x7fELF not really")}
	var buf bytes.Buffer
	if err := img.Write(&buf); err != nil {
		t.Fatal(err)
	}
	files := readTar(t, buf.Bytes())

	var idx index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	if len(idx.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1", len(idx.Manifests))
	}
	md := idx.Manifests[0]
	if md.Annotations["io.containerd.image.name"] != img.Name || md.Annotations["org.opencontainers.image.ref.name"] != "3.10.2" {
		t.Errorf("manifest annotations %v do not name %s", md.Annotations, img.Name)
	}
	if md.Platform == nil || md.Platform.Architecture != "arm64" {
		t.Errorf("manifest platform %+v, want linux/arm64", md.Platform)
	}
	var man manifest
	if err := json.Unmarshal(blob(t, files, md), &man); err != nil {
		t.Fatal(err)
	}
	var cfg imageConfig
	if err := json.Unmarshal(blob(t, files, man.Config), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Architecture != "arm64" || cfg.OS != "linux" || strings.Join(cfg.Config.Entrypoint, " ") != "/pause" {
		t.Errorf("config says %s/%s entrypoint %v; want linux/arm64 /pause", cfg.OS, cfg.Architecture, cfg.Config.Entrypoint)
	}
	if len(man.Layers) != 1 || len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != man.Layers[0].Digest {
		t.Fatalf("layers %v and diff_ids %v disagree", man.Layers, cfg.RootFS.DiffIDs)
	}
	layer := readTar(t, blob(t, files, man.Layers[0]))
	if !bytes.Equal(layer["pause"], img.Binary) {
		t.Errorf("layer holds %q at pause, want the binary", layer["pause"])
	}

	var docker []dockerManifest
	if err := json.Unmarshal(files["manifest.json"], &docker); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(docker) != 1 || docker[0].Config != blobPath(man.Config) || strings.Join(docker[0].RepoTags, ",") != img.Name ||
		strings.Join(docker[0].Layers, ",") != blobPath(man.Layers[0]) {
		t.Errorf("manifest.json %+v does not match the OCI manifest", docker)
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout is %q", files["oci-layout"])
	}
}

func TestWriteIsReproducible(t *testing.T) {
	img := Image{Name: "example.org/x:1", Arch: "amd64", Path: "/bin/x", Binary: []byte("x")}
	var a, b bytes.Buffer
	if err := img.Write(&a); err != nil {
		t.Fatal(err)
	}
	if err := img.Write(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two writes of the same image differ")
	}
	layerFiles := map[string]bool{}
	files := readTar(t, a.Bytes())
	var docker []dockerManifest
	if err := json.Unmarshal(files["manifest.json"], &docker); err != nil {
		t.Fatal(err)
	}
	for name := range readTar(t, files[docker[0].Layers[0]]) {
		layerFiles[name] = true
	}
	if !layerFiles["bin/"] || !layerFiles["bin/x"] {
		t.Errorf("layer holds %v, want bin/ and bin/x", layerFiles)
	}
}

func TestWriteRejects(t *testing.T) {
	good := Image{Name: "registry.k8s.io/pause:3.10.2", Arch: "amd64", Path: "/pause", Binary: []byte("x")}
	tests := []struct {
		name string
		edit func(*Image)
		want string
	}{
		{"no name", func(i *Image) { i.Name = "" }, "image has no name"},
		{"no tag", func(i *Image) { i.Name = "localhost:5000/pause" }, `"localhost:5000/pause" has no tag`},
		{"arch", func(i *Image) { i.Arch = "riscv64" }, `architecture "riscv64" is not supported`},
		{"relative path", func(i *Image) { i.Path = "pause" }, `path "pause" in the image must be absolute`},
		{"unclean path", func(i *Image) { i.Path = "/a/../pause" }, "must be absolute and clean"},
		{"empty binary", func(i *Image) { i.Binary = nil }, "empty binary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := good
			tt.edit(&img)
			err := img.Write(io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Write() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestWriteExtra: a helper beside the entrypoint, in the same layer, its
// directories written once; the entrypoint is still the main binary.
func TestWriteExtra(t *testing.T) {
	img := Image{Name: "cairn.local/tool:v1", Arch: "amd64", Path: "/usr/bin/tool", Binary: []byte("tool"),
		Extra: []File{{Path: "/usr/bin/helper", Data: []byte("helper")}, {Path: "/usr/lib/x/y", Data: []byte("y")}}}
	var buf bytes.Buffer
	if err := img.Write(&buf); err != nil {
		t.Fatal(err)
	}
	files := readTar(t, buf.Bytes())
	var docker []dockerManifest
	if err := json.Unmarshal(files["manifest.json"], &docker); err != nil {
		t.Fatal(err)
	}
	var cfg imageConfig
	if err := json.Unmarshal(files[docker[0].Config], &cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Config.Entrypoint, " ") != "/usr/bin/tool" {
		t.Errorf("entrypoint %v, want /usr/bin/tool", cfg.Config.Entrypoint)
	}
	var names []string
	tr := tar.NewReader(bytes.NewReader(files[docker[0].Layers[0]]))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
	want := "usr/ usr/bin/ usr/bin/tool usr/bin/helper usr/lib/ usr/lib/x/ usr/lib/x/y"
	if strings.Join(names, " ") != want {
		t.Errorf("layer holds %v, want %s", names, want)
	}
	layer := readTar(t, files[docker[0].Layers[0]])
	if string(layer["usr/bin/helper"]) != "helper" || string(layer["usr/bin/tool"]) != "tool" {
		t.Errorf("layer's files: tool %q, helper %q", layer["usr/bin/tool"], layer["usr/bin/helper"])
	}
}

func TestWriteRejectsExtra(t *testing.T) {
	for _, tt := range []struct {
		name  string
		extra []File
		want  string
	}{
		{"relative", []File{{"usr/bin/h", []byte("h")}}, `path "usr/bin/h" in the image must be absolute and clean`},
		{"the entrypoint again", []File{{"/usr/bin/tool", []byte("h")}}, "two files at /usr/bin/tool"},
		{"twice", []File{{"/h", []byte("h")}, {"/h", []byte("h")}}, "two files at /h"},
		{"empty", []File{{"/h", nil}}, "an empty file at /h"},
		{"below a file", []File{{"/usr/bin/tool/h", []byte("h")}}, "files at /usr/bin/tool and /usr/bin/tool/h, one below the other"},
		{"above a file", []File{{"/usr/bin", []byte("h")}}, "files at /usr/bin/tool and /usr/bin, one below the other"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img := Image{Name: "cairn.local/tool:v1", Arch: "amd64", Path: "/usr/bin/tool", Binary: []byte("tool"), Extra: tt.extra}
			if err := img.Write(io.Discard); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Write() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
