//go:build linux

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is the unit of /proc/PID/stat's times (USER_HZ): 100 on every
// Linux architecture cairn runs on.
const clockTicks = 100

// proc is what the benchmark reads of one process.
type proc struct {
	pid, ppid int
	comm      string
	// start is the start time in clock ticks after boot: with pid, it
	// names one process across samples.
	start uint64
	// ticks is utime+stime+cutime+cstime: the process's own CPU and that
	// of every child it has waited for. Summed over a closed tree of
	// processes it only ever grows, whatever starts and exits in between,
	// so short-lived children (execs) count for the parent that ran them.
	ticks uint64
	// argv0 is the first word of the command line (the applet's name for
	// the multicall binary); cgroup is the process's cgroup path, the
	// first of /proc/PID/cgroup's lines that names one.
	argv0, cgroup string
	// rss and pss are from smaps_rollup, in KiB (0 when not read).
	rss, pss uint64
}

// name is the process's program name: argv[0]'s last element, else comm.
func (p *proc) name() string {
	if p.argv0 != "" {
		return filepath.Base(p.argv0)
	}
	return p.comm
}

// parseStat reads one /proc/PID/stat line. The command name (field 2) is
// in parentheses and may hold spaces or parentheses itself, so the fields
// are counted after its last ')'.
func parseStat(line string) (proc, error) {
	if len(line) > 4096 {
		return proc{}, errors.New("stat line longer than 4096 bytes")
	}
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return proc{}, errors.New("stat line without a command name")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil {
		return proc{}, fmt.Errorf("stat pid %q: %w", line[:open], err)
	}
	f := strings.Fields(line[end+1:])
	// f[0] is field 3 (state): ppid is field 4, utime..cstime 14-17,
	// starttime 22.
	if len(f) < 20 {
		return proc{}, fmt.Errorf("stat line with %d fields after the command name; want at least 20", len(f))
	}
	var n [6]uint64
	for i, field := range []int{1, 11, 12, 13, 14, 19} {
		v, err := strconv.ParseInt(f[field], 10, 64)
		if err != nil || v < 0 {
			return proc{}, fmt.Errorf("stat field %d %q is not a count", field+3, f[field])
		}
		n[i] = uint64(v)
	}
	return proc{pid: pid, ppid: int(n[0]), comm: line[open+1 : end], ticks: n[1] + n[2] + n[3] + n[4], start: n[5]}, nil
}

// readPrefix reads at most n bytes of a file (procfs files that may be
// long, like a command line).
func readPrefix(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, n))
}

// argv0 is the first NUL-terminated word of a /proc/PID/cmdline.
func argv0(cmdline []byte) string {
	if i := bytes.IndexByte(cmdline, 0); i >= 0 {
		cmdline = cmdline[:i]
	}
	return string(cmdline)
}

// appletOf is the applet a re-executed cairn-node runs, from its
// /proc/PID/environ (CAIRN_NODE_APPLET, image/components/cmd/cairn-node);
// nothing else of the environment is kept.
func appletOf(environ []byte) string {
	for kv := range bytes.SplitSeq(environ, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("CAIRN_NODE_APPLET=")); ok && len(v) <= 64 {
			return string(v)
		}
	}
	return ""
}

// parseCgroup picks the path a /proc/PID/cgroup names: the v1 line of the
// cpuacct controller when there is one (where CPU is accounted on a
// hybrid host), else the v2 line ("0::PATH").
func parseCgroup(data []byte) string {
	v2 := ""
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
			continue
		}
		for c := range strings.SplitSeq(parts[1], ",") {
			if c == "cpuacct" {
				return parts[2]
			}
		}
	}
	return v2
}

// parseSmapsRollup reads Rss and Pss (KiB) of a /proc/PID/smaps_rollup.
func parseSmapsRollup(r io.Reader) (rss, pss uint64) {
	sc := bufio.NewScanner(io.LimitReader(r, 64<<10))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			rss = v
		case "Pss:":
			pss = v
		}
	}
	return rss, pss
}

// procTable is every process of the machine at one moment, by PID, with
// the children of each.
type procTable struct {
	procs    map[int]*proc
	children map[int][]int
}

// readProcs reads /proc/*/stat of every process (a process that exits
// meanwhile is left out).
func readProcs(root string) (*procTable, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	t := &procTable{procs: map[int]*proc{}, children: map[int][]int{}}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := readPrefix(filepath.Join(root, e.Name(), "stat"), 4097)
		if err != nil {
			continue
		}
		p, err := parseStat(strings.TrimSpace(string(data)))
		if err != nil {
			continue
		}
		t.procs[p.pid] = &p
		t.children[p.ppid] = append(t.children[p.ppid], p.pid)
	}
	return t, nil
}

// tree is pid and every process below it, parents before children.
func (t *procTable) tree(pid int) []*proc {
	var out []*proc
	var walk func(int, int)
	walk = func(p, depth int) {
		q, ok := t.procs[p]
		if !ok || depth > 64 {
			return
		}
		out = append(out, q)
		for _, c := range t.children[p] {
			walk(c, depth+1)
		}
	}
	walk(pid, 0)
	return out
}

// details reads the command line and cgroup of each process, and its
// memory when memory is set.
func details(root string, ps []*proc, memory bool) {
	for _, p := range ps {
		dir := filepath.Join(root, strconv.Itoa(p.pid))
		if data, err := readPrefix(filepath.Join(dir, "cmdline"), 4096); err == nil {
			p.argv0 = argv0(data)
		}
		if b := filepath.Base(p.argv0); b == "cairn-node" || b == "cairn-pod" {
			// The runc shim re-executes the multicall binary by its own
			// path, with the applet's name in its environment.
			if env, err := readPrefix(filepath.Join(dir, "environ"), 64<<10); err == nil {
				if a := appletOf(env); a != "" {
					p.argv0 = a
				}
			}
		}
		if data, err := readPrefix(filepath.Join(dir, "cgroup"), 64<<10); err == nil {
			p.cgroup = parseCgroup(data)
		}
		if memory {
			if f, err := os.Open(filepath.Join(dir, "smaps_rollup")); err == nil {
				p.rss, p.pss = parseSmapsRollup(f)
				f.Close()
			}
		}
	}
}

// inPod says whether a cgroup path is one the kubelet made for a pod.
func inPod(cgroup string) bool {
	return strings.Contains(cgroup, "/kubepods")
}

// classify names the component of each process of a tree (parents before
// children, as tree returns it): the root and the processes named in
// roots are rootName; a process in a pod's cgroup whose parent is not
// (a container's first process) is "pod NAME", and its descendants with
// it; a child of a root is its own program's name (a supervised
// service: kube-apiserver, containerd, a containerd-shim); every other
// process belongs with its parent.
func classify(ps []*proc, roots map[int]bool, rootName string) map[int]string {
	comp := map[int]string{}
	for _, p := range ps {
		parent, hasParent := comp[p.ppid]
		switch {
		case roots[p.pid] || !hasParent:
			comp[p.pid] = rootName
		case inPod(p.cgroup) && !podOf(parent):
			comp[p.pid] = "pod " + p.name()
		case roots[p.ppid]:
			comp[p.pid] = p.name()
		default:
			comp[p.pid] = parent
		}
	}
	return comp
}

func podOf(component string) bool { return strings.HasPrefix(component, "pod ") }

// usage is one component's figures in one sample.
type usage struct {
	ticks    uint64
	rss, pss uint64 // KiB
	procs    int
}

// byComponent sums the processes of a tree per component.
func byComponent(ps []*proc, comp map[int]string) map[string]usage {
	out := map[string]usage{}
	for _, p := range ps {
		c := comp[p.pid]
		u := out[c]
		u.ticks += p.ticks
		u.rss += p.rss
		u.pss += p.pss
		u.procs++
		out[c] = u
	}
	return out
}
