package boot

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
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
// machine whenever the power goes: the loader first made never to boot
// the slot (its systemd-boot entry removed; tryboot.txt pointed back at
// config.txt's slot on a Raspberry Pi), then the system image written to
// the slot's partition, synced, read back and compared, then the kernel
// and initramfs (and on a Pi the command line and device trees) on the
// boot partition, then the trial record on STATE (trialPath), and last
// what makes the loader try the slot once: its entry counting one try, or
// tryboot.txt naming it. Until that last write the loader boots the
// running slot; after it, the new slot once, kept only when stage 2
// blesses it. A Pi tries it only at a restart with RestartArg's argument.
func WriteSlot(slot string, sys NewSystem, trial *Trial, trialPath string, printf func(string, ...any)) error {
	if slot != layout.SlotA && slot != layout.SlotB {
		return fmt.Errorf("no slot %q", slot)
	}
	restartArg.Store("")
	err := withLoader(func(root string, l loader) error {
		return l.drop(root, slot)
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
	return withLoader(func(root string, l loader) error {
		if err := l.install(root, slot, sys); err != nil {
			return err
		}
		if err := WriteTrial(trialPath, trial); err != nil {
			return fmt.Errorf("writing the trial record: %w", err)
		}
		said, restart, err := l.arm(root, slot, sys)
		if err != nil {
			return err
		}
		restartArg.Store(restart)
		printf("upgrade: slot %s holds cairn %s; %s", strings.ToUpper(slot), sys.Version, said)
		return nil
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

// RejectSlot ends the trial of slot, so the next boot starts the other
// slot: its counting entry gets no tries left (cairn-b+0-1.conf), or
// tryboot.txt names config.txt's slot again.
func RejectSlot(slot string) error {
	restartArg.Store("")
	return withLoader(func(root string, l loader) error {
		return l.reject(root, slot)
	})
}

// DropSlot makes the loader never offer slot (its entries removed, or
// tryboot.txt naming config.txt's slot): after a failed trial or write,
// the next upgrade writes it afresh.
func DropSlot(slot string) error {
	restartArg.Store("")
	return withLoader(func(root string, l loader) error {
		return l.drop(root, slot)
	})
}

// BlessSlot marks slot booted for good (after its trial), as stage 1
// does for an ordinary boot.
func BlessSlot(slot string) error {
	return Bless{Slot: slot}.Run()
}

// Upgradable says why this machine cannot have its other slot written, or
// "" when it can: a disk boot from a slot, with systemd-boot or the
// Raspberry Pi firmware's tryboot choosing the slot.
func Upgradable(slot string) string {
	if slot != layout.SlotA && slot != layout.SlotB {
		return "it does not boot from an A/B slot of a disk (a live image: ISO, PXE or kernel+initramfs, or a container-platform node run on a root directory instead of a node directory with slots)"
	}
	err := machine.withBoot(true, func(root string) error {
		_, err := loaderOf(root)
		return err
	})
	if err != nil {
		return "its boot partition: " + err.Error()
	}
	return ""
}

// OtherSlot is the slot that is not slot.
func OtherSlot(slot string) string {
	if slot == layout.SlotA {
		return layout.SlotB
	}
	return layout.SlotA
}
