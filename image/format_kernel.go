package image

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/cairn-os/cairn/config/layout"
)

// kernelFormat writes what a boot with -kernel (QEMU, kexec, a boot loader
// set up by hand) needs: vmlinuz, initramfs.img with the system image inside,
// cmdline, and the board's device trees under their base names.
var kernelFormat = format{name: "kernel", write: writeKernel}

func writeKernel(ctx context.Context, a *artifacts) error {
	if err := a.files.copy("vmlinuz", a.k.VmlinuzPath()); err != nil {
		return fmt.Errorf("vmlinuz: %w", err)
	}
	ird, err := a.liveInitramfs()
	if err != nil {
		return err
	}
	if err := a.files.copy("initramfs.img", ird); err != nil {
		return err
	}
	if err := a.files.write("cmdline", []byte(a.cmdlineFor(layout.SystemLive)+"\n")); err != nil {
		return err
	}
	for _, rel := range a.b.DTBs {
		if err := a.files.copy(filepath.Base(rel), a.k.DTBPath(rel)); err != nil {
			return fmt.Errorf("board %s: device tree %s is not in %s: %w; fix the board's dtbs list", a.b.Name, rel, a.k.Package, unwrapPath(err))
		}
	}
	return nil
}
