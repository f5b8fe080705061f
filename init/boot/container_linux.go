package boot

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/config/layout"
)

// ContainerRoot makes the root file system of a node on the container
// platform: the system image (a squashfs file, or a directory holding an
// unpacked one) under a tmpfs overlay, with its own /proc, /sys, a minimal
// /dev, /run and /tmp, switched to with pivot_root. It must run as PID 1
// of new PID and mount namespaces: every mount stays in them, and the
// host's files are never written.
//
// With Disk, a node directory standing in for a disk (config/layout's
// Container* names), the system image is the file of the slot Slot, and
// the node gets what a disk boot gives it: STATE's directories bound over
// its state paths, the directory at layout.ContainerDiskMount (its slots
// and loader entries, for upgrades: UseContainerDisk), the slot marked
// booted (Bless), and its config and image archives bound in. Only the
// node's writes to these reach the host, into the directory. The node
// writes the directory, so each of its files is taken only from inside it,
// through no link, and of its type (the slot, the config and the archives
// regular files, STATE's parts directories): anything else stops the boot
// with a line naming it. What they are bound over is resolved inside the
// new root, as it will be once it is the root.
type ContainerRoot struct {
	// Image is the squashfs file or directory to run on.
	Image string
	// Disk is the node directory, and Slot the slot to run from.
	Disk, Slot string
	// Staging is where the pieces are assembled before pivot_root; /run
	// when empty (covered by a tmpfs in the new mount namespace only).
	Staging string
}

func (c ContainerRoot) String() string {
	if c.Disk != "" {
		return fmt.Sprintf("enter slot %s of %s with a tmpfs overlay", strings.ToUpper(c.Slot), c.Disk)
	}
	return fmt.Sprintf("enter the system image %s with a tmpfs overlay", c.Image)
}

// Run assembles the root and pivots into it.
func (c ContainerRoot) Run() error {
	// A handle on the image: the staging tmpfs may cover its directory.
	var f, disk *os.File
	image := c.Image
	if c.Disk != "" {
		if c.Slot != layout.SlotA && c.Slot != layout.SlotB {
			return fmt.Errorf("%s=%q: a node directory boots %s=%s or %s; the launcher names the slot its loader entry boots", layout.SlotParam, c.Slot, layout.SlotParam, layout.SlotA, layout.SlotB)
		}
		var err error
		if disk, err = os.Open(c.Disk); err != nil {
			return fmt.Errorf("opening the node directory: %w", err)
		}
		defer disk.Close()
		// The node writes its slots: its file, never what a link names.
		if f, err = openBeneath(disk, nodeDirName(c.Disk), layout.ContainerSlot(c.Slot), regularFile); err != nil {
			return fmt.Errorf("%s: %w", slotName(c.Slot), err)
		}
		image = filepath.Join(c.Disk, layout.ContainerSlot(c.Slot))
	} else {
		img, err := filepath.Abs(c.Image)
		if err != nil {
			return err
		}
		if f, err = os.Open(img); err != nil {
			return fmt.Errorf("the system image: %w", err)
		}
		image = img
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("the system image: %w", err)
	}
	staging := c.Staging
	if staging == "" {
		staging = "/run"
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private (is this a new mount namespace?): %w", err)
	}
	if err := unix.Mount("cairn-staging", staging, "tmpfs", unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mounting a tmpfs on %s: %w", staging, err)
	}
	dir := filepath.Join(staging, "cairn")
	lower, rw, root := filepath.Join(dir, "system"), filepath.Join(dir, "rw"), filepath.Join(dir, "root")
	if st.IsDir() {
		if err := os.MkdirAll(lower, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(fdPath(f), lower, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("binding %s: %w", image, err)
		}
		unix.Mount("", lower, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
		if err := (SystemImage{Lower: lower, RW: rw, NewRoot: root}).overlay(); err != nil {
			return err
		}
	} else {
		si := SystemImage{Image: fdPath(f), Lower: lower, RW: rw, NewRoot: root}
		if err := si.Run(); err != nil {
			return err
		}
	}
	const nodev, nosuid, noexec = unix.MS_NODEV, unix.MS_NOSUID, unix.MS_NOEXEC
	mounts := []Mount{
		{Source: "proc", Target: root + "/proc", FSType: "proc", Flags: nodev | nosuid | noexec},
		{Source: "sysfs", Target: root + "/sys", FSType: "sysfs", Flags: nodev | nosuid | noexec},
		{Source: "dev", Target: root + "/dev", FSType: "tmpfs", Flags: nosuid, Data: "mode=0755"},
		{Source: "devpts", Target: root + "/dev/pts", FSType: "devpts", Flags: nosuid | noexec, Data: "newinstance,ptmxmode=0666,mode=0620"},
		{Source: "shm", Target: root + "/dev/shm", FSType: "tmpfs", Flags: nodev | nosuid, Data: "mode=1777"},
		{Source: "run", Target: root + "/run", FSType: "tmpfs", Flags: nodev | nosuid, Data: "mode=0755"},
		{Source: "tmp", Target: root + "/tmp", FSType: "tmpfs", Flags: nodev | nosuid, Data: "mode=1777"},
	}
	for _, m := range mounts {
		if err := m.Run(); err != nil {
			// A new network namespace's sysfs needs the mount to be made
			// from inside it; without one, fall back to a read-only bind.
			if m.FSType == "sysfs" {
				if err2 := unix.Mount("/sys", m.Target, "", unix.MS_BIND|unix.MS_REC, ""); err2 == nil {
					continue
				}
			}
			return fmt.Errorf("%s: %w", m, err)
		}
	}
	// The node's own cgroups (a cgroup namespace the launcher made), for
	// the kubelet and containerd on this platform.
	if err := mountCgroups(root); err != nil {
		return fmt.Errorf("mounting the node's cgroups: %w", err)
	}
	for _, n := range []string{"null", "zero", "full", "random", "urandom", "tty", "kmsg", "net/tun", "fuse"} {
		src, dst := "/dev/"+n, filepath.Join(root, "dev", n)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := os.WriteFile(dst, nil, 0o666); err != nil {
			return err
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("binding %s into the container: %w", src, err)
		}
	}
	for _, l := range []Symlink{
		{Target: "pts/ptmx", Link: root + "/dev/ptmx"},
		{Target: "/proc/self/fd", Link: root + "/dev/fd"},
		{Target: "/proc/self/fd/0", Link: root + "/dev/stdin"},
		{Target: "/proc/self/fd/1", Link: root + "/dev/stdout"},
		{Target: "/proc/self/fd/2", Link: root + "/dev/stderr"},
	} {
		if err := l.Run(); err != nil {
			return err
		}
	}
	if disk == nil {
		return pivot(root)
	}
	if err := bindDisk(disk, nodeDirName(c.Disk), root, slotName(c.Slot)); err != nil {
		return err
	}
	if err := pivot(root); err != nil {
		return err
	}
	UseContainerDisk()
	// As a disk boot's stage 1 does; a failure leaves the entry as it is.
	b := Bless{Slot: c.Slot, Trial: filepath.Join(layout.StateDir, layout.TrialFile)}
	if err := b.Run(); err != nil {
		slog.Warn(fmt.Sprintf("boot: %s: %v", b, err))
	}
	return nil
}

// nodeDirName names the node directory at path in errors.
func nodeDirName(path string) string { return "the node directory " + path }

// slotName names slot's system image, as a root being assembled, in
// errors.
func slotName(slot string) string { return "slot " + strings.ToUpper(slot) + "'s system image" }

// maxArchives bounds the image archives bindDisk binds.
const maxArchives = 1024

// bindDisk binds a node directory's parts into root: the directory
// itself, then from there STATE's directories over the state paths, the
// config over the baked-in one's path and each image archive into the
// images directory. It runs on the host's root, so every part is opened
// inside the directory, through no link (openBeneath), and every place
// bound over is resolved inside root, as it will be once root is the
// root; name and rootName name the two in errors.
func bindDisk(disk *os.File, name, root, rootName string) error {
	r, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer r.Close()
	bind := func(src *os.File, rel string, ro bool) error {
		var dst *os.File
		var err error
		if ro {
			dst, err = fileInRoot(r, rootName, rel)
		} else {
			dst, err = mkdirBeneath(r, rootName, rel, inRoot)
		}
		if err != nil {
			return err
		}
		defer dst.Close()
		if err := unix.Mount(fdPath(src), fdPath(dst), "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("binding %s on %s: %w", src.Name(), rel, err)
		}
		if ro {
			// Through the bind just made, not the file under it.
			top, err := openat2(r, rel, unix.O_PATH, inRoot)
			if err != nil {
				return beneathError(rootName, rel, err)
			}
			defer top.Close()
			if err := unix.Mount("", fdPath(top), "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
				return fmt.Errorf("making %s read-only: %w", rel, err)
			}
		}
		return nil
	}
	if err := bind(disk, layout.ContainerDiskMount, false); err != nil {
		return err
	}
	for _, b := range layout.StateBinds {
		src, err := mkdirBeneath(disk, name, filepath.Join(layout.ContainerState, b.Dir), noLinks)
		if err != nil {
			return err
		}
		err = bind(src, b.Target, false)
		src.Close()
		if err != nil {
			return err
		}
	}
	cfg, err := openBeneath(disk, name, layout.ContainerConfig, regularFile)
	switch {
	case err == nil:
		err = bind(cfg, layout.ConfigFile, true)
		cfg.Close()
		if err != nil {
			return err
		}
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	archives, err := archiveNames(disk, name)
	if err != nil {
		return err
	}
	for _, a := range archives {
		src, err := openBeneath(disk, name, filepath.Join(layout.ContainerImages, a), regularFile)
		if err != nil {
			return err
		}
		err = bind(src, filepath.Join(layout.ImagesDir, a), true)
		src.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// archiveNames lists the image archives (*.tar) of a node directory's
// images directory, none when it has none; at most maxArchives.
func archiveNames(disk *os.File, name string) ([]string, error) {
	d, err := openat2(disk, layout.ContainerImages, unix.O_RDONLY|unix.O_DIRECTORY, noLinks)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, beneathError(name, layout.ContainerImages, err)
	}
	defer d.Close()
	var tars []string
	for {
		names, err := d.Readdirnames(256)
		for _, n := range names {
			if strings.HasSuffix(n, ".tar") {
				tars = append(tars, n)
			}
		}
		if len(tars) > maxArchives {
			return nil, fmt.Errorf("%s: %s holds more than %d image archives; refusing them: remove some", name, layout.ContainerImages, maxArchives)
		}
		if err == io.EOF || len(names) == 0 {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: listing %s: %w", name, layout.ContainerImages, err)
		}
	}
	sort.Strings(tars)
	return tars, nil
}

// pivot makes root the root file system and detaches the old one.
func pivot(root string) error {
	old := filepath.Join(root, ".old-root")
	if err := os.MkdirAll(old, 0o700); err != nil {
		return err
	}
	if err := unix.PivotRoot(root, old); err != nil {
		return fmt.Errorf("pivot_root to %s: %w", root, err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Unmount("/.old-root", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the host's root: %w", err)
	}
	return os.Remove("/.old-root")
}

// ResetNetwork gives the network namespace at path (a container-platform
// node's, kept across its restarts) what a machine's network has after a
// restart: only its links lo and eth0, eth0 without the addresses the node
// gave it (its own, a VIP it held). The CNI bridge, flannel's VXLAN device
// and what pods left go. Firewall rules stay: kube-proxy and flannel take
// theirs over when they start.
func ResetNetwork(path string) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("opening the network namespace %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", path, err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range links {
		switch l.Attrs().Name {
		case "lo":
		case "eth0":
			addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
			if err != nil {
				errs = append(errs, err)
			}
			for _, a := range addrs {
				if a.IP.IsLinkLocalUnicast() {
					continue
				}
				if err := h.AddrDel(l, &a); err != nil {
					errs = append(errs, fmt.Errorf("removing %s from eth0: %w", a.IPNet, err))
				}
			}
		default:
			if err := h.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("deleting link %s: %w", l.Attrs().Name, err))
			}
		}
	}
	return errors.Join(errs...)
}
