package boot

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ContainerRoot makes the root file system of a node on the container
// platform: the system image (a squashfs file, or a directory holding an
// unpacked one) under a tmpfs overlay, with its own /proc, /sys, a minimal
// /dev, /run and /tmp, switched to with pivot_root. It must run as PID 1
// of new PID and mount namespaces: every mount stays in them, and the
// host's files are never written.
type ContainerRoot struct {
	// Image is the squashfs file or directory to run on.
	Image string
	// Staging is where the pieces are assembled before pivot_root; /run
	// when empty (covered by a tmpfs in the new mount namespace only).
	Staging string
}

func (c ContainerRoot) String() string {
	return fmt.Sprintf("enter the system image %s with a tmpfs overlay", c.Image)
}

// Run assembles the root and pivots into it.
func (c ContainerRoot) Run() error {
	img, err := filepath.Abs(c.Image)
	if err != nil {
		return err
	}
	st, err := os.Stat(img)
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
	// Keep a handle on the image: the staging tmpfs may cover its directory.
	f, err := os.Open(img)
	if err != nil {
		return fmt.Errorf("opening the system image: %w", err)
	}
	defer f.Close()
	if err := unix.Mount("cairn-staging", staging, "tmpfs", unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mounting a tmpfs on %s: %w", staging, err)
	}
	dir := filepath.Join(staging, "cairn")
	lower, rw, root := filepath.Join(dir, "system"), filepath.Join(dir, "rw"), filepath.Join(dir, "root")
	if st.IsDir() {
		if err := os.MkdirAll(lower, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), lower, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("binding %s: %w", img, err)
		}
		unix.Mount("", lower, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
		if err := (SystemImage{Lower: lower, RW: rw, NewRoot: root}).overlay(); err != nil {
			return err
		}
	} else {
		si := SystemImage{Image: fmt.Sprintf("/proc/self/fd/%d", f.Fd()), Lower: lower, RW: rw, NewRoot: root}
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
	return pivot(root)
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
