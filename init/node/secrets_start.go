package node

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/init/supervise"
)

// What the apiserver loaded, without its metrics. kube-apiserver reads
// its encryption config when it starts (and refuses to start without
// it), so a file that had its content before the running process started
// is loaded. Only a file changed since (a key added, the write key moved)
// needs the apiserver's own word, its metrics: a read of every metric it
// has, megabytes, which takes seconds on a slow CPU and longer than the
// client's 15 s under TCG. At boot, and after the apiserver restarts, the
// metrics are not read at all.

// startMargin is how much earlier than the process's start the file must
// have changed: far more than the granularity of the clocks compared (a
// file's times come from the kernel's coarse clock, a process's start is
// in clock ticks of 10 ms) and than what the wall clock can drift from the
// boot clock meanwhile. A file written less than this before the apiserver
// started (an external etcd, which the apiserver does not wait for) is
// confirmed from the metrics.
var startMargin = time.Second

// userHZ is the unit of /proc/PID/stat's times (USER_HZ, 100 on every
// architecture Linux has).
const userHZ = 100

// loadedAtStart says whether a process that started at started read a
// file whose content is as it was at changed: it changed more than
// startMargin before. Either unknown (zero) says no.
func loadedAtStart(changed, started time.Time) bool {
	return !changed.IsZero() && !started.IsZero() && changed.Add(startMargin).Before(started)
}

// fileChanged is when path's content last changed: the later of its
// modification and its inode's change (a rename into place is the
// latter). Zero when it cannot be read.
func fileChanged(path string) time.Time {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return time.Time{}
	}
	m, c := time.Unix(st.Mtim.Unix()), time.Unix(st.Ctim.Unix())
	if c.After(m) {
		return c
	}
	return m
}

// apiserverStarted is when the running kube-apiserver started, from the
// PID the supervisor gives for it and /proc; zero when it is not running,
// or its process is not known for certain to be the supervisor's child
// of that PID all along.
func (s *server) apiserverStarted() time.Time {
	if s.o.Services == nil {
		return time.Time{}
	}
	find := func() (supervise.Status, bool) {
		for _, st := range s.o.Services.Status() {
			if st.Name == "kube-apiserver" {
				return st, st.PID > 0 && (st.State == supervise.Running || st.State == supervise.Ready)
			}
		}
		return supervise.Status{}, false
	}
	before, ok := find()
	if !ok {
		return time.Time{}
	}
	start, ppid, err := processStart("/proc", before.PID)
	after, ok := find()
	// A PID is not reused before its parent, the supervisor, has reaped
	// it; the same PID and run on both sides, and the process a child of
	// this one, is the apiserver that was asked about.
	if err != nil || !ok || after.PID != before.PID || after.Restarts != before.Restarts || ppid != os.Getpid() {
		return time.Time{}
	}
	var boot unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot); err != nil {
		return time.Time{}
	}
	// The wall clock at boot, as it is now: a process's start counts from
	// boot, and the file's times are wall-clock times.
	booted := time.Now().Add(-time.Duration(boot.Nano()))
	return booted.Add(start)
}

// processStart reads /proc/PID/stat under proc: how long after boot the
// process started, and its parent's PID.
func processStart(proc string, pid int) (since time.Duration, ppid int, err error) {
	data, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, err
	}
	// "PID (COMM) STATE PPID …": COMM may hold anything, ")" too.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	// After COMM: state (field 3), ppid (4), …, starttime (22).
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: parent %q", pid, f[1])
	}
	ticks, err := strconv.ParseUint(f[19], 10, 63)
	if err != nil || ticks > uint64(1<<62)/uint64(time.Second/userHZ) {
		return 0, 0, fmt.Errorf("/proc/%d/stat: start time %q", pid, f[19])
	}
	return time.Duration(ticks) * (time.Second / userHZ), ppid, nil
}
