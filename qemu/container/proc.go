// Package container runs the pieces of a local cairn cluster on this host:
// a network namespace with a bridge (Network), nodes of the container
// platform (the init as PID 1 of new namespaces on a veth into the bridge),
// and Debian's datastore servers (PostgreSQL, MariaDB, etcd) listening on
// the bridge only. Every long-running process is started detached (its own
// session, its output in a log file) and identified by its PID and start
// time (Proc), so a later command can find and stop it. It needs root.
package container

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc identifies one process across commands: a PID alone may be reused
// once the process is gone, the PID with its start time may not.
type Proc struct {
	PID int `json:"pid"`
	// Start is the process's start time in clock ticks after boot
	// (field 22 of /proc/PID/stat).
	Start uint64 `json:"start"`
}

// procStat is what cairn reads of /proc/PID/stat.
type procStat struct {
	state byte
	start uint64
}

// parseStat reads the state and start time of a /proc/PID/stat line. The
// command name (field 2) is in parentheses and may hold spaces or
// parentheses itself, so the fields are counted after its last ')'.
func parseStat(line string) (procStat, error) {
	if len(line) > 4096 {
		return procStat{}, errors.New("stat line longer than 4096 bytes")
	}
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return procStat{}, errors.New("stat line without a command name")
	}
	f := strings.Fields(line[i+1:])
	// f[0] is field 3 (state); field 22 (starttime) is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("stat line with %d fields after the command name; want at least 20", len(f))
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("stat start time %q: %w", f[19], err)
	}
	return procStat{state: f[0][0], start: start}, nil
}

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(strings.TrimSpace(string(data)))
}

// Alive says whether the process still runs: same PID, same start time, not
// a zombie.
func (p Proc) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	st, err := readStat(p.PID)
	return err == nil && st.start == p.Start && st.state != 'Z' && st.state != 'X'
}

// Stop sends sig, waits up to grace for the process to end, then kills it
// and waits a little more. A process that is gone already is not an error.
func (p Proc) Stop(sig syscall.Signal, grace time.Duration) error {
	if !p.Alive() {
		return nil
	}
	syscall.Kill(p.PID, sig)
	if p.waitGone(grace) {
		return nil
	}
	syscall.Kill(p.PID, syscall.SIGKILL)
	if p.waitGone(10 * time.Second) {
		return nil
	}
	return fmt.Errorf("process %d is still there 10s after SIGKILL", p.PID)
}

func (p Proc) waitGone(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for p.Alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// StartDetached starts cmd in a session of its own with standard input
// from /dev/null and its output appended to the file log (created 0600),
// so that it outlives the command that started it, and returns its
// identity. The caller must not Wait for it beyond what Reap does.
func StartDetached(cmd *exec.Cmd, log string) (Proc, error) {
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return Proc{}, err
	}
	defer f.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return Proc{}, err
	}
	defer null.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, f, f
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	if err := cmd.Start(); err != nil {
		return Proc{}, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	// Reap it should it end while this program still runs, so Alive
	// sees it gone rather than a zombie of ours.
	go cmd.Wait()
	for range 50 {
		st, err := readStat(cmd.Process.Pid)
		if err == nil {
			return Proc{PID: cmd.Process.Pid, Start: st.start}, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return Proc{PID: cmd.Process.Pid}, fmt.Errorf("started %s as process %d but cannot read its /proc entry", cmd.Path, cmd.Process.Pid)
}
