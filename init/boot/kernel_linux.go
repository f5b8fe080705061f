package boot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/init/boot/modules"

	"golang.org/x/sys/unix"
)

// ReadBoard reads the board file of the running image.
func ReadBoard(path string) (*boards.Board, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the board file: %w", err)
	}
	b, err := boards.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// KernelRelease is the running kernel's release (uname -r).
func KernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// Modules loads the board's kernel modules and those of every device the
// kernel found (coldplug), dependencies first.
type Modules struct {
	// Dir is the module directory, /lib/modules/<release>.
	Dir string
	// Board lists the board's modules; Extra what this stage needs beyond
	// them (loop, squashfs, overlay in stage 1).
	Board, Extra []string
	// Missing is how to report a listed module the image lacks: stage 1
	// carries only a subset, so it logs them at debug level.
	Missing slog.Level
}

func (m Modules) String() string {
	return "load the board's kernel modules and coldplug devices"
}

// Run loads them.
func (m Modules) Run() error {
	t0 := time.Now()
	ix, err := modules.Open(m.Dir)
	if err != nil {
		return err
	}
	t1 := time.Now()
	l := modules.NewLoader(ix)
	var listed []string
	for _, name := range append(append([]string(nil), m.Board...), m.Extra...) {
		did, err := l.Load(name)
		if errors.Is(err, modules.ErrNotFound) {
			slog.Log(context.Background(), m.Missing, fmt.Sprintf("boot: module %s is not in this image", name))
			continue
		}
		if err != nil {
			slog.Warn(fmt.Sprintf("boot: %v", err))
			continue
		}
		if did {
			listed = append(listed, modules.Name(name))
		}
	}
	t2 := time.Now()
	found, errs := l.Coldplug(5)
	slog.Debug(fmt.Sprintf("boot: module index read in %s, listed modules in %s, coldplug in %s",
		t1.Sub(t0).Round(time.Millisecond), t2.Sub(t1).Round(time.Millisecond), time.Since(t2).Round(time.Millisecond)))
	for _, err := range errs {
		slog.Debug(fmt.Sprintf("boot: coldplug: %v", err))
	}
	if all := append(listed, found...); len(all) > 0 {
		slog.Info(fmt.Sprintf("boot: loaded %d kernel modules: %s", len(all), strings.Join(all, " ")))
	} else {
		slog.Info("boot: no kernel modules to load")
	}
	return nil
}

// ModuleDir is the running kernel's module directory under root.
func ModuleDir(root string) string {
	return filepath.Join(root, "lib", "modules", KernelRelease())
}

// Cgroup2 mounts the unified cgroup hierarchy and enables every available
// controller for the cgroups below the root, as the kubelet expects.
type Cgroup2 struct{ Path string }

func (c Cgroup2) String() string { return "mount cgroup2 on " + c.Path + " and enable its controllers" }

// Run mounts it.
func (c Cgroup2) Run() error {
	if !Mounted(c.Path) {
		if err := os.MkdirAll(c.Path, 0o755); err != nil {
			return err
		}
		err := unix.Mount("cgroup2", c.Path, "cgroup2", unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, "nsdelegate,memory_recursiveprot")
		if errors.Is(err, unix.EINVAL) {
			err = unix.Mount("cgroup2", c.Path, "cgroup2", unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, "")
		}
		if err != nil {
			return err
		}
	}
	err := EnableControllers(c.Path)
	if data, rerr := os.ReadFile(filepath.Join(c.Path, "cgroup.subtree_control")); rerr == nil {
		slog.Debug("boot: cgroup controllers enabled for the kubelet: " + strings.TrimSpace(string(data)))
	}
	return err
}

// EnableControllers writes every controller listed in dir/cgroup.controllers
// to dir/cgroup.subtree_control.
func EnableControllers(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return err
	}
	var failed []string
	for _, c := range strings.Fields(string(data)) {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+c), 0); err != nil {
			failed = append(failed, c)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("enabling cgroup controllers %s failed", strings.Join(failed, ", "))
	}
	return nil
}

// Persistent reports whether path lives on a disk file system (ext4, xfs,
// btrfs, f2fs) rather than in memory: only then do services keep log files.
func Persistent(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	switch st.Type {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.F2FS_SUPER_MAGIC:
		return true
	}
	return false
}
