package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/image/kmod"
)

// Manifest is manifest.json: every artifact and every input.
type Manifest struct {
	Board           string `json:"board"`
	Arch            string `json:"arch"`
	SourceDateEpoch int64  `json:"source_date_epoch"`
	// Formats are the output formats built, in the order written.
	Formats    []string         `json:"formats"`
	Artifacts  []Artifact       `json:"artifacts"`
	Kernel     KernelInput      `json:"kernel"`
	Init       InitInput        `json:"init"`
	Components *ComponentsInput `json:"components,omitempty"`
	Config     *FileInput       `json:"config,omitempty"`
	// K3s is the k3s binary bundled for distribution k3s.
	K3s *FileInput `json:"k3s,omitempty"`
	// Bootloader is the package the disk formats' boot loader came from.
	Bootloader *FileInput `json:"bootloader,omitempty"`
	// Firmware is the package the board's boot firmware came from
	// (raspi-firmware).
	Firmware    *FileInput `json:"firmware,omitempty"`
	Compression string     `json:"compression"`
	// SquashfsCompression is the system image's compressor; the level
	// applies to zstd.
	SquashfsCompression string            `json:"squashfs_compression"`
	SquashfsLevel       int               `json:"squashfs_zstd_level"`
	Modules             map[string]Listed `json:"modules"`
	SystemImage         Artifact          `json:"system_image"`
}

// Artifact is one output file.
type Artifact struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// KernelInput is the kernel package a build used.
type KernelInput struct {
	Package string `json:"package"`
	Version string `json:"version"`
	Release string `json:"release"`
	File    string `json:"file"`
	SHA256  string `json:"sha256"`
}

// InitInput is the init binary a build used and where it came from.
type InitInput struct {
	Source  string `json:"source"`
	Version string `json:"version,omitempty"`
	SHA256  string `json:"sha256"`
}

// ComponentsInput is the components tree a build used.
type ComponentsInput struct {
	Files int `json:"files"`
	// ComponentsJSON is the sha256 of usr/share/cairn/components.json.
	ComponentsJSON string `json:"components_json_sha256,omitempty"`
	Digest         string `json:"digest"`
}

// FileInput is an input file by name and digest.
type FileInput struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// Listed is a list of module names carried by one image.
type Listed []string

func names(mods []*kmod.Module) Listed {
	out := make(Listed, len(mods))
	for i, m := range mods {
		out[i] = m.Name
	}
	sort.Strings(out)
	return out
}

// newManifest describes a plan's inputs; the artifacts are added as the
// formats write them.
func newManifest(p *plan) *Manifest {
	m := &Manifest{
		Board: p.b.Name, Arch: p.b.Arch, SourceDateEpoch: p.epoch,
		Compression: p.comp, SquashfsCompression: p.sqComp, SquashfsLevel: p.level,
		Kernel: KernelInput{Package: p.k.Package, Version: p.k.Version, Release: p.k.Release,
			File: filepath.Base(p.debPath), SHA256: p.k.SHA256},
		Init:       *p.initIn,
		Components: p.compIn,
		Modules:    map[string]Listed{"initramfs": names(p.stage1), "system": names(p.system)},
	}
	if p.cfgData != nil {
		sum := sha256.Sum256(p.cfgData)
		m.Config = &FileInput{Name: p.cfgName, SHA256: hex.EncodeToString(sum[:])}
	}
	return m
}

// ManifestFile is the manifest's name in a build's output directory.
const ManifestFile = "manifest.json"

// maxManifest bounds a manifest.json as read: a build's lists a few
// thousand module names at most.
const maxManifest = 1 << 20

// ReadManifest reads the manifest.json of the build output directory dir.
func ReadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	data, err := files.Read(path, maxManifest)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}

// write adds manifest.json to out.
func (m *Manifest) write(out *outFiles) error {
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return out.write(ManifestFile, append(js, '\n'))
}
