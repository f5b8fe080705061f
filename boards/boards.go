// Package boards holds one data file per supported board and loads them.
// A board's quirks are data here; no code branches on a board's name.
package boards

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed *.yaml
var files embed.FS

// Board describes one machine cairn builds images for.
type Board struct {
	Name string `yaml:"name"`
	// Arch is the Go architecture: amd64 or arm64.
	Arch   string `yaml:"arch"`
	Kernel struct {
		// Package is the Debian kernel package (or metapackage) to use.
		Package string `yaml:"package"`
	} `yaml:"kernel"`
	// Console is the serial console device without /dev/.
	Console string `yaml:"console"`
	// Cmdline is the kernel command line the board boots with.
	Cmdline string `yaml:"cmdline"`
	// Modules are the kernel modules the board needs to find its disks and
	// network; the builder adds their dependencies.
	Modules []string `yaml:"modules"`
	// DTBs are device trees to ship, relative to the kernel's dtbs directory.
	DTBs []string `yaml:"dtbs,omitempty"`
	// Formats are the output formats cairn build writes when given none
	// (image.Formats lists them); empty means kernel.
	Formats []string `yaml:"formats,omitempty"`
	// Bootloader is the UEFI boot loader of the board's disk images.
	Bootloader *Bootloader `yaml:"bootloader,omitempty"`
	// Firmware is the boot firmware a board without UEFI (the Raspberry
	// Pi) loads from its boot partition.
	Firmware *Firmware `yaml:"firmware,omitempty"`
	// QEMU is set for boards QEMU can emulate.
	QEMU *QEMU `yaml:"qemu,omitempty"`
}

// Bootloader is a UEFI boot loader taken from a Debian package.
type Bootloader struct {
	// Package is the Debian package (systemd-boot-efi), found beside the
	// kernel package for the board's arch.
	Package string `yaml:"package"`
	// File is the loader's path inside the package.
	File string `yaml:"file"`
}

// Firmware is boot firmware taken from a Debian package and copied to the
// root of the boot partition, with the board's lines of the firmware's
// config file.
type Firmware struct {
	// Package is the Debian package (raspi-firmware), found beside the
	// kernel package; Dir is the files' directory inside it.
	Package string `yaml:"package"`
	Dir     string `yaml:"dir"`
	// Files are the firmware's files the board needs, relative to Dir.
	Files []string `yaml:"files"`
	// Config are the board's lines of config.txt; the builder adds the
	// slot's (os_prefix, kernel, initramfs, cmdline).
	Config string `yaml:"config"`
}

// QEMU is how to start the board under QEMU.
type QEMU struct {
	Binary  string `yaml:"binary"`
	Machine string `yaml:"machine"`
	CPU     string `yaml:"cpu"`
	Memory  int    `yaml:"memory"` // MiB
	// Firmware is the UEFI image for disk and ISO boots; empty means BIOS.
	Firmware string `yaml:"firmware,omitempty"`
	// Cmdline is added to the kernel command line of a direct kernel boot
	// under QEMU: what the emulated machine needs and real hardware must
	// not get (a disk's bootloader keeps the board's own line).
	Cmdline string `yaml:"cmdline,omitempty"`
}

// Names lists every board.
func Names() []string {
	ents, _ := fs.ReadDir(files, ".")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// Load returns the named board.
func Load(name string) (*Board, error) {
	data, err := files.ReadFile(name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("board %q does not exist (known boards: %s)", name, strings.Join(Names(), ", "))
	}
	b, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("boards/%s.yaml: %w", name, err)
	}
	if b.Name != name {
		return nil, fmt.Errorf("boards/%s.yaml: name is %q, want %q", name, b.Name, name)
	}
	return b, nil
}

// Parse reads a board file strictly: unknown keys are errors, and name and
// arch must be set. The builder and the init (which reads the copy in the
// image) both parse board files with it.
func Parse(data []byte) (*Board, error) {
	var b Board
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&b); err != nil {
		return nil, err
	}
	if b.Name == "" {
		return nil, errors.New("name is missing")
	}
	if b.Arch != "amd64" && b.Arch != "arm64" {
		return nil, fmt.Errorf("arch %q is not amd64 or arm64", b.Arch)
	}
	if f := b.Firmware; f != nil && (f.Package == "" || len(f.Files) == 0) {
		return nil, errors.New("firmware: needs package and files")
	}
	return &b, nil
}

// Raw returns the named board's data file as written, for images that carry
// it (/etc/cairn/board.yaml).
func Raw(name string) ([]byte, error) {
	if _, err := Load(name); err != nil {
		return nil, err
	}
	return files.ReadFile(name + ".yaml")
}
