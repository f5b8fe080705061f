package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-os/cairn/boards"
)

// format is one output format: it takes the built artifacts and writes its
// files into the output directory. Each lives in its own file.
type format struct {
	name string
	// supports reports why the board cannot have this format, or nil.
	supports func(b *boards.Board) error
	// bootloader is set when the format needs the board's boot loader.
	bootloader bool
	// firmware is set when the format needs the board's firmware files.
	firmware bool
	write    func(ctx context.Context, a *artifacts) error
}

// formats in the order a build writes them: later ones may reuse what
// earlier ones made (qcow2 converts disk.img).
var formats = []format{kernelFormat, diskFormat, sdcardFormat, qcow2Format, zstFormat, xzFormat, isoFormat, pxeFormat, updateFormat}

// Formats lists the output format names.
func Formats() []string {
	var out []string
	for _, f := range formats {
		out = append(out, f.name)
	}
	return out
}

// lookupFormats returns the named formats in build order, or an error
// naming one that does not exist or that the board cannot have.
func lookupFormats(names []string, b *boards.Board) ([]format, error) {
	if len(names) == 0 {
		names = []string{kernelFormat.name}
	}
	var out []format
	for _, f := range formats {
		if !slices.Contains(names, f.name) {
			continue
		}
		if f.supports != nil {
			if err := f.supports(b); err != nil {
				return nil, fmt.Errorf("format %s: board %s %w", f.name, b.Name, err)
			}
		}
		out = append(out, f)
	}
	for _, n := range names {
		if !slices.ContainsFunc(formats, func(f format) bool { return f.name == n }) {
			return nil, fmt.Errorf("format %q does not exist; use one of %s", n, strings.Join(Formats(), ", "))
		}
	}
	return out, nil
}

// artifacts are what the formats are made of: the plan, the system image
// and the initramfs variants, made once in a work directory when a format
// first asks.
type artifacts struct {
	*plan
	// system is the system image (squashfs).
	system   string
	work     string
	cacheDir string
	files    *outFiles
	prog     *progress
	// bootloader is the board's UEFI boot loader, when a format needs it.
	bootloader []byte
	// firmware are the board's firmware files, when a format needs them.
	firmware []fatFile
	live     string
	// disk is the raw disk image once made (rawDisk).
	disk     string
	bmapDone bool
}

// liveInitramfs is the initramfs with the system image inside it
// (cairn.system=live): stage 1, then the system image as its own cpio.
func (a *artifacts) liveInitramfs() (string, error) {
	if a.live != "" {
		return a.live, nil
	}
	path := filepath.Join(a.work, "initramfs-live.img")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	a.prog.start("writing the initramfs (" + a.comp + ")")
	err = writeInitramfs(f, a.ird, a.system, a.comp, a.epoch, a.cacheDir)
	a.prog.done()
	if err != nil {
		return "", fmt.Errorf("initramfs: %w", err)
	}
	a.live = path
	return path, nil
}

// stage1Initramfs is the initramfs without a system image, for boots that
// find theirs on a disk (cairn.system=disk).
func (a *artifacts) stage1Initramfs() (string, error) {
	path, err := compressedCPIO(a.ird, a.comp, a.epoch, a.cacheDir)
	if err != nil {
		return "", fmt.Errorf("initramfs: %w", err)
	}
	return path, nil
}
