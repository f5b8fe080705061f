package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/layout"
)

// loader is how a boot partition chooses the slot to boot, as WriteSlot,
// RejectSlot and DropSlot change it: the only part of writing a slot that
// differs between systemd-boot (UEFI disks, and the container platform's
// stand-in for it) and the Raspberry Pi firmware. loaderOf picks one by
// what the partition holds; the order of the writes is WriteSlot's alone.
type loader interface {
	// drop makes the loader never boot slot: before the slot is
	// written, and after its trial failed.
	drop(root, slot string) error
	// install puts the slot's boot files on the partition (its kernel,
	// initramfs and whatever else the loader reads from it), synced.
	install(root, slot string, sys NewSystem) error
	// arm makes the next boot try slot once, kept only when blessed: the
	// last write, the commit point. It returns the console line saying so
	// and the argument the restart needs (reboot(2)'s, "" for none).
	arm(root, slot string, sys NewSystem) (said, restart string, err error)
	// reject ends slot's trial: the next boot is the trusted slot's.
	reject(root, slot string) error
}

// loaderOf returns the loader of the boot partition mounted at root.
func loaderOf(root string) (loader, error) {
	if _, err := entryNames(filepath.Join(root, "loader/entries")); err == nil {
		return systemdBoot{}, nil
	}
	cfg, err := files.Read(filepath.Join(root, layout.PiConfig), maxPiConfig)
	switch {
	case err == nil && piSlot(cfg) != "":
		return piFirmware{}, nil
	case err == nil:
		return nil, fmt.Errorf("its %s names no slot (no os_prefix= line): write os_prefix=%s/ into it, naming the slot the machine boots", layout.PiConfig, layout.SlotA)
	}
	return nil, fmt.Errorf("it has neither loader/entries (systemd-boot) nor %s (the Raspberry Pi firmware); is it a cairn disk?", layout.PiConfig)
}

// withLoader runs fn on the boot partition (read-write) and its loader.
func withLoader(fn func(root string, l loader) error) error {
	return machine.withBoot(false, func(root string) error {
		l, err := loaderOf(root)
		if err != nil {
			return fmt.Errorf("the boot partition: %w", err)
		}
		return fn(root, l)
	})
}

// maxPiConfig bounds config.txt and tryboot.txt as read.
const maxPiConfig = 64 << 10

// restartArg is reboot(2)'s argument for this machine's next restart, set
// once a loader armed a slot that needs one ("" otherwise).
var restartArg atomic.Value

// RestartArg is the argument the next restart gives reboot(2)
// (LINUX_REBOOT_CMD_RESTART2), or "" for a plain restart: "0 tryboot"
// once WriteSlot armed a Raspberry Pi's trial boot in this run of the
// init, until RejectSlot or DropSlot undo it. A plain restart then boots
// config.txt's slot: the old one, as after any failed trial.
func RestartArg() string {
	s, _ := restartArg.Load().(string)
	return s
}

// systemdBoot chooses by loader entries (loader/entries, see slots.go).
type systemdBoot struct{}

func (systemdBoot) drop(root, slot string) error {
	dir := filepath.Join(root, "loader/entries")
	names, err := entryNames(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if entrySlot(n) == slot {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				errs = append(errs, fmt.Errorf("removing slot %s's entry %s: %w", strings.ToUpper(slot), n, err))
			}
		}
	}
	errs = append(errs, syncDir(dir))
	return errors.Join(errs...)
}

func (systemdBoot) install(root, slot string, sys NewSystem) error {
	dir := filepath.Join(root, layout.ESPDir, slot)
	return installFiles(dir, []copyTo{{sys.Kernel, "vmlinuz"}, {sys.Initrd, "initrd.img"}})
}

// arm writes the slot's entry counting one try, with a version above
// every other entry's, so systemd-boot tries it first.
func (systemdBoot) arm(root, slot string, sys NewSystem) (string, string, error) {
	dir := filepath.Join(root, "loader/entries")
	names, err := entryNames(dir)
	if err != nil {
		return "", "", err
	}
	var newest int64
	for _, n := range names {
		if data, err := files.Read(filepath.Join(dir, n), maxEntrySize); err == nil {
			newest = max(newest, entryVersion(data))
		}
	}
	entry := layout.LoaderEntry(slot, sys.Version, max(sys.Epoch, newest+1), slotCmdline(sys, slot))
	name := fmt.Sprintf("%s%s+1.conf", layout.EntryPrefix, slot)
	if err := writeFileSync(filepath.Join(dir, name), []byte(entry)); err != nil {
		return "", "", fmt.Errorf("writing the loader entry %s: %w", name, err)
	}
	if err := syncDir(dir); err != nil {
		return "", "", err
	}
	return fmt.Sprintf("its loader entry %s tries it once at the next boot", name), "", nil
}

func (systemdBoot) reject(root, slot string) error {
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
}

// piFirmware is the Raspberry Pi firmware's tryboot (see slots.go):
// config.txt names the trusted slot, tryboot.txt the slot the one boot
// after `reboot "0 tryboot"` tries; each slot's files are in its own
// directory (a/, b/).
type piFirmware struct{}

// piTryboot is reboot(2)'s argument that has the firmware read
// tryboot.txt at the next boot: the partition to boot (0, the one it
// booted from), then the flag. The kernel passes it to the firmware when
// its Raspberry Pi firmware driver has the tryboot reboot flag (Raspberry
// Pi's own kernels do; see docs/upgrades.md).
const piTryboot = "0 tryboot"

// piFiles reads config.txt and tryboot.txt (nil when it is missing) at
// root and returns the slot config.txt boots.
func piFiles(root string) (cfg, try []byte, trusted string, err error) {
	cfg, err = files.Read(filepath.Join(root, layout.PiConfig), maxPiConfig)
	if err != nil {
		return nil, nil, "", err
	}
	if trusted = piSlot(cfg); trusted == "" {
		return nil, nil, "", fmt.Errorf("%s names no slot (no os_prefix= line)", layout.PiConfig)
	}
	try, _ = files.Read(filepath.Join(root, layout.PiTryboot), maxPiConfig)
	return cfg, try, trusted, nil
}

// drop points tryboot.txt back at config.txt's slot when it names slot.
// It refuses config.txt's own slot: the one to fall back to.
func (piFirmware) drop(root, slot string) error {
	_, try, trusted, err := piFiles(root)
	if err != nil {
		return err
	}
	if trusted == slot {
		return fmt.Errorf("%s boots slot %s: it is the slot to fall back to, never to be written or dropped", layout.PiConfig, strings.ToUpper(slot))
	}
	if piSlot(try) != slot {
		return nil
	}
	if err := writeFileSync(filepath.Join(root, layout.PiTryboot), setPiSlot(try, trusted)); err != nil {
		return err
	}
	return syncDir(root)
}

// install fills the slot's directory: the kernel, the initramfs, the
// command line and the device trees, which an update bundle does not
// carry: they are copied from config.txt's slot, which boots with them.
func (piFirmware) install(root, slot string, sys NewSystem) error {
	_, _, trusted, err := piFiles(root)
	if err != nil {
		return err
	}
	dtbs, err := filepath.Glob(filepath.Join(root, trusted, "*.dtb"))
	if err != nil || len(dtbs) == 0 {
		return fmt.Errorf("slot %s's directory %s/ has no device tree (*.dtb) for slot %s; the firmware would start its kernel without one", strings.ToUpper(trusted), trusted, strings.ToUpper(slot))
	}
	dir := filepath.Join(root, slot)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(dir, "cmdline.txt"), []byte(slotCmdline(sys, slot)+"\n")); err != nil {
		return fmt.Errorf("writing %s/cmdline.txt: %w", slot, err)
	}
	list := []copyTo{{sys.Kernel, "vmlinuz"}, {sys.Initrd, "initrd.img"}}
	for _, d := range dtbs {
		list = append(list, copyTo{d, filepath.Base(d)})
	}
	return installFiles(dir, list)
}

// arm points tryboot.txt at the slot (a copy of config.txt when there is
// none): the firmware reads it only at the boot after the restart
// RestartArg asks for; every other boot is config.txt's.
func (piFirmware) arm(root, slot string, _ NewSystem) (string, string, error) {
	cfg, try, trusted, err := piFiles(root)
	if err != nil {
		return "", "", err
	}
	if piSlot(try) == "" {
		try = cfg
	}
	if err := writeFileSync(filepath.Join(root, layout.PiTryboot), setPiSlot(try, slot)); err != nil {
		return "", "", fmt.Errorf("writing %s: %w", layout.PiTryboot, err)
	}
	if err := syncDir(root); err != nil {
		return "", "", err
	}
	return fmt.Sprintf("%s names it (os_prefix=%s/): the firmware tries it once after a restart with reboot %q; %s still boots slot %s",
		layout.PiTryboot, slot, piTryboot, layout.PiConfig, strings.ToUpper(trusted)), piTryboot, nil
}

// reject points tryboot.txt back at config.txt's slot. The firmware
// boots config.txt at any restart but the one after `reboot "0 tryboot"`;
// a tryboot.txt that names the rejected slot no more keeps even that one
// from trying it again.
func (p piFirmware) reject(root, slot string) error {
	_, _, trusted, err := piFiles(root)
	if err != nil {
		return err
	}
	if trusted == slot {
		return fmt.Errorf("slot %s is the one %s boots, not a slot on trial", strings.ToUpper(slot), layout.PiConfig)
	}
	return p.drop(root, slot)
}

// slotCmdline is the kernel command line of a disk boot from slot.
func slotCmdline(sys NewSystem, slot string) string {
	return strings.TrimSpace(sys.Cmdline + " " + layout.SlotParam + "=" + slot)
}

// copyTo is a file to copy into a slot's directory, under name.
type copyTo struct{ src, name string }

// installFiles copies each file into dir (made if missing), synced.
func installFiles(dir string, list []copyTo) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range list {
		if err := copyFileSync(f.src, filepath.Join(dir, f.name)); err != nil {
			return fmt.Errorf("writing %s to the boot partition: %w", f.name, err)
		}
	}
	return syncDir(dir)
}
