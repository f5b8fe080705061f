//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroupMount is one cgroup hierarchy of this machine: where it is
// mounted, the part of the hierarchy it shows, and its controllers
// (empty for v2).
type cgroupMount struct {
	root, target string
	v2           bool
	controllers  []string
}

// parseCgroupMounts reads the cgroup hierarchies of a /proc/self/mountinfo.
func parseCgroupMounts(data string) []cgroupMount {
	var out []cgroupMount
	for line := range strings.SplitSeq(data, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 {
			continue
		}
		m := cgroupMount{root: a[3], target: a[4]}
		switch b[0] {
		case "cgroup2":
			m.v2 = true
		case "cgroup":
			for o := range strings.SplitSeq(b[2], ",") {
				if o != "rw" && o != "ro" && !strings.Contains(o, "=") {
					m.controllers = append(m.controllers, o)
				}
			}
		default:
			continue
		}
		out = append(out, m)
	}
	return out
}

// cgroupLines reads /proc/PID/cgroup: the path of each hierarchy, by
// its controllers ("cpu,cpuacct") or "" for v2.
func cgroupLines(data string) map[string]string {
	out := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			out[parts[1]] = parts[2]
		}
	}
	return out
}

// nodeCgroup is where a container-platform node's CPU and memory are
// accounted on this machine: the cgroup its launcher made and entered
// (cairn-node-PID), in the hierarchy that has each controller.
type nodeCgroup struct {
	// cpu is a v1 cpuacct directory (cpuacct.usage, ns) or, when cpuV2,
	// a v2 directory (cpu.stat usage_usec).
	cpu   string
	cpuV2 bool
	// mem is a v1 memory directory (memory.usage_in_bytes, memory.stat
	// total_rss) or, when memV2, a v2 directory (memory.current, anon).
	mem   string
	memV2 bool
}

// findNodeCgroup locates the cgroups of the process pid (a node's
// launcher) from /proc/PID/cgroup and this machine's cgroup mounts.
func findNodeCgroup(pid int) (nodeCgroup, error) {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nodeCgroup{}, err
	}
	cg, err := readPrefix(fmt.Sprintf("/proc/%d/cgroup", pid), 64<<10)
	if err != nil {
		return nodeCgroup{}, err
	}
	return locateNodeCgroup(parseCgroupMounts(string(info)), cgroupLines(string(cg))), nil
}

func locateNodeCgroup(mounts []cgroupMount, lines map[string]string) nodeCgroup {
	var nc nodeCgroup
	dir := func(m cgroupMount, path string) string {
		rel, err := filepath.Rel(m.root, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			return ""
		}
		return filepath.Join(m.target, rel)
	}
	// lineFor is the path of the v1 line naming controller c.
	lineFor := func(c string) (string, bool) {
		for key, path := range lines {
			for k := range strings.SplitSeq(key, ",") {
				if k == c {
					return path, true
				}
			}
		}
		return "", false
	}
	var v2dir string
	for _, m := range mounts {
		if m.v2 {
			if p, ok := lines[""]; ok && v2dir == "" {
				v2dir = dir(m, p)
			}
			continue
		}
		for _, c := range m.controllers {
			path, ok := lineFor(c)
			if !ok {
				continue
			}
			switch {
			case c == "cpuacct" && nc.cpu == "":
				nc.cpu = dir(m, path)
			case c == "memory" && nc.mem == "":
				nc.mem = dir(m, path)
			}
		}
	}
	if nc.cpu == "" && v2dir != "" {
		nc.cpu, nc.cpuV2 = v2dir, true
	}
	if nc.mem == "" && v2dir != "" {
		nc.mem, nc.memV2 = v2dir, true
	}
	return nc
}

// cpuNanos is the CPU time the cgroup and its descendants have used.
func (nc nodeCgroup) cpuNanos() (uint64, error) {
	if nc.cpu == "" {
		return 0, errors.New("no cpuacct or cgroup v2 hierarchy holds the node")
	}
	if !nc.cpuV2 {
		data, err := readPrefix(filepath.Join(nc.cpu, "cpuacct.usage"), 64)
		if err != nil {
			return 0, err
		}
		return strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	}
	usec, err := statField(filepath.Join(nc.cpu, "cpu.stat"), "usage_usec")
	return usec * 1000, err
}

// memory is the cgroup's memory use and its anonymous part, in bytes.
func (nc nodeCgroup) memory() (usage, anon uint64, err error) {
	if nc.mem == "" {
		return 0, 0, errors.New("no memory hierarchy holds the node")
	}
	if nc.memV2 {
		data, err := readPrefix(filepath.Join(nc.mem, "memory.current"), 64)
		if err != nil {
			return 0, 0, err
		}
		usage, err = strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
		if err != nil {
			return 0, 0, err
		}
		anon, err = statField(filepath.Join(nc.mem, "memory.stat"), "anon")
		return usage, anon, err
	}
	data, err := readPrefix(filepath.Join(nc.mem, "memory.usage_in_bytes"), 64)
	if err != nil {
		return 0, 0, err
	}
	usage, err = strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, 0, err
	}
	anon, err = statField(filepath.Join(nc.mem, "memory.stat"), "total_rss")
	return usage, anon, err
}

// statField reads one "key value" line of a cgroup's stat file.
func statField(path, key string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s has no %s", path, key)
}
