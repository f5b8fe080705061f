package boot

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/config/layout"
)

// FindPartition returns the device node (/dev/vda2) of the partition whose
// GPT name is label, waiting up to wait for the kernel to find it: disks
// appear while their drivers probe, after the modules are loaded.
func FindPartition(label string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		if dev := partitionByName(label); dev != "" {
			return dev, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no partition named %s appeared within %s; is the disk's driver in the board's module list?", label, wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// partitionByName scans the block devices' uevent files for PARTNAME=label.
func partitionByName(label string) string {
	ents, _ := os.ReadDir("/sys/class/block")
	for _, e := range ents {
		props := uevent(filepath.Join("/sys/class/block", e.Name(), "uevent"))
		if props["PARTNAME"] == label && props["DEVNAME"] != "" {
			return "/dev/" + props["DEVNAME"]
		}
	}
	return ""
}

// uevent reads a sysfs uevent file's KEY=value lines (a few hundred bytes).
func uevent(path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	props := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 0; sc.Scan() && n < 64; n++ {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			props[k] = v
		}
	}
	return props
}

// State mounts the STATE partition at Mount and binds its directories over
// the new root's state paths (layout.StateBinds). With no STATE partition
// (live boots) it does nothing: the node's state stays in RAM.
type State struct {
	Label   string // GPT name of the partition
	Mount   string // where it is mounted (/run/cairn/state)
	NewRoot string // the root being assembled
	Wait    time.Duration
}

func (s State) String() string {
	return fmt.Sprintf("mount the %s partition for the node's state", s.Label)
}

// Run mounts it.
func (s State) Run() error {
	dev, err := FindPartition(s.Label, s.Wait)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Mount, 0o755); err != nil {
		return err
	}
	growErr := growPartition(dev)
	if err := unix.Mount(dev, s.Mount, "ext4", unix.MS_NOATIME|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		return fmt.Errorf("mounting %s (%s) as ext4 on %s: %w; the node's state stays in RAM", s.Label, dev, s.Mount, err)
	}
	// The file system follows the partition, also when an earlier boot
	// grew the partition and stopped before the file system.
	var before, st unix.Statfs_t
	unix.Statfs(s.Mount, &before)
	if growErr == nil {
		if bi, err := readBlockInfo(dev); err != nil {
			growErr = err
		} else {
			growErr = growExt4(s.Mount, int64(bi.sectors)*sectorSize)
		}
	}
	unix.Statfs(s.Mount, &st)
	if growErr != nil {
		slog.Warn(fmt.Sprintf("boot: state: growing %s to fill the disk failed: %v; it keeps its size", s.Label, growErr))
	} else if st.Blocks > before.Blocks {
		slog.Info(fmt.Sprintf("boot: state: grew %s to fill the disk: %s", s.Label, humanBytes(int64(st.Blocks)*st.Bsize)))
	}
	boots := countBoot(filepath.Join(s.Mount, "boots"))
	slog.Info(fmt.Sprintf("boot: state: %s mounted (ext4, %s), boot %d of this node", s.Label, humanBytes(int64(st.Blocks)*st.Bsize), boots))
	for _, b := range layout.StateBinds {
		src := filepath.Join(s.Mount, b.Dir)
		dst := filepath.Join(s.NewRoot, b.Target)
		for _, d := range []string{src, dst} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("binding %s on %s: %w", src, dst, err)
		}
	}
	return nil
}

// countBoot adds one to the boot counter in the file path and returns it;
// 0 when the file cannot be written.
func countBoot(path string) int {
	b := make([]byte, 32)
	if f, err := os.Open(path); err == nil {
		k, _ := f.Read(b)
		b = b[:k]
		f.Close()
	} else {
		b = nil
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	n++
	if err := os.WriteFile(path+".new", []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
		return 0
	}
	if err := os.Rename(path+".new", path); err != nil {
		return 0
	}
	return n
}

// humanBytes formats a size in binary units: "1.9 GiB".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// Bless marks the running slot good for its boot loader and reports when
// the loader fell back from the other slot. With systemd-boot it ends the
// boot counting of the slot's entry (cairn-a+2-1.conf becomes cairn-a.conf);
// with the Raspberry Pi firmware it makes config.txt boot the slot after a
// trial boot (tryboot.txt). The boot partition's contents say which.
type Bless struct {
	Slot string // the running slot
	// Trial is the trial record's path (layout.TrialFile on STATE): a slot
	// on trial for an upgrade is left counting, for stage 2 to judge.
	Trial string
}

func (b Bless) String() string {
	return fmt.Sprintf("mark slot %s as booted", strings.ToUpper(b.Slot))
}

// Run renames the entry or rewrites config.txt.
func (b Bless) Run() error {
	if b.Trial != "" {
		t, err := ReadTrial(b.Trial)
		if err != nil {
			slog.Warn(fmt.Sprintf("boot: the upgrade's trial record: %v", err))
		}
		if t != nil && t.Slot == b.Slot && t.Result == "" {
			slog.Info(fmt.Sprintf("boot: slot %s runs cairn %s on trial (upgrade %s); it is kept only once the node is healthy", strings.ToUpper(b.Slot), t.Version, t.Upgrade))
			return nil
		}
	}
	return machine.withBoot(false, func(root string) error {
		dir := filepath.Join(root, "loader/entries")
		if names, err := entryNames(dir); err == nil {
			return blessEntries(dir, names, b.Slot)
		}
		if _, err := os.Stat(filepath.Join(root, layout.PiConfig)); err == nil {
			return blessTryboot(root, b.Slot, trybootFlag(layout.TrybootFlag))
		}
		return fmt.Errorf("the boot partition has neither loader/entries (systemd-boot) nor %s (Raspberry Pi); is it a cairn disk?", layout.PiConfig)
	})
}

// OnTrial says why the running slot boots on trial: its systemd-boot entry
// still counts tries, or the Pi firmware booted it from tryboot.txt. It
// returns "" for a trusted slot, or when the boot partition cannot be read.
func OnTrial(slot string) string {
	var why string
	machine.withBoot(true, func(root string) error {
		if names, err := entryNames(filepath.Join(root, "loader/entries")); err == nil {
			if e := trialEntry(names, slot); e != "" {
				why = "its boot loader entry " + e + " still counts tries"
			}
			return nil
		}
		why = trialTryboot(root, slot, trybootFlag(layout.TrybootFlag))
		return nil
	})
	return why
}

// FallBack restarts the machine after delay when slot boots on trial, so
// the boot loader counts the failed boot and, its tries spent, boots the
// other slot; it returns (doing nothing) for a trusted slot, whose failure
// a restart would only repeat.
func FallBack(slot string, delay time.Duration) {
	why := OnTrial(slot)
	if why == "" {
		return
	}
	slog.Warn(fmt.Sprintf("boot: slot %s is on trial (%s); restarting in %s so the boot loader falls back to the other slot", strings.ToUpper(slot), why, delay))
	time.Sleep(delay)
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		slog.Warn(fmt.Sprintf("boot: restart: %v; reset the machine to fall back", err))
	}
}

// withBootPartition mounts the boot partition (vfat) named label at mount,
// read-only when ro, runs fn on it and unmounts it, synced.
func withBootPartition(label, mount string, wait time.Duration, ro bool, fn func(root string) error) error {
	dev, err := FindPartition(label, wait)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(mount, 0o755); err != nil {
		return err
	}
	flags := uintptr(unix.MS_NODEV | unix.MS_NOSUID | unix.MS_NOEXEC)
	if ro {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(dev, mount, "vfat", flags, "umask=0077"); err != nil {
		return fmt.Errorf("mounting the boot partition %s: %w", dev, err)
	}
	defer func() {
		unix.Sync()
		unix.Unmount(mount, 0)
	}()
	return fn(mount)
}

// entryNames lists a loader entries directory, sorted.
func entryNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// partitionWait is how long a disk boot waits for its partitions to appear.
const partitionWait = 30 * time.Second

// DiskSystem is stage 1 of a disk boot from slot (layout.SlotA or SlotB):
// mount the slot's system image with a tmpfs overlay on newRoot (lower and
// rw as for SystemImage), mount STATE for the node's state, and mark the
// slot booted for the boot loader.
func DiskSystem(slot, lower, rw, newRoot string) ([]Entry, error) {
	if slot != layout.SlotA && slot != layout.SlotB {
		return nil, fmt.Errorf("%s=%q: a disk boot needs %s=%s or %s; fix the boot loader entry", layout.SlotParam, slot, layout.SlotParam, layout.SlotA, layout.SlotB)
	}
	return []Entry{
		{Step: SystemImage{Partition: layout.SlotLabel(slot), Wait: partitionWait, Lower: lower, RW: rw, NewRoot: newRoot}, OnError: Stop},
		{Step: State{Label: layout.StateLabel, Mount: layout.StateMount, NewRoot: newRoot, Wait: 5 * time.Second}, OnError: Continue},
		{Step: Bless{Slot: slot, Trial: filepath.Join(layout.StateMount, layout.StateCairnDir, layout.TrialFile)}, OnError: Continue},
	}, nil
}
