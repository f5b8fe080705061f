package boot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// SystemImage mounts a squashfs system image read-only at Lower (a file
// through a loop device, or a disk's slot partition directly), a tmpfs at RW
// for the changes, and the overlay of both at NewRoot: the root file system
// stage 2 runs on.
type SystemImage struct {
	Image string // the squashfs file, /system.sqfs for live boots, or
	// Partition is the GPT name of the slot partition holding it, waited
	// for up to Wait.
	Partition string
	Wait      time.Duration
	Lower     string // where the image is mounted read-only
	RW        string // tmpfs holding the overlay's upper and work directories
	NewRoot   string // where the overlay is mounted
}

func (s SystemImage) String() string {
	src := s.Image
	if s.Partition != "" {
		src = "on partition " + s.Partition
	}
	return fmt.Sprintf("mount the system image %s with a tmpfs overlay on %s", src, s.NewRoot)
}

// Run mounts it.
func (s SystemImage) Run() error {
	var dev string
	var err error
	if s.Partition != "" {
		dev, err = FindPartition(s.Partition, s.Wait)
	} else {
		dev, err = AttachLoop(s.Image)
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Lower, 0o755); err != nil {
		return err
	}
	if s.Partition != "" && !hasSquashfs(dev) {
		return fmt.Errorf("partition %s (%s) holds no system image (no squashfs at its start); write one to it, or boot the other slot", s.Partition, dev)
	}
	if err := unix.Mount(dev, s.Lower, "squashfs", unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mounting %s as squashfs on %s: %w; is the squashfs module in the initramfs?", dev, s.Lower, err)
	}
	return s.overlay()
}

// overlay mounts the tmpfs and the overlay over the mounted Lower.
func (s SystemImage) overlay() error {
	for _, d := range []string{s.RW, s.NewRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("cairn-rw", s.RW, "tmpfs", unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mounting the tmpfs for the overlay on %s: %w", s.RW, err)
	}
	upper, work := filepath.Join(s.RW, "upper"), filepath.Join(s.RW, "work")
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", s.Lower, upper, work)
	if err := unix.Mount("overlay", s.NewRoot, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mounting the overlay (%s) on %s: %w; is the overlay module in the initramfs?", opts, s.NewRoot, err)
	}
	return nil
}

// AttachLoop attaches file read-only to a free loop device and returns the
// device's path.
func AttachLoop(file string) (string, error) {
	img, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("opening the system image: %w", err)
	}
	defer img.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("opening /dev/loop-control: %w; is the loop module in the initramfs?", err)
	}
	defer ctl.Close()
	for attempt := 0; attempt < 10; attempt++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", fmt.Errorf("finding a free loop device: %w", err)
		}
		dev := fmt.Sprintf("/dev/loop%d", n)
		var lf *os.File
		// devtmpfs creates the node right after the device; give it a moment.
		for i := 0; i < 50; i++ {
			lf, err = os.OpenFile(dev, os.O_RDONLY, 0)
			if !errors.Is(err, fs.ErrNotExist) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			return "", fmt.Errorf("opening %s: %w", dev, err)
		}
		cfg := unix.LoopConfig{Fd: uint32(img.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY
		copy(cfg.Info.File_name[:], file)
		err = unix.IoctlLoopConfigure(int(lf.Fd()), &cfg)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
			// Kernels before 5.8 have no LOOP_CONFIGURE.
			err = unix.IoctlSetInt(int(lf.Fd()), unix.LOOP_SET_FD, int(img.Fd()))
			if err == nil {
				err = unix.IoctlLoopSetStatus64(int(lf.Fd()), &cfg.Info)
			}
		}
		lf.Close()
		if errors.Is(err, unix.EBUSY) {
			continue // someone took it first
		}
		if err != nil {
			return "", fmt.Errorf("attaching %s to %s: %w", file, dev, err)
		}
		return dev, nil
	}
	return "", fmt.Errorf("attaching %s: every free loop device was taken first", file)
}

// SwitchRoot moves the API mounts into newRoot, deletes the initramfs's
// files (they would hold memory for good), makes newRoot the root and
// executes init there. It returns only on failure.
func SwitchRoot(newRoot string, moves []string, init string, argv, env []string) error {
	if _, err := os.Stat(filepath.Join(newRoot, init)); err != nil {
		return fmt.Errorf("the system image has no %s: %w", init, err)
	}
	for _, m := range moves {
		if !Mounted(m) {
			continue
		}
		target := filepath.Join(newRoot, m)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", target, err)
		}
		if err := unix.Mount(m, target, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("moving %s to %s: %w", m, target, err)
		}
	}
	if err := os.Chdir(newRoot); err != nil {
		return err
	}
	if err := deleteInitramfs(newRoot); err != nil {
		return fmt.Errorf("deleting the initramfs: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("moving %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot to the new root: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	return syscall.Exec(init, argv, env)
}

// deleteInitramfs removes every file of the initramfs, staying on its file
// system (mount points like newRoot are skipped), as switch_root does.
func deleteInitramfs(skip string) error {
	var root unix.Stat_t
	if err := unix.Stat("/", &root); err != nil {
		return err
	}
	var fsType unix.Statfs_t
	if err := unix.Statfs("/", &fsType); err != nil {
		return err
	}
	if fsType.Type != unix.RAMFS_MAGIC && fsType.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("/ is not an initramfs (file system type %#x); not deleting it", fsType.Type)
	}
	var walk func(dir string)
	walk = func(dir string) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			if p == skip {
				continue
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil || st.Dev != root.Dev {
				continue
			}
			if e.IsDir() {
				walk(p)
				unix.Rmdir(p)
			} else {
				unix.Unlink(p)
			}
		}
	}
	walk("/")
	return nil
}

// InInitramfs reports whether / is the initramfs (ramfs or tmpfs), where
// stage 1 runs.
func InInitramfs() bool {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return false
	}
	return st.Type == unix.RAMFS_MAGIC || st.Type == unix.TMPFS_MAGIC
}

// hasSquashfs says whether dev starts with a squashfs superblock's magic.
func hasSquashfs(dev string) bool {
	f, err := os.Open(dev)
	if err != nil {
		return true // let the mount say what is wrong
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil {
		return true
	}
	return string(magic) == "hsqs"
}
