package boot

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/config/layout"
)

// media is where this machine's slots and boot loader entries are, the
// only part of an upgrade that differs between a disk and the container
// platform. Everything else (the order of the writes, the entries' names
// and their boot counting, the trial record, blessing, rejecting) is the
// same code on both.
//
//   - A disk: each slot a GPT partition (cairn-a, cairn-b), the entries on
//     the boot partition (ESP, vfat, mounted for a moment), and systemd-boot
//     (or the Raspberry Pi firmware) choosing the slot.
//   - The container platform with a node directory (the init's -disk
//     flag; config/layout's Container* names): each slot a squashfs file,
//     the entries in a directory, and the init's launcher choosing the
//     slot with NextBoot, as systemd-boot does, each time it starts the
//     init (at power-on and after every reboot the init asks for).
type media interface {
	// slotTarget is the block device or file to write a system image of
	// size bytes to, for slot.
	slotTarget(slot string, size int64) (string, error)
	// withBoot runs fn on the boot partition's files (read-only when ro).
	withBoot(ro bool, fn func(root string) error) error
}

// machine is this machine's media: a disk's, unless UseContainerDisk says
// otherwise at boot.
var machine media = diskMedia{}

// UseContainerDisk makes the slots and loader entries those of the node
// directory bound at layout.ContainerDiskMount: what the container
// platform's init given -disk does at boot (ContainerRoot in stage 1, and
// stage 2, the slot's own init, before anything else).
func UseContainerDisk() { machine = containerMedia{dir: layout.ContainerDiskMount} }

// diskMedia is a disk's partitions.
type diskMedia struct{}

// espMount is where the boot partition is mounted for a moment.
const espMount = "/run/cairn/esp"

func (diskMedia) slotTarget(slot string, _ int64) (string, error) {
	return FindPartition(layout.SlotLabel(slot), 5*time.Second)
}

func (diskMedia) withBoot(ro bool, fn func(root string) error) error {
	return withBootPartition(layout.ESPLabel, espMount, 5*time.Second, ro, fn)
}

// containerMedia is a container-platform node's directory.
type containerMedia struct{ dir string }

// slotTarget makes the slot's file anew, of the image's size: the old one
// may be a hard link that other nodes boot from (`cairn cluster up` links
// every node's slot A to one image), never to be written through.
func (c containerMedia) slotTarget(slot string, size int64) (string, error) {
	path := filepath.Join(c.dir, layout.ContainerSlot(slot))
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("making the slot file %s: %w", path, err)
	}
	return path, syncDir(c.dir)
}

func (c containerMedia) withBoot(_ bool, fn func(root string) error) error {
	return fn(filepath.Join(c.dir, layout.ContainerESP))
}

// NextBoot is the container platform's boot loader (see media): it does
// for a node directory's entries directory dir what systemd-boot does for
// a disk's, each time the node is started. Entries whose tries ran out
// (cairn-b+0-1.conf) come last, the others by version, newest first (the
// cairn entries share one sort key), then by name; the first is booted.
// An entry still counting (cairn-b+1.conf) has the try counted before the
// boot (cairn-b+0-1.conf), synced, so a boot that never gets to bless it
// is not repeated: the next start falls back to the last good entry. It
// returns the slot the entry boots (its options' cairn.slot=) and a line
// saying what was chosen.
//
// It runs on the host, as root, over files the node writes: an entry is
// read only when it is a regular file of at most maxEntrySize bytes, never
// through a link, each other one skipped with a line saying so; more than
// maxEntries cairn entries are refused. The entries are the directory rel
// of the node directory disk, reached through no link (the node's ESP
// directory included).
func NextBoot(disk, rel string) (slot, said string, err error) {
	root, err := os.OpenFile(disk, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return "", "", fmt.Errorf("the node directory: %w", err)
	}
	defer root.Close()
	d, err := openat2(root, rel, unix.O_RDONLY|unix.O_DIRECTORY, noLinks)
	if err != nil {
		return "", "", fmt.Errorf("the boot loader entries: %w", beneathError(disk, rel, err))
	}
	defer d.Close()
	dir := filepath.Join(disk, rel)
	names, err := loaderEntryNames(d)
	if err != nil {
		return "", "", fmt.Errorf("the boot loader entries in %s: %w", dir, err)
	}
	type entry struct {
		name          string
		slot          string
		version       int64
		left, done    int // tries; left -1 for an entry that does not count
		options       string
		counting, out bool
	}
	var es []entry
	for _, n := range names {
		data, err := readEntry(d, n)
		if err != nil {
			slog.Warn(fmt.Sprintf("boot: loader entry %s in %s skipped: %v", n, dir, err))
			continue
		}
		e := entry{name: n, version: entryVersion(data), left: -1}
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "options "); ok {
				e.options = v
			}
		}
		for _, w := range strings.Fields(e.options) {
			if v, ok := strings.CutPrefix(w, layout.SlotParam+"="); ok {
				e.slot = v
			}
		}
		if e.slot == "" {
			e.slot = entrySlot(n)
		}
		if m := counted.FindStringSubmatch(n); m != nil {
			e.left, _ = strconv.Atoi(m[2])
			e.done, _ = strconv.Atoi(m[3])
			e.counting, e.out = true, e.left == 0
		}
		es = append(es, e)
	}
	if len(es) == 0 {
		return "", "", fmt.Errorf("no cairn boot loader entry in %s: nothing to boot", dir)
	}
	slices.SortStableFunc(es, func(a, b entry) int {
		if a.out != b.out {
			if a.out {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(b.version, a.version); c != 0 {
			return c
		}
		return strings.Compare(b.name, a.name)
	})
	e := es[0]
	up := strings.ToUpper(e.slot)
	switch {
	case !e.counting:
		return e.slot, fmt.Sprintf("boot: loader entry %s: slot %s", e.name, up), nil
	case e.out:
		return e.slot, fmt.Sprintf("boot: loader entry %s: slot %s, its tries spent: no other entry is left", e.name, up), nil
	}
	next := fmt.Sprintf("%s%s+%d-%d.conf", layout.EntryPrefix, entrySlot(e.name), e.left-1, e.done+1)
	if err := unix.Renameat(int(d.Fd()), e.name, int(d.Fd()), next); err != nil {
		return "", "", fmt.Errorf("counting the try of %s: %w", e.name, err)
	}
	if err := d.Sync(); err != nil {
		return "", "", fmt.Errorf("counting the try of %s: %w", e.name, err)
	}
	return e.slot, fmt.Sprintf("boot: loader entry %s: slot %s on trial, try %d (%d left after it)", next, up, e.done+1, e.left-1), nil
}

// NextBoot's bounds on a node directory's loader entries: systemd-boot's
// names for two slots make a few.
const (
	maxEntries   = 64
	maxEntrySize = 64 << 10
)

// loaderEntryNames lists the cairn loader entries (cairn-a.conf,
// cairn-b+1.conf) of the open directory d, sorted, refusing more than
// maxEntries; other names are passed over unread.
func loaderEntryNames(d *os.File) ([]string, error) {
	var names []string
	for {
		batch, err := d.Readdirnames(256)
		for _, n := range batch {
			if strings.HasSuffix(n, ".conf") && entrySlot(n) != "" {
				names = append(names, n)
			}
		}
		if len(names) > maxEntries {
			return nil, fmt.Errorf("more than %d cairn entries; refusing them all: a node directory has one or two (cairn-a.conf, cairn-b+1.conf), remove the others", maxEntries)
		}
		if err == io.EOF || len(batch) == 0 {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(names)
	return names, nil
}

// readEntry reads the loader entry name of the open directory d: a
// regular file, not a link, at most maxEntrySize bytes. Anything else is
// never opened for reading (a FIFO would wait, a device could act).
func readEntry(d *os.File, name string) ([]byte, error) {
	fd, err := unix.Openat(int(d.Fd()), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	p := os.NewFile(uintptr(fd), name)
	defer p.Close()
	st, err := p.Stat()
	switch {
	case err != nil:
		return nil, err
	case st.Mode()&os.ModeSymlink != 0:
		return nil, errors.New("it is a symbolic link; the launcher follows no link in a node directory")
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("it is not a regular file (%s)", st.Mode().Type())
	}
	// The file just checked, whatever its name is by now.
	f, err := os.Open(fdPath(p))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxEntrySize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxEntrySize {
		return nil, fmt.Errorf("it is larger than %d bytes", maxEntrySize)
	}
	return data, nil
}
