package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/cairn-os/cairn/config/layout"
	"github.com/cairn-os/cairn/config/upgrade"
)

// A node that can be upgraded runs from a node directory, its stand-in for
// a disk (config/layout's Container* names): two slot files, loader
// entries the init's launcher honours as systemd-boot does, STATE, its
// config and image archives. The init writes the other slot and restarts
// into it as on a disk (init/boot's media).

// SystemImage writes the system image (squashfs) of the build output
// directory img to dst: the update bundle's system.sqfs when the build
// wrote one, else the one inside its live initramfs.
func SystemImage(img, dst string) error {
	src, off, size := filepath.Join(img, upgrade.BundleDir, upgrade.SystemFile), int64(0), int64(-1)
	if _, err := os.Stat(src); err != nil {
		src = filepath.Join(img, "initramfs.img")
		if off, size, err = SystemImageOffset(src); err != nil {
			return fmt.Errorf("%s has neither %s/%s nor a live initramfs with a system image: %w", img, upgrade.BundleDir, upgrade.SystemFile, err)
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	var r io.Reader = in
	if size >= 0 {
		r = io.NewSectionReader(in, off, size)
	}
	return writeNew(dst, 0o644, r)
}

// writeNew writes r to a new file dst (replacing none), synced.
func writeNew(dst string, mode os.FileMode, r io.Reader) error {
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, r)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}

// ExtractInit writes the init (/sbin/init) of the system image system to
// dst, for Node.Init: the launcher and first stage of its nodes.
func ExtractInit(ctx context.Context, system, dst string) error {
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "unsquashfs", "-q", "-cat", system, "sbin/init")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("unsquashfs -cat %s sbin/init (Debian's squashfs-tools 4.5 or newer): %w: %s", system, err, bytes.TrimSpace(stderr.Bytes()))
	}
	if out.Len() < 4 || !bytes.HasPrefix(out.Bytes(), []byte("\x7fELF")) {
		return fmt.Errorf("%s's sbin/init is not a program", system)
	}
	return writeNew(dst, 0o755, &out)
}

// NewDisk makes dir (which must not exist) a node directory: slot A
// holding the system image system (a hard link when it can, else a copy:
// no slot file is ever written in place), a loader entry booting it, an
// empty STATE, the node's config (0600) and the image archives it imports
// at boot besides the system image's own (hard links, else copies).
func NewDisk(dir, system string, config []byte, archives []string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	link := func(src, dst string, mode os.FileMode) error {
		if err := os.Link(src, dst); err == nil {
			return nil
		}
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		return writeNew(dst, mode, in)
	}
	if err := link(system, filepath.Join(dir, layout.ContainerSlot(layout.SlotA)), 0o644); err != nil {
		return fmt.Errorf("slot A: %w", err)
	}
	entries := filepath.Join(dir, layout.ContainerESP, "loader/entries")
	for _, d := range []string{entries, filepath.Join(dir, layout.ContainerState)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// The image builder's entry, trusted already: version 1, so that an
	// upgrade's entry (a build's time, or one above) comes first.
	slot := layout.SlotA
	entry := layout.LoaderEntry(slot, "", 1, layout.SystemParam+"="+layout.SystemDisk+" "+layout.SlotParam+"="+slot)
	if err := os.WriteFile(filepath.Join(entries, layout.EntryPrefix+slot+".conf"), []byte(entry), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, layout.ContainerConfig), config, 0o600); err != nil {
		return err
	}
	if len(archives) > 0 {
		images := filepath.Join(dir, layout.ContainerImages)
		if err := os.Mkdir(images, 0o755); err != nil {
			return err
		}
		for _, a := range archives {
			dst := filepath.Join(images, filepath.Base(a))
			if err := link(a, dst, 0o644); err != nil {
				if errors.Is(err, os.ErrExist) {
					return fmt.Errorf("two image archives named %s", filepath.Base(a))
				}
				return fmt.Errorf("image archive %s: %w", a, err)
			}
		}
	}
	return nil
}
