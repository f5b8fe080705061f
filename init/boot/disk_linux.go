package boot

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
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

// Bless marks the running slot's boot loader entry good, ending
// systemd-boot's boot counting for it (cairn-a+2-1.conf becomes
// cairn-a.conf), and reports when an entry of the other slot ran out of
// tries: the boot loader fell back to this slot.
type Bless struct {
	ESP   string // the EFI system partition's GPT name
	Mount string // where to mount it for the rename
	Slot  string // the running slot
	Wait  time.Duration
}

func (b Bless) String() string {
	return fmt.Sprintf("mark slot %s as booted", strings.ToUpper(b.Slot))
}

// counted matches a counting entry's name: cairn-a+2-1.conf, cairn-b+0-3.conf.
var counted = regexp.MustCompile(`^` + regexp.QuoteMeta(layout.EntryPrefix) + `([a-z])\+(\d+)(?:-(\d+))?\.conf$`)

// Run renames the entry.
func (b Bless) Run() error {
	dev, err := FindPartition(b.ESP, b.Wait)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(b.Mount, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, b.Mount, "vfat", unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, "umask=0077"); err != nil {
		return fmt.Errorf("mounting the EFI system partition %s: %w", dev, err)
	}
	defer func() {
		unix.Sync()
		unix.Unmount(b.Mount, 0)
	}()
	dir := filepath.Join(b.Mount, "loader/entries")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return blessEntries(dir, names, b.Slot)
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
		{Step: State{Label: layout.StateLabel, Mount: "/run/cairn/state", NewRoot: newRoot, Wait: 5 * time.Second}, OnError: Continue},
		{Step: Bless{ESP: layout.ESPLabel, Mount: "/run/cairn/esp", Slot: slot, Wait: 5 * time.Second}, OnError: Continue},
	}, nil
}
