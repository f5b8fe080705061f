package boot

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount mounts a file system at Target unless something is mounted there
// already (stage 2 finds the mounts stage 1 moved over).
type Mount struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
	Mode                   os.FileMode // of Target when it must be created (0755 when zero)
}

func (m Mount) String() string {
	s := fmt.Sprintf("mount %s on %s", m.FSType, m.Target)
	if m.Data != "" {
		s += " (" + m.Data + ")"
	}
	return s
}

// Run mounts it.
func (m Mount) Run() error {
	if Mounted(m.Target) {
		return nil
	}
	mode := m.Mode
	if mode == 0 {
		mode = 0o755
	}
	if err := os.MkdirAll(m.Target, mode); err != nil {
		return fmt.Errorf("creating the mount point: %w", err)
	}
	if err := unix.Mount(m.Source, m.Target, m.FSType, m.Flags, m.Data); err != nil {
		return err
	}
	if m.Mode != 0 {
		os.Chmod(m.Target, m.Mode)
	}
	return nil
}

// Mounted reports whether path is a mount point, from /proc/self/mountinfo
// (false when that cannot be read, as before /proc is mounted).
func Mounted(path string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMount(fields[4]) == path {
			return true
		}
	}
	return false
}

// unescapeMount undoes the octal escapes of /proc/self/mountinfo ("\040").
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Symlink creates a symbolic link unless the path exists.
type Symlink struct{ Target, Link string }

func (s Symlink) String() string { return fmt.Sprintf("link %s -> %s", s.Link, s.Target) }

// Run creates it.
func (s Symlink) Run() error {
	if _, err := os.Lstat(s.Link); err == nil {
		return nil
	}
	err := os.Symlink(s.Target, s.Link)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	return err
}

// APIMounts are the file systems every Linux userland expects, in order.
func APIMounts() []Entry {
	const nodev, nosuid, noexec = unix.MS_NODEV, unix.MS_NOSUID, unix.MS_NOEXEC
	return []Entry{
		{Mount{Source: "proc", Target: "/proc", FSType: "proc", Flags: nodev | nosuid | noexec}, Stop},
		{Mount{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: nodev | nosuid | noexec}, Stop},
		{Mount{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: nosuid, Data: "mode=0755"}, Stop},
		{Mount{Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: nosuid | noexec, Data: "newinstance,ptmxmode=0666,mode=0620,gid=5"}, Continue},
		{Symlink{Target: "pts/ptmx", Link: "/dev/ptmx"}, Continue},
		{Mount{Source: "shm", Target: "/dev/shm", FSType: "tmpfs", Flags: nodev | nosuid, Data: "mode=1777", Mode: 0o1777}, Continue},
		{Mount{Source: "run", Target: "/run", FSType: "tmpfs", Flags: nodev | nosuid, Data: "mode=0755"}, Stop},
		{Symlink{Target: "/proc/self/fd", Link: "/dev/fd"}, Continue},
		{Symlink{Target: "/proc/self/fd/0", Link: "/dev/stdin"}, Continue},
		{Symlink{Target: "/proc/self/fd/1", Link: "/dev/stdout"}, Continue},
		{Symlink{Target: "/proc/self/fd/2", Link: "/dev/stderr"}, Continue},
	}
}
