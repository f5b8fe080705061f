package node

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/init/node/render"
	"github.com/cairn-os/cairn/init/supervise"
)

// What the apiserver loaded, without its metrics. kube-apiserver reads
// its encryption config when it starts (and refuses to start without
// it), so a file cairn wrote before the running process started is
// loaded. Only a file changed since (a key added, the write key moved),
// or one cairn did not write in this boot, needs the apiserver's own
// word, its metrics: a read of every metric it has, megabytes, which
// takes seconds on a slow CPU and longer than the client's 15 s under
// TCG.
//
// Both times compared are of the boot clock (CLOCK_BOOTTIME): when cairn
// wrote the file, kept in memory, and the process's start, from /proc.
// The file's own times are the wall clock's, which a step moves (a board
// without a battery-backed clock boots at a stale date until NTP sets
// it), so they are never compared with a process's start.

// configWrite is what cairn last wrote to the apiserver's encryption
// config in this boot, and when: on the boot clock, once the file was in
// place. The zero value: nothing written (or the clock unreadable).
type configWrite struct {
	hash string        // configHash of the content
	at   time.Duration // since boot
}

// configHash is the hash the apiserver's metric labels a config with.
func configHash(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// bootClock is how long ago the machine booted, suspend included: the
// clock of a process's start in /proc.
func bootClock() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, fmt.Errorf("reading the boot clock: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}

// wroteConfig records that cairn has just written data to the encryption
// config: call it once the file is in place.
func (a *atRest) wroteConfig(data []byte) {
	var w configWrite // the clock unreadable: as if nothing was written
	if at, err := bootClock(); err == nil {
		w = configWrite{hash: configHash(data), at: at}
	}
	a.mu.Lock()
	a.written = w
	a.mu.Unlock()
}

func (a *atRest) lastWrite() configWrite {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.written
}

// wroteFiles records the encryption config among files just written (the
// apiserver's, at boot) as cairn's write.
func (s *server) wroteFiles(files []render.File) {
	if s.rest == nil {
		return
	}
	for _, f := range files {
		if f.Path == render.EncryptionFile(s.l) {
			s.rest.wroteConfig(f.Data)
		}
	}
}

// loadedAtStart says whether a process that started at started (on the
// boot clock, in /proc's ticks) read the config whose content hashes to
// hash: cairn wrote that content, and wrote it before the process
// started. Anything unknown (zero) says no; so does a write in the tick
// the process started in.
func loadedAtStart(w configWrite, hash string, started time.Duration) bool {
	return w.hash != "" && w.hash == hash && w.at > 0 && started > 0 && w.at < started
}

// userHZ is the unit of /proc/PID/stat's times (USER_HZ, 100 on every
// architecture Linux has).
const userHZ = 100

// apiserverStarted is when the running kube-apiserver started, on the
// boot clock (rounded down to /proc's tick), from the PID the supervisor
// gives for it and /proc; zero when it is not running, or its process is
// not known for certain to be the supervisor's child of that PID all
// along.
func (s *server) apiserverStarted() time.Duration {
	if s.o.Services == nil {
		return 0
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
		return 0
	}
	start, ppid, err := processStart("/proc", before.PID)
	after, ok := find()
	// A PID is not reused before its parent, the supervisor, has reaped
	// it; the same PID and run on both sides, and the process a child of
	// this one, is the apiserver that was asked about.
	if err != nil || !ok || after.PID != before.PID || after.Restarts != before.Restarts || ppid != os.Getpid() {
		return 0
	}
	return start
}

// processStart reads /proc/PID/stat under proc: how long after boot the
// process started (field 22, on the boot clock, in ticks), and its
// parent's PID.
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
