package boot

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/cairn-os/cairn/config/layout"
)

// A disk's boot partition selects the slot one of two ways, and the init
// reads both the same way: which slot is on trial, which is trusted.
//
//   - systemd-boot (UEFI disks): one loader entry per slot; an entry still
//     counting its tries (cairn-b+2-1.conf) is on trial, a plain one
//     (cairn-a.conf) is trusted, and one whose tries ran out
//     (cairn-b+0-3.conf) sorts last, so the loader boots the other slot.
//   - the Raspberry Pi firmware's tryboot: config.txt names the trusted
//     slot (os_prefix=a/), tryboot.txt the slot to try once; the firmware
//     reads tryboot.txt only for the one boot after `reboot "0 tryboot"`,
//     says so in the device tree, and any reset returns to config.txt.

// counted matches a counting entry's name: cairn-a+2-1.conf, cairn-b+0-3.conf.
var counted = regexp.MustCompile(`^` + regexp.QuoteMeta(layout.EntryPrefix) + `([a-z])\+(\d+)(?:-(\d+))?\.conf$`)

// trialEntry returns the counting entry of slot among an entries
// directory's names, or "" when the slot's entry is blessed (or absent).
func trialEntry(names []string, slot string) string {
	for _, name := range names {
		if m := counted.FindStringSubmatch(name); m != nil && m[1] == slot {
			return name
		}
	}
	return ""
}

// blessEntries does Bless's work on the entry names found in dir.
func blessEntries(dir string, names []string, slot string) error {
	var errs []error
	for _, name := range names {
		m := counted.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		switch {
		case m[1] == slot:
			good := layout.EntryPrefix + slot + ".conf"
			if err := os.Rename(filepath.Join(dir, name), filepath.Join(dir, good)); err != nil {
				errs = append(errs, fmt.Errorf("renaming %s to %s: %w", name, good, err))
				continue
			}
			slog.Info(fmt.Sprintf("boot: slot %s booted; its entry %s is now %s", strings.ToUpper(slot), name, good))
		case m[2] == "0":
			slog.Warn(fmt.Sprintf("boot: slot %s failed to boot %s times (%s); the boot loader fell back to slot %s", strings.ToUpper(m[1]), cmp.Or(m[3], "several"), name, strings.ToUpper(slot)))
		}
	}
	return errors.Join(errs...)
}

// osPrefix matches a Pi config file's os_prefix line naming a slot's
// directory: os_prefix=a/.
var osPrefix = regexp.MustCompile(`(?m)^os_prefix=([a-z])/\s*$`)

// piSlot returns the slot a Raspberry Pi config file (config.txt,
// tryboot.txt) boots, "" when it names none.
func piSlot(conf []byte) string {
	if m := osPrefix.FindSubmatch(conf); m != nil {
		return string(m[1])
	}
	return ""
}

// setPiSlot returns conf booting slot instead.
func setPiSlot(conf []byte, slot string) []byte {
	return osPrefix.ReplaceAll(conf, []byte("os_prefix="+slot+"/"))
}

// blessTryboot does Bless's work on a Pi boot partition at dir: after a
// trial boot of slot (tryboot set by the firmware) config.txt is made to
// boot it from now on; after an ordinary boot of slot, a tryboot.txt
// naming another slot means that slot's trial failed (or never ran), so it
// is reported and tryboot.txt reset to slot.
func blessTryboot(dir, slot string, tryboot bool) error {
	cfgPath, tryPath := filepath.Join(dir, layout.PiConfig), filepath.Join(dir, layout.PiTryboot)
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	try, _ := os.ReadFile(tryPath)
	up := strings.ToUpper
	cfgSlot, trySlot := piSlot(cfg), piSlot(try)
	switch {
	case cfgSlot == "":
		return fmt.Errorf("%s names no slot (no os_prefix= line); write os_prefix=%s/ into it", layout.PiConfig, slot)
	case cfgSlot == slot && trySlot != "" && trySlot != slot && !tryboot:
		slog.Warn(fmt.Sprintf("boot: slot %s did not come up on its trial boot (%s); the firmware fell back to slot %s", up(trySlot), layout.PiTryboot, up(slot)))
		return writeFileSync(tryPath, setPiSlot(try, slot))
	case cfgSlot == slot:
		slog.Info(fmt.Sprintf("boot: slot %s booted (%s)", up(slot), layout.PiConfig))
		return nil
	case tryboot:
		if err := writeFileSync(cfgPath, setPiSlot(cfg, slot)); err != nil {
			return err
		}
		slog.Info(fmt.Sprintf("boot: slot %s booted on trial (%s); %s boots it from now on", up(slot), layout.PiTryboot, layout.PiConfig))
		return nil
	default:
		return fmt.Errorf("slot %s runs, but %s names slot %s and this is no trial boot; the kernel command line and %s disagree", up(slot), layout.PiConfig, up(cfgSlot), layout.PiConfig)
	}
}

// trialTryboot says whether slot runs on trial on a Pi boot partition at
// dir: a trial boot (tryboot) of a slot config.txt does not name yet.
func trialTryboot(dir, slot string, tryboot bool) string {
	cfg, err := os.ReadFile(filepath.Join(dir, layout.PiConfig))
	if err != nil || !tryboot || piSlot(cfg) == slot {
		return ""
	}
	return "the firmware's trial boot (" + layout.PiTryboot + ")"
}

// writeFileSync replaces path's contents through a temporary file, synced,
// renamed over it: a reset midway leaves the old or the new file.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// trybootFlag reads the Pi firmware's tryboot cell from the device tree
// (a big-endian 32-bit value, nonzero on a trial boot).
func trybootFlag(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return false
	}
	return len(bytes.Trim(b, "\x00")) > 0
}

// isHybridMBR says whether an MBR sector has a GPT protective entry (type
// 0xee) and other partitions beside it.
func isHybridMBR(mbr []byte) bool {
	if len(mbr) < 512 || mbr[510] != 0x55 || mbr[511] != 0xaa {
		return false
	}
	protective, other := false, false
	for i := 0; i < 4; i++ {
		switch mbr[446+16*i+4] {
		case 0:
		case 0xee:
			protective = true
		default:
			other = true
		}
	}
	return protective && other
}
