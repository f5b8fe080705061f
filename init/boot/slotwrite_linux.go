package boot

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/config/layout"
)

// NewSystem is a new system for a slot: its files, verified, on STATE.
type NewSystem struct {
	System, Kernel, Initrd string
	// SystemSHA256 is the system image's sha256; what lands on the slot
	// is read back and compared with it.
	SystemSHA256 string
	Version      string
	Epoch        int64
	// Cmdline is the kernel command line without cairn.slot=.
	Cmdline string
}

// WriteSlot installs sys into slot, in the order that leaves a bootable
// machine whenever the power goes: the slot's loader entry first removed,
// then the system image written to the slot's partition, synced, read back
// and compared, then the kernel and initramfs on the boot partition, then
// the trial record on STATE (trialPath), and last the slot's new entry,
// counting one try. Until that entry exists the loader boots the running
// slot; after it, the new slot once, kept only when stage 2 blesses it.
func WriteSlot(slot string, sys NewSystem, trial *Trial, trialPath string, printf func(string, ...any)) error {
	if slot != layout.SlotA && slot != layout.SlotB {
		return fmt.Errorf("no slot %q", slot)
	}
	var newest int64
	err := machine.withBoot(false, func(root string) error {
		dir := filepath.Join(root, "loader/entries")
		names, err := entryNames(dir)
		if err != nil {
			return fmt.Errorf("the boot partition has no loader entries (%w); only systemd-boot disks can be upgraded in place", err)
		}
		for _, n := range names {
			if data, err := os.ReadFile(filepath.Join(dir, n)); err == nil {
				newest = max(newest, entryVersion(data))
			}
			if entrySlot(n) == slot {
				if err := os.Remove(filepath.Join(dir, n)); err != nil {
					return fmt.Errorf("removing slot %s's old entry %s: %w", strings.ToUpper(slot), n, err)
				}
			}
		}
		return syncDir(dir)
	})
	if err != nil {
		return err
	}
	st, err := os.Stat(sys.System)
	if err != nil {
		return err
	}
	dev, err := machine.slotTarget(slot, st.Size())
	if err != nil {
		return err
	}
	printf("upgrade: writing slot %s (%s, %s, %s)", strings.ToUpper(slot), layout.SlotLabel(slot), dev, humanBytes(st.Size()))
	if err := writePartition(dev, sys.System, sys.SystemSHA256); err != nil {
		return fmt.Errorf("writing slot %s (%s): %w", strings.ToUpper(slot), dev, err)
	}
	return machine.withBoot(false, func(root string) error {
		dir := filepath.Join(root, layout.ESPDir, slot)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for _, f := range []struct{ src, name string }{{sys.Kernel, "vmlinuz"}, {sys.Initrd, "initrd.img"}} {
			if err := copyFileSync(f.src, filepath.Join(dir, f.name)); err != nil {
				return fmt.Errorf("writing %s to the boot partition: %w", f.name, err)
			}
		}
		if err := syncDir(dir); err != nil {
			return err
		}
		if err := WriteTrial(trialPath, trial); err != nil {
			return fmt.Errorf("writing the trial record: %w", err)
		}
		version := max(sys.Epoch, newest+1)
		entry := layout.LoaderEntry(slot, sys.Version, version, strings.TrimSpace(sys.Cmdline+" "+layout.SlotParam+"="+slot))
		name := fmt.Sprintf("%s%s+1.conf", layout.EntryPrefix, slot)
		edir := filepath.Join(root, "loader/entries")
		if err := writeFileSync(filepath.Join(edir, name), []byte(entry)); err != nil {
			return fmt.Errorf("writing the loader entry %s: %w", name, err)
		}
		printf("upgrade: slot %s holds cairn %s; its loader entry %s tries it once at the next boot", strings.ToUpper(slot), sys.Version, name)
		return syncDir(edir)
	})
}

// entrySlot is the slot a cairn loader entry's name boots, "" for others.
func entrySlot(name string) string {
	rest, ok := strings.CutPrefix(name, layout.EntryPrefix)
	if !ok || len(rest) < 2 || (rest[1] != '.' && rest[1] != '+') {
		return ""
	}
	return rest[:1]
}

// writePartition writes the file src to the block device dev, synced, and
// reads it back past the page cache to compare its sha256 with want.
func writePartition(dev, src, want string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	size, err := out.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if st.Size() > size {
		return fmt.Errorf("the system image (%s) is larger than the slot (%s); this disk cannot take it, reinstall from a new disk image", humanBytes(st.Size()), humanBytes(size))
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	unix.Fadvise(int(out.Fd()), 0, 0, unix.FADV_DONTNEED)
	back, err := os.Open(dev)
	if err != nil {
		return err
	}
	defer back.Close()
	unix.Fadvise(int(back.Fd()), 0, 0, unix.FADV_DONTNEED)
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(back, st.Size())); err != nil {
		return fmt.Errorf("reading it back: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("read back, it has sha256 %s, not %s: the disk does not keep what is written", got, want)
	}
	return nil
}

// copyFileSync copies src to dst through a temporary file, synced.
func copyFileSync(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".new"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// RejectSlot ends the trial of slot: its counting entry gets no tries
// left (cairn-b+0-1.conf), so the next boot starts the other slot.
func RejectSlot(slot string) error {
	return machine.withBoot(false, func(root string) error {
		dir := filepath.Join(root, "loader/entries")
		names, err := entryNames(dir)
		if err != nil {
			return err
		}
		e := trialEntry(names, slot)
		if e == "" {
			return fmt.Errorf("slot %s has no entry on trial", strings.ToUpper(slot))
		}
		m := counted.FindStringSubmatch(e)
		if m[2] == "0" {
			return nil
		}
		spent := fmt.Sprintf("%s%s+0-%s.conf", layout.EntryPrefix, slot, m[2])
		if err := os.Rename(filepath.Join(dir, e), filepath.Join(dir, spent)); err != nil {
			return err
		}
		return syncDir(dir)
	})
}

// DropSlot removes slot's loader entries, so the loader never offers it:
// after a failed trial, the next upgrade writes it afresh.
func DropSlot(slot string) error {
	return machine.withBoot(false, func(root string) error {
		dir := filepath.Join(root, "loader/entries")
		names, err := entryNames(dir)
		if err != nil {
			return err
		}
		var errs []error
		for _, n := range names {
			if entrySlot(n) == slot {
				errs = append(errs, os.Remove(filepath.Join(dir, n)))
			}
		}
		errs = append(errs, syncDir(dir))
		return errors.Join(errs...)
	})
}

// BlessSlot marks slot booted for good (after its trial), as stage 1
// does for an ordinary boot.
func BlessSlot(slot string) error {
	return Bless{Slot: slot}.Run()
}

// Upgradable says why this machine cannot have its other slot written, or
// "" when it can: a disk boot from a slot, with systemd-boot.
func Upgradable(slot string) string {
	if slot != layout.SlotA && slot != layout.SlotB {
		return "it does not boot from an A/B slot of a disk (a live image: ISO, PXE or kernel+initramfs, or a container-platform node run on a root directory instead of a node directory with slots)"
	}
	var why string
	err := machine.withBoot(true, func(root string) error {
		if _, err := entryNames(filepath.Join(root, "loader/entries")); err != nil {
			why = "its boot partition has no systemd-boot entries (a Raspberry Pi SD card: upgrades in place are not supported there yet)"
		}
		return nil
	})
	if err != nil {
		return err.Error()
	}
	return why
}

// OtherSlot is the slot that is not slot.
func OtherSlot(slot string) string {
	if slot == layout.SlotA {
		return layout.SlotB
	}
	return layout.SlotA
}
