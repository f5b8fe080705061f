//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel's process events connector (linux/cn_proc.h): every fork,
// exec and exit on the machine, multicast to whoever listens (root).
const (
	cnIdxProc      = 1
	cnValProc      = 1
	procCnListen   = 1
	procCnIgnore   = 2
	procEventFork  = 0x00000001
	procEventExec  = 0x00000002
	procEventExit  = 0x80000000
	nlmsgHdrLen    = 16 // struct nlmsghdr
	cnMsgLen       = 20 // struct cn_msg
	procEventHdr   = 16 // what, cpu, timestamp_ns of struct proc_event
	procEventStart = nlmsgHdrLen + cnMsgLen + procEventHdr
)

// procEvent is one event of the connector: an exec of tgid, a fork of
// child (a new process, not a thread) by parent, or the exit of tgid.
type procEvent struct {
	what          uint32
	tgid          uint32 // exec, exit
	parent, child uint32 // fork: the tgids
	thread        bool   // fork of a thread, or exit of one
}

// parseProcEvents reads the events of one datagram (netlink messages,
// each a cn_msg holding a proc_event); what it does not know it skips.
func parseProcEvents(b []byte) []procEvent {
	var out []procEvent
	ne := binary.NativeEndian
	for len(b) >= nlmsgHdrLen {
		n := int(ne.Uint32(b))
		if n < nlmsgHdrLen || n > len(b) {
			break
		}
		m := b[:n]
		b = b[min((n+3)&^3, len(b)):]
		if len(m) < procEventStart+8 {
			continue
		}
		if ne.Uint32(m[nlmsgHdrLen:]) != cnIdxProc || ne.Uint32(m[nlmsgHdrLen+4:]) != cnValProc {
			continue
		}
		e := procEvent{what: ne.Uint32(m[nlmsgHdrLen+cnMsgLen:])}
		d := m[procEventStart:]
		switch e.what {
		case procEventExec:
			e.tgid = ne.Uint32(d[4:])
		case procEventExit:
			e.tgid = ne.Uint32(d[4:])
			e.thread = ne.Uint32(d[0:]) != e.tgid
		case procEventFork:
			if len(d) < 16 {
				continue
			}
			e.parent = ne.Uint32(d[4:])
			childPid, childTgid := ne.Uint32(d[8:]), ne.Uint32(d[12:])
			e.child, e.thread = childTgid, childPid != childTgid
		default:
			continue
		}
		out = append(out, e)
	}
	return out
}

// listenMessage is the netlink message that starts (or stops) the events.
func listenMessage(op uint32) []byte {
	ne := binary.NativeEndian
	msg := make([]byte, nlmsgHdrLen+cnMsgLen+4)
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.NLMSG_DONE)
	ne.PutUint32(msg[12:], uint32(os.Getpid()))
	ne.PutUint32(msg[nlmsgHdrLen:], cnIdxProc)
	ne.PutUint32(msg[nlmsgHdrLen+4:], cnValProc)
	ne.PutUint16(msg[nlmsgHdrLen+16:], 4)
	ne.PutUint32(msg[nlmsgHdrLen+cnMsgLen:], op)
	return msg
}

// maxForks bounds the fork records kept to name the parent of a process
// that exits before its exec is looked at.
const maxForks = 1 << 16

// execTracer counts the execs of the nodes' processes: by node, and by
// who ran what (the parent's program → the new program).
type execTracer struct {
	// markers maps a cgroup path element ("cairn-node-1234") to a node.
	markers map[string]string
	fd      int

	mu     sync.Mutex
	counts map[string]map[string]int // node → "parent → program" → execs
	paths  map[string]string         // "parent → program" → the path it was run by
	total  map[string]int
	// lost counts events the kernel dropped (the socket's buffer was
	// full); gone, execs of processes that had exited before they were
	// looked at and whose node could not be told.
	lost, gone int
	forks      map[uint32]uint32
	started    time.Time
	err        error
	stopping   atomic.Bool
	done       chan struct{}
}

// startExecTracer starts counting the execs in the nodes' cgroups
// (markers: cgroup path element → node name) until stop.
func startExecTracer(markers map[string]string) (*execTracer, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("the process events connector (netlink): %w", err)
	}
	// A busy machine forks a lot: a large buffer loses fewer events.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("the process events connector: bind (needs root): %w", err)
	}
	if err := unix.Sendto(fd, listenMessage(procCnListen), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("the process events connector: listen: %w", err)
	}
	t := &execTracer{markers: markers, fd: fd, counts: map[string]map[string]int{}, paths: map[string]string{}, total: map[string]int{},
		forks: map[uint32]uint32{}, started: time.Now(), done: make(chan struct{})}
	go t.run()
	return t, nil
}

func (t *execTracer) run() {
	defer close(t.done)
	buf := make([]byte, 64<<10)
	for {
		if t.stopping.Load() {
			return
		}
		n, from, err := unix.Recvfrom(t.fd, buf, 0)
		switch {
		case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOBUFS):
			t.mu.Lock()
			t.lost++
			t.mu.Unlock()
			continue
		case err != nil:
			t.mu.Lock()
			t.err = err
			t.mu.Unlock()
			return
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue // only the kernel speaks for the connector
		}
		for _, e := range parseProcEvents(buf[:n]) {
			t.handle(e)
		}
	}
}

func (t *execTracer) handle(e procEvent) {
	switch e.what {
	case procEventFork:
		if e.thread {
			return
		}
		t.mu.Lock()
		if len(t.forks) >= maxForks {
			clear(t.forks)
		}
		t.forks[e.child] = e.parent
		t.mu.Unlock()
	case procEventExit:
		if !e.thread {
			t.mu.Lock()
			delete(t.forks, e.tgid)
			t.mu.Unlock()
		}
	case procEventExec:
		t.exec(int(e.tgid))
	}
}

// exec looks at a process that has just exec'd: its node (by cgroup),
// its parent and its program.
func (t *execTracer) exec(pid int) {
	dir := "/proc/" + strconv.Itoa(pid)
	// The command line first: a short-lived program (iptables, a CNI
	// plugin) may be gone a millisecond later, and then only its comm
	// (the name it was run by, 15 bytes) is left while it is a zombie.
	// Rows are by that name, so both ways of seeing it count together;
	// the path it was run by is kept beside the name.
	child, path := "(exited before it was looked at)", ""
	if cmd, err := readPrefix(dir+"/cmdline", 4096); err == nil && len(cmd) > 0 {
		a0 := argv0(cmd)
		path = clip(a0, 80)
		// As the kernel names it in comm: the first 15 bytes.
		child = filepath.Base(a0)
		child = child[:min(len(child), 15)]
		if exe, err := os.Readlink(dir + "/exe"); err == nil && filepath.Base(exe) != filepath.Base(path) {
			path += " → " + filepath.Base(exe)
		}
	} else if comm, err := readPrefix(dir+"/comm", 64); err == nil && len(comm) > 0 {
		child = strings.TrimSpace(string(comm))
	}
	var ppid int
	node := ""
	if cg, err := readPrefix(dir+"/cgroup", 64<<10); err == nil {
		node = t.nodeOf(string(cg))
		if node == "" && len(cg) > 0 {
			return // not a node's
		}
	}
	if st, err := readPrefix(dir+"/stat", 4097); err == nil {
		if p, err := parseStat(strings.TrimSpace(string(st))); err == nil {
			ppid = p.ppid
		}
	}
	t.mu.Lock()
	if ppid == 0 {
		ppid = int(t.forks[uint32(pid)])
	}
	t.mu.Unlock()
	parent := "?"
	if ppid > 0 {
		pdir := "/proc/" + strconv.Itoa(ppid)
		if node == "" {
			if cg, err := readPrefix(pdir+"/cgroup", 64<<10); err == nil {
				if node = t.nodeOf(string(cg)); node == "" && len(cg) > 0 {
					return // not a node's
				}
			}
		}
		if cmd, err := readPrefix(pdir+"/cmdline", 4096); err == nil && len(cmd) > 0 {
			parent = clip(filepath.Base(argv0(cmd)), 40)
		} else if comm, err := readPrefix(pdir+"/comm", 64); err == nil {
			parent = strings.TrimSpace(string(comm))
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if node == "" {
		t.gone++
		return
	}
	if t.counts[node] == nil {
		t.counts[node] = map[string]int{}
	}
	key := parent + " → " + child
	t.counts[node][key]++
	if path != "" && t.paths[key] == "" {
		t.paths[key] = path
	}
	t.total[node]++
}

// nodeOf is the node a /proc/PID/cgroup belongs to, or "".
func (t *execTracer) nodeOf(cgroup string) string {
	for line := range strings.SplitSeq(cgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for elem := range strings.SplitSeq(parts[2], "/") {
			if n, ok := t.markers[elem]; ok {
				return n
			}
		}
	}
	return ""
}

// stop ends the counting and returns what was counted.
func (t *execTracer) stop() execCounts {
	// The receiver looks at the flag at least once a second (the
	// socket's receive timeout); the socket is closed after it is gone.
	t.stopping.Store(true)
	<-t.done
	unix.Sendto(t.fd, listenMessage(procCnIgnore), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	unix.Close(t.fd)
	t.mu.Lock()
	defer t.mu.Unlock()
	c := execCounts{ByNode: t.counts, Paths: t.paths, Total: t.total, Lost: t.lost, Gone: t.gone, Seconds: time.Since(t.started).Seconds()}
	if t.err != nil {
		c.Error = t.err.Error()
	}
	return c
}

// execCounts are the execs of a window.
type execCounts struct {
	ByNode map[string]map[string]int `json:"by_node"`
	// Paths are the paths each "parent → program" was run by (the
	// first seen; with the executable's name when it differs).
	Paths map[string]string `json:"paths"`
	Total map[string]int    `json:"total"`
	Lost  int               `json:"lost_batches"`
	Gone  int               `json:"unattributed"`
	// Seconds is how long the counting ran.
	Seconds float64 `json:"seconds"`
	// Error is why the counting stopped early, if it did.
	Error string `json:"error,omitempty"`
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
