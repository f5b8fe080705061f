package supervise

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Options configure a Supervisor.
type Options struct {
	// Log receives each state change as one console line's text
	// ("service kubelet: running (pid 412)"); slog.Info when nil.
	Log func(text string)
	// Raw receives the output of services with Console set, already
	// formatted as "<name>| <line>\n"; standard output when nil.
	Raw func(text string)
	// LogDir, when set, keeps each service's output in LogDir/<name>.log,
	// rotated by size. Set it only when the directory is persistent.
	LogDir string
	// RingSize is how many bytes of recent output are kept per service
	// (64 KiB when zero).
	RingSize int
	// LogMax and LogKeep bound each log file (4 MiB and 3 old files when zero).
	LogMax  int64
	LogKeep int
	// Reaper registers the children; DefaultReaper when nil.
	Reaper *Reaper
}

// State is where a service is in its life.
type State int

const (
	Waiting    State = iota // for the services it needs
	Starting                // being started
	Running                 // running, not yet ready
	Ready                   // running and ready
	Restarting              // exited, waiting to restart
	Exited                  // exited for good (restart policy)
	Stopped                 // stopped by the supervisor
)

func (s State) String() string {
	return [...]string{"waiting", "starting", "running", "ready", "restarting", "exited", "stopped"}[s]
}

// Status is a snapshot of one service.
type Status struct {
	Name     string
	State    State
	PID      int // 0 unless running
	Restarts int
	// LastStatus is the last exit status (128+N for signal N), -1 before any exit.
	LastStatus int
}

// Supervisor runs services. Create it with New.
type Supervisor struct {
	o Options

	mu       sync.Mutex
	units    map[string]*unit
	order    []string
	changed  chan struct{} // closed and replaced on every state change
	stopping bool
}

type unit struct {
	svc      Service
	state    State
	pid      int
	restarts int
	last     int
	ready    bool // has been ready at least once
	ring     *Ring
	fatal    fatalWords // this run's last fatal line
	log      *LogFile
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// New returns a Supervisor with no services.
func New(o Options) *Supervisor {
	if o.Log == nil {
		o.Log = func(t string) { slog.Info(t) }
	}
	if o.Raw == nil {
		o.Raw = func(t string) { io.WriteString(os.Stdout, t) }
	}
	if o.RingSize <= 0 {
		o.RingSize = 64 << 10
	}
	if o.LogMax <= 0 {
		o.LogMax = 4 << 20
	}
	if o.LogKeep <= 0 {
		o.LogKeep = 3
	}
	if o.Reaper == nil {
		o.Reaper = defaultReaper
	}
	return &Supervisor{o: o, units: map[string]*unit{}, changed: make(chan struct{})}
}

// Start adds a service and starts it as soon as the services it needs are
// ready. Services may be added in any order.
func (s *Supervisor) Start(svc Service) error {
	if svc.Name == "" || filepath.Base(svc.Name) != svc.Name || svc.Name == "." || svc.Name == ".." {
		return fmt.Errorf("service name %q must be a plain, non-empty file name", svc.Name)
	}
	if svc.Path == "" {
		return fmt.Errorf("service %s: no program to run", svc.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return fmt.Errorf("service %s: not started, the supervisor is shutting down", svc.Name)
	}
	if _, ok := s.units[svc.Name]; ok {
		return fmt.Errorf("service %s is already supervised", svc.Name)
	}
	u := &unit{
		svc:  svc,
		last: -1,
		ring: NewRing(s.o.RingSize),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if s.o.LogDir != "" {
		u.log = &LogFile{Path: filepath.Join(s.o.LogDir, svc.Name+".log"), Max: s.o.LogMax, Keep: s.o.LogKeep}
	}
	s.units[svc.Name] = u
	s.order = append(s.order, svc.Name)
	s.notifyLocked()
	Go("service "+svc.Name, func() { s.run(u) })
	return nil
}

// SetLogDir sets where services started from now on keep their log files
// ("" for none): call it once the log directory turns out persistent.
func (s *Supervisor) SetLogDir(dir string) {
	s.mu.Lock()
	s.o.LogDir = dir
	s.mu.Unlock()
}

// Output returns the recent output of a service (nil for an unknown one).
func (s *Supervisor) Output(name string) []byte {
	s.mu.Lock()
	u := s.units[name]
	s.mu.Unlock()
	if u == nil {
		return nil
	}
	return u.ring.Bytes()
}

// Status returns every service's state, in the order they were added.
func (s *Supervisor) Status() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.order))
	for _, n := range s.order {
		u := s.units[n]
		out = append(out, Status{Name: n, State: u.state, PID: u.pid, Restarts: u.restarts, LastStatus: u.last})
	}
	return out
}

// Wait blocks until cond holds for the named service's status or ctx ends.
func (s *Supervisor) Wait(ctx context.Context, name string, cond func(Status) bool) (Status, error) {
	for {
		s.mu.Lock()
		ch := s.changed
		var st Status
		u, ok := s.units[name]
		if ok {
			st = Status{Name: name, State: u.state, PID: u.pid, Restarts: u.restarts, LastStatus: u.last}
		}
		s.mu.Unlock()
		if ok && cond(st) {
			return st, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return st, fmt.Errorf("waiting for service %s (now %s): %w", name, st.State, ctx.Err())
		}
	}
}

// Signal sends sig to the named service's process group while it runs;
// its restart policy decides what follows (a SIGTERM'd service with
// Restart Always runs again after its backoff).
func (s *Supervisor) Signal(name string, sig syscall.Signal) error {
	s.mu.Lock()
	u := s.units[name]
	pid := 0
	if u != nil && (u.state == Running || u.state == Ready) {
		pid = u.pid
	}
	s.mu.Unlock()
	if pid <= 0 {
		return fmt.Errorf("service %s is not running", name)
	}
	return syscall.Kill(-pid, sig)
}

// Stop stops every service in reverse dependency order: a service stops
// only after everything that needs it has stopped. Each gets SIGTERM (to
// its whole process group), then SIGKILL after its grace period.
func (s *Supervisor) Stop(ctx context.Context) {
	s.mu.Lock()
	s.stopping = true
	remaining := map[string]*unit{}
	for n, u := range s.units {
		remaining[n] = u
	}
	s.mu.Unlock()

	for len(remaining) > 0 {
		var wave []*unit
		for n, u := range remaining {
			needed := false
			for _, other := range remaining {
				if other != u && slices.Contains(other.svc.Needs, n) {
					needed = true
					break
				}
			}
			if !needed {
				wave = append(wave, u)
			}
		}
		if len(wave) == 0 { // a dependency cycle: stop the rest together
			for _, u := range remaining {
				wave = append(wave, u)
			}
		}
		for _, u := range wave {
			u.stopOnce.Do(func() { close(u.stop) })
		}
		for _, u := range wave {
			select {
			case <-u.done:
			case <-ctx.Done():
			}
			delete(remaining, u.svc.Name)
		}
	}
}

func (s *Supervisor) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// set records a state change and reports it on the console.
// The line is written before waiters see the new state.
func (s *Supervisor) set(u *unit, st State, pid int, text string) {
	if text != "" {
		s.o.Log(fmt.Sprintf("service %s: %s", u.svc.Name, text))
	}
	s.mu.Lock()
	u.state, u.pid = st, pid
	switch st {
	case Ready:
		u.ready = true
	case Restarting:
		u.restarts++
	}
	s.notifyLocked()
	s.mu.Unlock()
}

// waitNeeds blocks until every needed service has been ready once; false
// when the service is stopped first.
func (s *Supervisor) waitNeeds(u *unit) bool {
	for {
		s.mu.Lock()
		ch := s.changed
		ok := true
		for _, n := range u.svc.Needs {
			if d := s.units[n]; d == nil || !d.ready {
				ok = false
				break
			}
		}
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-u.stop:
			return false
		}
	}
}

// lastWords is ": " and why the run that began when its output's Total
// was mark ended, as that output says (exitReason: usually its last line),
// for its exit line; "" when it wrote none or its output is private.
func (u *unit) lastWords(mark int64) string {
	if u.svc.PrivateOutput {
		return ""
	}
	if l := exitReason(u.ring.Since(mark), u.fatal.get()); l != "" {
		return ": " + l
	}
	return ""
}

func (s *Supervisor) run(u *unit) {
	defer close(u.done)
	defer func() {
		if u.log != nil {
			u.log.Close()
		}
	}()
	if len(u.svc.Needs) > 0 {
		s.set(u, Waiting, 0, "")
		if !s.waitNeeds(u) {
			s.set(u, Stopped, 0, "stopped")
			return
		}
	}
	b := u.svc.Backoff.withDefaults()
	var delay time.Duration
	for {
		s.set(u, Starting, 0, "starting")
		began := time.Now()
		mark := u.ring.Total()
		u.fatal.reset()
		status, stopped, err := s.runOnce(u)
		if stopped {
			s.set(u, Stopped, 0, "stopped")
			return
		}
		restart := u.svc.Restart == Always || (u.svc.Restart == OnFailure && (status != 0 || err != nil))
		if !restart {
			if err != nil {
				s.set(u, Exited, 0, fmt.Sprintf("cannot start: %v", err))
			} else {
				s.set(u, Exited, 0, fmt.Sprintf("exited (status %d)%s", status, u.lastWords(mark)))
			}
			return
		}
		if time.Since(began) >= b.Reset {
			delay = 0
		}
		delay = b.Next(delay)
		if err != nil {
			s.set(u, Restarting, 0, fmt.Sprintf("cannot start: %v; restarting in %s", err, delay))
		} else {
			s.set(u, Restarting, 0, fmt.Sprintf("exited (status %d), restarting in %s%s", status, delay, u.lastWords(mark)))
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-u.stop:
			t.Stop()
			s.set(u, Stopped, 0, "stopped")
			return
		}
	}
}

// runOnce runs the program once and returns its exit status, whether it
// was stopped by the supervisor, or why it could not start.
func (s *Supervisor) runOnce(u *unit) (status int, stopped bool, err error) {
	select {
	case <-u.stop:
		return 0, true, nil
	default:
	}
	cmd := exec.Command(u.svc.Path, u.svc.Args...)
	cmd.Env = u.svc.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Dir = u.svc.Dir
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: u.svc.Credential}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, false, fmt.Errorf("creating the output pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = s.o.Reaper.Start(cmd)
	w.Close()
	if err != nil {
		r.Close()
		return 127, false, err
	}
	pid := cmd.Process.Pid
	copied := make(chan struct{})
	Go("service "+u.svc.Name+" output", func() {
		defer close(copied)
		defer r.Close()
		s.copyOutput(u, r)
	})
	s.set(u, Running, pid, fmt.Sprintf("running (pid %d)", pid))

	readyCtx, cancelReady := context.WithCancel(context.Background())
	defer cancelReady()
	Go("service "+u.svc.Name+" readiness", func() { s.checkReady(readyCtx, u, pid) })

	exited := make(chan *os.ProcessState, 1)
	Go("service "+u.svc.Name+" wait", func() {
		cmd.Wait()
		exited <- cmd.ProcessState
	})
	var ps *os.ProcessState
	select {
	case ps = <-exited:
	case <-u.stop:
		stopped = true
		grace := u.svc.StopTimeout
		if grace <= 0 {
			grace = 10 * time.Second
		}
		syscall.Kill(-pid, syscall.SIGTERM)
		t := time.NewTimer(grace)
		select {
		case ps = <-exited:
			t.Stop()
		case <-t.C:
			syscall.Kill(-pid, syscall.SIGKILL)
			ps = <-exited
		}
	}
	s.o.Reaper.Forget(pid)
	cancelReady()
	// Let the last lines reach the ring before reporting the exit; a
	// leftover grandchild holding the pipe must not block us.
	select {
	case <-copied:
	case <-time.After(time.Second):
	}
	status = ExitStatus(ps)
	s.mu.Lock()
	u.last = status
	s.mu.Unlock()
	return status, stopped, nil
}

// checkReady polls the readiness check while the run with pid lasts.
func (s *Supervisor) checkReady(ctx context.Context, u *unit, pid int) {
	if u.svc.Ready != nil {
		interval := 50 * time.Millisecond
		for {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := u.svc.Ready(cctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				break
			}
			t := time.NewTimer(interval)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			interval = min(interval*2, 2*time.Second)
		}
	}
	s.mu.Lock()
	current := u.pid == pid && u.state == Running
	s.mu.Unlock()
	if current && ctx.Err() == nil {
		s.set(u, Ready, pid, "ready")
	}
}

// copyOutput splits a service's output into lines for the ring, the log
// file, the exit line's reason (fatalWords) and, on request, the console.
func (s *Supervisor) copyOutput(u *unit, r io.Reader) {
	buf := make([]byte, 32<<10)
	var partial []byte
	for {
		n, err := r.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			u.ring.Write(chunk)
			if u.log != nil {
				u.log.Write(chunk)
			}
			partial = append(partial, chunk...)
			for {
				i := bytes.IndexByte(partial, '\n')
				if i < 0 && len(partial) < 4096 {
					break
				}
				if i < 0 {
					i = len(partial) - 1
				}
				line := bytes.TrimRight(partial[:i+1], "\n")
				u.fatal.see(line)
				if u.svc.Console {
					s.o.Raw(u.svc.Name + "| " + string(line) + "\n")
				}
				partial = partial[i+1:]
			}
		}
		if err != nil {
			u.fatal.see(partial)
			if u.svc.Console && len(partial) > 0 {
				s.o.Raw(u.svc.Name + "| " + string(partial) + "\n")
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				slog.Debug(fmt.Sprintf("service %s: reading output: %v", u.svc.Name, err))
			}
			return
		}
	}
}
