package image

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/cairn-os/cairn/config/layout"
	"github.com/cairn-os/cairn/config/upgrade"
)

// updateFormat writes update/, the bundle `cairn upgrade` installs on a
// running node's other slot (config/upgrade): the system image (the bytes
// of disk.img's slot A), the kernel and the stage-1 initramfs as the ESP
// holds them, and update.json naming them with their sha256 and size, the
// board, the version, the build's epoch (the loader entry's version) and
// the disk boot's kernel command line without the slot, which the node
// adds. For boards that boot A/B slots of a disk: through a UEFI loader
// (disk.img) or their own firmware (a Raspberry Pi's sdcard.img, whose
// node copies the slot's device trees from the running slot's directory:
// the bundle carries none).
var updateFormat = format{name: "update", supports: needsDiskBoot, write: writeUpdate}

func writeUpdate(ctx context.Context, a *artifacts) error {
	ird, err := a.stage1Initramfs()
	if err != nil {
		return err
	}
	b := upgrade.Bundle{
		Board: a.b.Name, Arch: a.b.Arch, Version: a.initIn.Version, Epoch: a.epoch,
		Cmdline: a.cmdlineFor(layout.SystemDisk),
	}
	src := map[string]string{upgrade.SystemFile: a.system, upgrade.KernelFile: a.k.VmlinuzPath(), upgrade.InitrdFile: ird}
	for _, name := range upgrade.BundleFiles {
		out := upgrade.BundleDir + "/" + name
		if err := a.files.copy(out, src[name]); err != nil {
			return fmt.Errorf("%s: %w", out, err)
		}
		size, sum := a.files.sum(out)
		b.Files = append(b.Files, upgrade.File{Name: name, SHA256: sum, Size: size})
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if err := b.Check(); err != nil {
		return fmt.Errorf("%s: %w; give the build a version such as v1.2.0 (--version)", upgrade.BundleFile, err)
	}
	js, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	return a.files.write(upgrade.BundleDir+"/"+upgrade.BundleFile, append(js, '\n'))
}

// sum is the size and sha256 of the artifact name, written with create
// (copy, write) and closed.
func (o *outFiles) sum(name string) (int64, string) {
	hf := o.written[name]
	return hf.n, hex.EncodeToString(hf.h.Sum(nil))
}
