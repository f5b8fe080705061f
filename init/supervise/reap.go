package supervise

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// orphanGrace is how long an unknown zombie child must stay a zombie before
// the reaper takes it: code that started a child without StartProcess is
// already blocked in Wait and reaps its child at once, an orphan never is.
const orphanGrace = 500 * time.Millisecond

// Reaper collects orphans: processes re-parented to this process (PID 1,
// or a child subreaper) whose parent died. It never calls wait4(-1): it
// finds zombie children in /proc and reaps only those nobody waits for, so
// a supervisor's exec.Cmd.Wait always gets its child's real exit status.
type Reaper struct {
	// Proc is where procfs is mounted; "/proc" when empty.
	Proc string

	mu    sync.Mutex
	owned map[int]bool      // children started through StartProcess
	seen  map[int]time.Time // unknown zombie children, first seen
	now   func() time.Time
}

var defaultReaper = &Reaper{}

// DefaultReaper is the process-wide reaper StartProcess registers with.
func DefaultReaper() *Reaper { return defaultReaper }

// StartProcess starts cmd and registers its PID so the reaper never takes
// its exit status; collect it with cmd.Wait and then call Forget.
func StartProcess(cmd *exec.Cmd) error { return defaultReaper.Start(cmd) }

// Forget unregisters a child started with StartProcess once it was waited for.
func Forget(pid int) { defaultReaper.Forget(pid) }

// Start starts cmd while holding the reaper's lock, so the child is known
// before the reaper could see it exit.
func (r *Reaper) Start(cmd *exec.Cmd) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	if r.owned == nil {
		r.owned = map[int]bool{}
	}
	r.owned[cmd.Process.Pid] = true
	return nil
}

// Forget drops pid from the children the reaper leaves alone.
func (r *Reaper) Forget(pid int) {
	r.mu.Lock()
	delete(r.owned, pid)
	r.mu.Unlock()
}

// Run reaps orphans whenever a child exits (SIGCHLD) and on a slow timer
// as a safety net, until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGCHLD)
	defer signal.Stop(sig)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	var again <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
		case <-tick.C:
		case <-again:
		}
		_, pending := r.Reap()
		again = nil
		if pending {
			again = time.After(orphanGrace)
		}
	}
}

// Reap collects every orphaned zombie child it can now and reports how
// many it reaped and whether some zombies wait for their grace period.
func (r *Reaper) Reap() (reaped int, pending bool) {
	proc := r.Proc
	if proc == "" {
		proc = "/proc"
	}
	now := time.Now
	if r.now != nil {
		now = r.now
	}
	self := os.Getpid()
	zombies := zombieChildren(proc, self)

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[int]time.Time{}
	}
	alive := map[int]bool{}
	for _, pid := range zombies {
		if r.owned[pid] {
			continue
		}
		alive[pid] = true
		first, ok := r.seen[pid]
		if !ok {
			r.seen[pid] = now()
			pending = true
			continue
		}
		if now().Sub(first) < orphanGrace {
			pending = true
			continue
		}
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err == nil && got == pid {
			reaped++
			delete(alive, pid)
			slog.Debug(fmt.Sprintf("reaped orphan %d (%s)", pid, describe(ws)))
		}
	}
	for pid := range r.seen {
		if !alive[pid] {
			delete(r.seen, pid)
		}
	}
	return reaped, pending
}

// zombieChildren lists the PIDs in /proc that are zombies whose parent is ppid.
func zombieChildren(proc string, ppid int) []int {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(proc + "/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) S ppid ..."; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(data[i+1:])
		if len(f) < 2 || string(f[0]) != "Z" {
			continue
		}
		if p, err := strconv.Atoi(string(f[1])); err == nil && p == ppid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ExitStatus is a process's status as a shell reports it: the exit code,
// or 128 plus the signal that killed it.
func ExitStatus(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

func describe(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return "status " + strconv.Itoa(ws.ExitStatus())
}
