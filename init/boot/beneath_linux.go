package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// A container platform's node directory is written by the node it stands
// in for the disk of (the node sees it read-write at
// layout.ContainerDiskMount), and read on the host, where "/" is the
// host's own: by the init's launcher and by ContainerRoot before it
// pivots. So no path in it is followed out of it: each file is opened
// relative to the directory with openat2, refusing symbolic links, magic
// links and "..", its type checked, and then used only through its
// descriptor (/proc/self/fd/N).

// noLinks resolves a path inside a directory without leaving it and
// without following any link.
const noLinks = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// inRoot resolves a path in a root file system being assembled as it will
// resolve once it is the root: its symbolic links stay inside it.
const inRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// openat2 opens path relative to dir with flags (O_CLOEXEC added) and
// resolve, retrying the EAGAIN a concurrent rename can cause.
func openat2(dir *os.File, path string, flags int, resolve uint64) (*os.File, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolve}
	for range 16 {
		fd, err := unix.Openat2(int(dir.Fd()), path, &how)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), path), nil
	}
	return nil, unix.EAGAIN
}

// fdPath names an open file for mount(2) and for opening it again.
func fdPath(f *os.File) string { return fmt.Sprintf("/proc/self/fd/%d", f.Fd()) }

// fileType is the type a file in a node directory must have.
type fileType uint32

const (
	regularFile fileType = unix.S_IFREG
	directory   fileType = unix.S_IFDIR
)

func (t fileType) String() string {
	if t == directory {
		return "a directory"
	}
	return "a regular file"
}

// openBeneath opens the file rel of the directory dir, named name in
// errors (the node directory), as O_PATH: only a file of type want inside
// dir and reached through no link. A missing file's error satisfies
// errors.Is(err, os.ErrNotExist); every other refusal is one line naming
// the file and what to do.
func openBeneath(dir *os.File, name, rel string, want fileType) (*os.File, error) {
	f, err := openat2(dir, rel, unix.O_PATH, noLinks)
	if err != nil {
		return nil, beneathError(name, rel, err)
	}
	if err := checkType(f, name, rel, want); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkType refuses f (rel in name) unless it is of type want.
func checkType(f *os.File, name, rel string, want fileType) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("%s: %s: %w", name, rel, err)
	}
	if fileType(st.Mode&unix.S_IFMT) != want {
		return fmt.Errorf("%s: %s is not %s; refusing it: make it %s", name, rel, want, want)
	}
	return nil
}

// beneathError says why rel in name could not be opened, in one line.
func beneathError(name, rel string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%s: %s: %w", name, rel, os.ErrNotExist)
	case errors.Is(err, unix.ELOOP):
		return fmt.Errorf("%s: %s is a symbolic link, or its path crosses one; refusing it: the host follows no link in a node directory", name, rel)
	case errors.Is(err, unix.EXDEV):
		return fmt.Errorf("%s: %s leads out of it; refusing it", name, rel)
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%s: %s: a part of its path is not a directory; refusing it", name, rel)
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("%s: %s: opening it safely needs openat2 (Linux 5.6 or newer)", name, rel)
	}
	return fmt.Errorf("%s: %s: %w", name, rel, err)
}

// mkdirBeneath makes the directory rel of dir and its parents as they are
// missing (mode 0755), each resolved with resolve (noLinks, inRoot), and
// returns it opened as O_PATH. A path that would leave dir, or cross a
// link that noLinks refuses, is refused.
func mkdirBeneath(dir *os.File, name, rel string, resolve uint64) (*os.File, error) {
	const flags = unix.O_PATH | unix.O_DIRECTORY
	var parts []string
	for p := range strings.SplitSeq(filepath.Clean(rel), "/") {
		if p != "" && p != "." {
			parts = append(parts, p)
		}
	}
	cur, err := openat2(dir, ".", flags, resolve)
	if err != nil {
		return nil, beneathError(name, ".", err)
	}
	for i, p := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		next, err := openat2(dir, prefix, flags, resolve)
		if errors.Is(err, unix.ENOENT) {
			// cur is prefix's parent as resolved: made in it, p is where
			// the next resolution of prefix finds it.
			if err := unix.Mkdirat(int(cur.Fd()), p, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				cur.Close()
				return nil, fmt.Errorf("%s: making %s: %w", name, prefix, err)
			}
			next, err = openat2(dir, prefix, flags, resolve)
			if errors.Is(err, unix.ENOENT) {
				cur.Close()
				return nil, fmt.Errorf("%s: %s is a symbolic link to nothing inside it; refusing it", name, prefix)
			}
		}
		cur.Close()
		if err != nil {
			return nil, beneathError(name, prefix, err)
		}
		cur = next
	}
	return cur, nil
}

// fileInRoot opens the regular file rel of the root file system root as
// O_PATH, resolved as it will be once root is the root, making it (empty,
// 0600) and its directories when they are missing: a file to bind over.
func fileInRoot(root *os.File, name, rel string) (*os.File, error) {
	f, err := openat2(root, rel, unix.O_PATH, inRoot)
	if errors.Is(err, unix.ENOENT) {
		if err := makeFile(root, name, rel); err != nil {
			return nil, err
		}
		f, err = openat2(root, rel, unix.O_PATH, inRoot)
	}
	if err != nil {
		return nil, beneathError(name, rel, err)
	}
	if err := checkType(f, name, rel, regularFile); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// makeFile makes the empty file rel of root (0600), and its directories,
// resolved as in fileInRoot; the file itself is never a link followed.
func makeFile(root *os.File, name, rel string) error {
	dir, err := mkdirBeneath(root, name, filepath.Dir(rel), inRoot)
	if err != nil {
		return err
	}
	defer dir.Close()
	fd, err := unix.Openat(int(dir.Fd()), filepath.Base(rel), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("%s: making %s: %w", name, rel, err)
	}
	return unix.Close(fd)
}
