package image

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// qcow2Format writes disk.qcow2, the disk image for QEMU, libvirt and
// Proxmox: qemu-img's conversion of disk.img, compressed (zlib clusters),
// its holes left out.
var qcow2Format = format{name: "qcow2", bootloader: true, supports: needsBootloader, write: writeQcow2}

func writeQcow2(ctx context.Context, a *artifacts) error {
	tool, err := exec.LookPath("qemu-img")
	if err != nil {
		return errors.New("qemu-img not found; install qemu-utils (make deps)")
	}
	raw, err := a.rawDisk(ctx)
	if err != nil {
		return err
	}
	out, err := a.files.reserve("disk.qcow2")
	if err != nil {
		return err
	}
	a.prog.start("converting the disk image to qcow2")
	cmd := exec.CommandContext(ctx, tool, "convert", "-q", "-f", "raw", "-O", "qcow2", "-c", raw, out)
	b, err := cmd.CombinedOutput()
	a.prog.done()
	if err != nil {
		return fmt.Errorf("qemu-img convert: %v: %s", err, strings.TrimSpace(string(b)))
	}
	return nil
}
