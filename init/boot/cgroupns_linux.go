package boot

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupMount is one cgroup hierarchy as the host mounted it.
type cgroupMount struct {
	// Root is the hierarchy's path that is mounted (usually "/").
	Root string
	// Target is where it is mounted.
	Target string
	// V2 is the unified hierarchy.
	V2 bool
	// Options are the hierarchy's options for mount(2) ("cpu",
	// "name=systemd"); empty for v2.
	Options string
}

// cgroupMounts reads the cgroup hierarchies of this mount namespace from
// /proc/self/mountinfo, bounded to 1 MiB lines.
func cgroupMounts() ([]cgroupMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []cgroupMount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 {
			continue
		}
		m := cgroupMount{Root: unescapeMount(a[3]), Target: unescapeMount(a[4])}
		switch b[0] {
		case "cgroup2":
			m.V2 = true
		case "cgroup":
			var opts []string
			for _, o := range strings.Split(b[2], ",") {
				if o != "rw" && o != "ro" {
					opts = append(opts, o)
				}
			}
			m.Options = strings.Join(opts, ",")
		default:
			continue
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// ownCgroup returns this process's cgroup path in the hierarchy a mount
// shows: v2's "0::" line, or the v1 line naming the mount's options.
func ownCgroup(m cgroupMount) (string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	want := strings.Split(m.Options, ",")
	slices.Sort(want)
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if m.V2 {
			if parts[0] == "0" && parts[1] == "" {
				return parts[2], nil
			}
			continue
		}
		have := strings.Split(parts[1], ",")
		slices.Sort(have)
		if parts[1] != "" && slices.Equal(have, want) {
			return parts[2], nil
		}
	}
	return "", fmt.Errorf("/proc/self/cgroup names no cgroup for the hierarchy on %s", m.Target)
}

// NodeCgroup is the cgroup, in every hierarchy the host mounts, that a
// container-platform node runs in: its kubelet and containers stay inside
// it, apart from other nodes on the same host, and see it as their root
// through a cgroup namespace.
type NodeCgroup struct {
	// dirs are the node's cgroup directories, one per hierarchy; orig
	// are the launcher's cgroups to return to before removing them.
	dirs, orig []string
}

// EnterNodeCgroup creates a cgroup named name below this process's own in
// every hierarchy and moves this process into it, so a child cloned with
// CLONE_NEWCGROUP has it as its cgroup namespace's root.
func EnterNodeCgroup(name string) (*NodeCgroup, error) {
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, fmt.Errorf("reading the cgroup mounts: %w", err)
	}
	nc := &NodeCgroup{}
	seen := map[string]bool{}
	for _, m := range mounts {
		key := m.Options
		if m.V2 {
			key = "cgroup2"
		}
		if seen[key] {
			continue // the same hierarchy mounted twice
		}
		seen[key] = true
		own, err := ownCgroup(m)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(m.Root, own)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // this process's cgroup is not visible through the mount
		}
		parent := filepath.Join(m.Target, rel)
		removeStale(parent)
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			nc.Remove()
			return nil, fmt.Errorf("creating cgroup %s: %w", dir, err)
		}
		nc.dirs = append(nc.dirs, dir)
		nc.orig = append(nc.orig, parent)
		// A v1 cpuset cgroup takes no task until it has cpus and mems.
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if data, err := os.ReadFile(filepath.Join(parent, f)); err == nil && !m.V2 {
				os.WriteFile(filepath.Join(dir, f), data, 0)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(os.Getpid())), 0); err != nil {
			nc.Remove()
			return nil, fmt.Errorf("moving into cgroup %s: %w", dir, err)
		}
	}
	return nc, nil
}

// Remove moves this process back to where it was and removes the node's
// cgroups and everything the node made below them. Processes that were
// just killed take a moment to leave; it retries for up to 5 s.
func (nc *NodeCgroup) Remove() error {
	for _, parent := range nc.orig {
		os.WriteFile(filepath.Join(parent, "cgroup.procs"), []byte(fmt.Sprint(os.Getpid())), 0)
	}
	var last error
	for _, dir := range nc.dirs {
		for try := 0; try < 50; try++ {
			if last = removeCgroupTree(dir); last == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return last
}

// removeStale removes the cgroups of nodes whose launcher is gone (killed
// with SIGKILL, it could not clean up): cairn-node-PID with no process PID.
func removeStale(parent string) {
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		pid, ok := strings.CutPrefix(e.Name(), "cairn-node-")
		if !ok || !e.IsDir() {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); errors.Is(err, os.ErrNotExist) {
			removeCgroupTree(filepath.Join(parent, e.Name()))
		}
	}
}

// removeCgroupTree removes a cgroup directory and its children, deepest
// first (cgroupfs takes rmdir only, on empty cgroups).
func removeCgroupTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("removing cgroup %s: %w", dir, err)
	}
	return nil
}

// mountCgroups mounts under root/sys/fs/cgroup the same hierarchies the
// host mounts on /sys/fs/cgroup, fresh, so that inside a cgroup namespace
// they show the node's own cgroup as their root: cgroup2 alone on a
// unified host; a tmpfs with one mount per v1 hierarchy (and the unified
// one beside them) on a hybrid host, where the kubelet then runs on
// cgroup v1.
func mountCgroups(root string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	base := filepath.Join(root, "sys/fs/cgroup")
	const flags = unix.MS_NODEV | unix.MS_NOSUID | unix.MS_NOEXEC
	for _, m := range mounts {
		if m.Target == "/sys/fs/cgroup" && m.V2 {
			return unix.Mount("cgroup2", base, "cgroup2", flags, "")
		}
	}
	if err := unix.Mount("cgroup", base, "tmpfs", flags, "mode=0755"); err != nil {
		return err
	}
	for _, m := range mounts {
		rel, ok := strings.CutPrefix(m.Target, "/sys/fs/cgroup/")
		if !ok || strings.Contains(rel, "/") {
			continue
		}
		dir := filepath.Join(base, rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		fstype, data := "cgroup", m.Options
		if m.V2 {
			fstype, data = "cgroup2", ""
		}
		if err := unix.Mount("cgroup", dir, fstype, flags, data); err != nil {
			return fmt.Errorf("mounting the %s cgroup hierarchy on %s: %w", cmp.Or(data, "unified"), dir, err)
		}
	}
	return nil
}
