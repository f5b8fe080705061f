// Package image builds cairn's boot artifacts from a board, a Debian kernel
// package, the init, the node components and an optional cloud-config: an
// initramfs carrying the init and the stage-1 modules, a system image
// (squashfs), and from them every output format (Formats): kernel and
// initramfs for -kernel boots, disk images, ISO, PXE; and a manifest.
//
// Build is the entry point:
//
//	res, err := image.Build(ctx, image.Options{
//		Board:  "qemu-x86_64",
//		Kernel: "out/debs",          // a linux-image .deb or a directory of them
//		Out:    "out/qemu-x86_64",
//	})
//	// res.Vmlinuz, res.Initramfs, res.Cmdline
//
// The files: options.go (inputs checked), inputs.go (what is read and
// built first), plan.go (what to build, decided without side effects),
// squashfs.go and initramfs.go (the two images), format_*.go (one output
// format each), outputs.go, manifest.go, cache.go and progress.go.
package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/cairn-os/cairn/config/layout"
)

// Build builds the artifacts described by o into o.Out. On error nothing is
// left under an artifact's final name that this build did not finish.
func Build(ctx context.Context, o Options) (*Result, error) {
	s, err := o.check()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("cache directory %s: %w; set XDG_CACHE_HOME to a writable directory", s.cacheDir, unwrapPath(err))
	}
	out, err := prepareOut(o.Out)
	if err != nil {
		return nil, err
	}
	prog := newProgress(o.Progress)
	in, err := gather(ctx, o, s, prog)
	if err != nil {
		return nil, err
	}
	p, err := makePlan(s, in, o.Compression, o.Modules)
	if err != nil {
		return nil, err
	}

	work, err := os.MkdirTemp(s.cacheDir, ".build-")
	if err != nil {
		return nil, fmt.Errorf("cache directory %s: %w", s.cacheDir, err)
	}
	defer os.RemoveAll(work)
	sqfs := filepath.Join(work, "system.sqfs")
	if err := makeSquashfs(ctx, p.sys, sqfs, p.epoch, p.sqComp, p.level, s.cacheDir, prog); err != nil {
		return nil, err
	}

	files := newOutFiles(out)
	defer files.abort()
	a := &artifacts{plan: p, system: sqfs, work: work, cacheDir: s.cacheDir, files: files, prog: prog, bootloader: in.bootloader, firmware: in.firmware}
	m := newManifest(p)
	m.Bootloader = in.bootloaderIn
	m.Firmware = in.firmwareIn
	m.K3s = in.k3sIn
	for _, f := range s.formats {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := f.write(ctx, a); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		m.Formats = append(m.Formats, f.name)
	}
	if m.SystemImage, err = describe("system.sqfs", sqfs); err != nil {
		return nil, err
	}
	if m.Artifacts, err = files.artifacts(); err != nil {
		return nil, err
	}
	if err := m.write(files); err != nil {
		return nil, err
	}
	if err := files.commit(); err != nil {
		return nil, err
	}
	res := &Result{Dir: out, Manifest: filepath.Join(out, ManifestFile), CmdlineText: p.cmdlineFor(layout.SystemLive), Info: m}
	if slices.Contains(m.Formats, kernelFormat.name) {
		res.Vmlinuz, res.Initramfs, res.Cmdline = filepath.Join(out, "vmlinuz"), filepath.Join(out, "initramfs.img"), filepath.Join(out, "cmdline")
	}
	return res, nil
}
