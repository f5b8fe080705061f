package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"

	"github.com/cairn-os/cairn/config/layout"
)

// isoFormat writes cairn.iso, a live image for UEFI machines: an EFI
// system image (FAT) with systemd-boot, the kernel and the initramfs with
// the system image inside (cairn.system=live: it runs from RAM), which is
// both the ISO's El Torito EFI boot image (from a CD) and, as GPT partition
// 2 over the same blocks, what firmware boots when the ISO is written to a
// USB stick. xorriso
// writes the ISO: go-diskfs's ISO writer stamps the current time.
var isoFormat = format{name: "iso", bootloader: true, supports: needsBootloader, write: writeISO}

// isoLabel is the ISO's volume label.
const isoLabel = "CAIRN"

// isoEFIImage is the EFI system image's path in the ISO.
const isoEFIImage = "boot/efiboot.img"

func writeISO(ctx context.Context, a *artifacts) error {
	tool, err := exec.LookPath("xorriso")
	if err != nil {
		return errors.New("xorriso not found; install xorriso (make deps)")
	}
	ird, err := a.liveInitramfs()
	if err != nil {
		return err
	}
	tree := filepath.Join(a.work, "iso")
	if err := os.MkdirAll(filepath.Join(tree, "boot"), 0o755); err != nil {
		return err
	}
	efiImg := filepath.Join(tree, isoEFIImage)
	if err := makeEFIBoot(a, ird, efiImg); err != nil {
		return fmt.Errorf("EFI boot image: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tree, "cmdline"), []byte(a.cmdlineFor(layout.SystemLive)+"\n"), 0o644); err != nil {
		return err
	}
	// xorriso keeps the files' own times.
	at := time.Unix(a.epoch, 0)
	for _, p := range []string{filepath.Join(tree, "cmdline"), efiImg, filepath.Join(tree, "boot"), tree} {
		if err := os.Chtimes(p, at, at); err != nil {
			return err
		}
	}
	out, err := a.files.reserve("cairn.iso")
	if err != nil {
		return err
	}
	os.Remove(out) // xorriso refuses to write over a file that is not an ISO
	// The EFI image is a file of the ISO 9660 volume and GPT partition 2
	// names the same blocks (-efi-boot-part --efi-boot-image). Inside the
	// volume it is whole for firmware reading a CD: an El Torito load size
	// tops out at 32 MiB, so it is 0, and firmware (OVMF, AAVMF) takes the
	// image to reach the volume's end.
	cmd := exec.CommandContext(ctx, tool, "-as", "mkisofs", "-quiet", "-o", out, "-V", isoLabel, "-R", "-J",
		"-e", isoEFIImage, "-no-emul-boot", "-efi-boot-part", "--efi-boot-image", "-appended_part_as_gpt",
		tree)
	// xorriso takes every time stamp and its UUIDs from here.
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(max(a.epoch, 1), 10))
	a.prog.start("writing the ISO")
	b, err := cmd.CombinedOutput()
	a.prog.done()
	if err != nil {
		return fmt.Errorf("xorriso: %v: %s", err, strings.TrimSpace(string(b)))
	}
	return nil
}

// makeEFIBoot writes the ISO's EFI system image: systemd-boot and one
// loader entry booting the live kernel and initramfs.
func makeEFIBoot(a *artifacts, ird, path string) error {
	var payload int64
	for _, p := range []string{a.k.VmlinuzPath(), ird} {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		payload += st.Size()
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(fatSize(payload)); err != nil {
		return err
	}
	d, err := diskfs.OpenBackend(file.New(f, false), diskfs.WithSectorSize(sector))
	if err != nil {
		return err
	}
	dir := layout.ESPDir + "/live"
	entry := fmt.Sprintf("title cairn %s (live)\nlinux %s/vmlinuz\ninitrd %s/initrd.img\noptions %s\n",
		a.initIn.Version, dir, dir, a.cmdlineFor(layout.SystemLive))
	err = makeFAT(d, 0, isoLabel, a.epoch, []fatFile{
		{path: "/EFI/BOOT/" + efiBootName[a.b.Arch], data: a.bootloader},
		{path: "/loader/loader.conf", data: []byte(loaderConf)},
		{path: "/loader/entries/" + layout.EntryPrefix + "live.conf", data: []byte(entry)},
		{path: dir + "/vmlinuz", src: a.k.VmlinuzPath()},
		{path: dir + "/initrd.img", src: ird},
	})
	if err != nil {
		return err
	}
	return f.Close()
}
