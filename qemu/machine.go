package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Machine is a running QEMU process and its console.
type Machine struct {
	name  string
	cmd   *exec.Cmd
	con   *console
	dir   string // runtime directory: QMP socket
	qmp   string
	start time.Time

	stderr lockedBuffer
	log    *os.File

	done chan struct{} // closed when QEMU has exited and been reaped
	err  error         // QEMU's exit, valid after done

	mu   sync.Mutex
	last int // index of the line the last WaitFor/WaitForNext returned
}

// Start boots cfg in QEMU. QEMU is killed when ctx ends; call Kill
// when done with the machine in any case.
func Start(ctx context.Context, cfg Config) (*Machine, error) {
	if cfg.Board == nil || cfg.Board.QEMU == nil {
		return nil, errors.New("qemu: no board, or the board has no qemu section: QEMU cannot emulate it")
	}
	bin, err := exec.LookPath(cfg.Board.QEMU.Binary)
	if err != nil {
		return nil, fmt.Errorf("qemu: %s not found: install it (`make deps`): %w", cfg.Board.QEMU.Binary, err)
	}
	dir, err := os.MkdirTemp("", "cairn-qemu-")
	if err != nil {
		return nil, fmt.Errorf("qemu: runtime directory: %w", err)
	}
	m := &Machine{
		name: cfg.name(),
		dir:  dir,
		qmp:  filepath.Join(dir, "qmp.sock"),
		done: make(chan struct{}),
		last: -1,
	}
	args, err := cfg.args(m.qmp)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	argv := append([]string{bin}, args...)
	if cfg.Netns != nil {
		argv = append(cfg.Netns.prefix(), argv...)
	}
	var outputs []io.Writer
	if cfg.ConsoleLog != "" {
		if m.log, err = os.Create(cfg.ConsoleLog); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("qemu: console log: %w", err)
		}
		outputs = append(outputs, m.log)
	}
	if cfg.Console != nil {
		outputs = append(outputs, cfg.Console)
	}

	m.start = time.Now()
	m.con = newConsole(m.start, cfg.FailOn)
	m.cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
	m.cmd.Stdout = io.MultiWriter(append([]io.Writer{m.con}, outputs...)...)
	m.cmd.Stderr = &m.stderr
	if cfg.Interactive {
		m.cmd.Stdin = os.Stdin
		m.cmd.Stdout = io.MultiWriter(append([]io.Writer{os.Stdout, m.con}, outputs...)...)
		m.cmd.Stderr = io.MultiWriter(os.Stderr, &m.stderr)
	}
	m.cmd.SysProcAttr = sysProcAttr()
	m.cmd.WaitDelay = 5 * time.Second
	slog.Debug("qemu: starting", "machine", m.name, "argv", strings.Join(argv, " "))
	if err := m.cmd.Start(); err != nil {
		m.cleanup()
		return nil, fmt.Errorf("qemu: start %s: %w", bin, err)
	}
	go func() {
		err := m.cmd.Wait()
		if err != nil {
			if msg := strings.TrimSpace(m.stderr.String()); msg != "" {
				err = fmt.Errorf("%w: %s", err, msg)
			}
		}
		m.err = err
		cause := err
		if cause == nil {
			cause = errors.New("exit status 0")
		}
		m.con.end(cause)
		m.cleanup()
		close(m.done)
	}()
	return m, nil
}

func (m *Machine) cleanup() {
	if m.log != nil {
		m.log.Close()
	}
	os.RemoveAll(m.dir)
}

// Name is the machine's name as it appears in errors.
func (m *Machine) Name() string { return m.name }

// Lines returns every console line so far.
func (m *Machine) Lines() []Line { return m.con.Lines() }

// WaitFor returns the first console line since boot that matches re, waiting
// for it until ctx ends or QEMU exits. The error then names the pattern and
// shows the last console lines.
func (m *Machine) WaitFor(ctx context.Context, re *regexp.Regexp) (Line, error) {
	return m.waitFrom(ctx, re, 0)
}

// WaitForNext is WaitFor over the lines after the one the previous WaitFor
// or WaitForNext returned, for events that repeat or must come in order.
func (m *Machine) WaitForNext(ctx context.Context, re *regexp.Regexp) (Line, error) {
	m.mu.Lock()
	from := m.last + 1
	m.mu.Unlock()
	return m.waitFrom(ctx, re, from)
}

func (m *Machine) waitFrom(ctx context.Context, re *regexp.Regexp, from int) (Line, error) {
	l, i, err := m.con.waitFor(ctx, re, from, m.name)
	if err != nil {
		return Line{}, err
	}
	m.mu.Lock()
	m.last = i
	m.mu.Unlock()
	return l, nil
}

// Count is how many console lines so far match re.
func (m *Machine) Count(re *regexp.Regexp) int {
	n := 0
	for _, l := range m.con.Lines() {
		if re.MatchString(l.Text) {
			n++
		}
	}
	return n
}

// QMP runs one QMP command and returns its result.
func (m *Machine) QMP(ctx context.Context, command string, args any) (json.RawMessage, error) {
	if m.Exited() {
		return nil, fmt.Errorf("%s: qmp %s: QEMU has exited (%v)", m.name, command, m.err)
	}
	ret, err := qmpCommand(ctx, m.qmp, command, args)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.name, err)
	}
	return ret, nil
}

// Powerdown presses the guest's power button (ACPI, or the GPIO key on arm
// virt), as `system_powerdown` does. The guest decides what happens next.
func (m *Machine) Powerdown(ctx context.Context) error {
	_, err := m.QMP(ctx, "system_powerdown", nil)
	return err
}

// Quit ends QEMU at once, like pulling the plug, and waits for it to exit.
func (m *Machine) Quit(ctx context.Context) error {
	if _, err := m.QMP(ctx, "quit", nil); err != nil && !m.Exited() {
		return err
	}
	return m.Wait(ctx)
}

// Exited reports whether QEMU has exited.
func (m *Machine) Exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// Wait waits for QEMU to exit and returns how it ended: nil for a clean exit
// (the guest powered off, or Quit).
func (m *Machine) Wait(ctx context.Context) error {
	select {
	case <-m.done:
		if m.err != nil {
			return fmt.Errorf("%s: QEMU: %w", m.name, m.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: QEMU still running after %s (%w); last console lines:%s",
			m.name, time.Since(m.start).Round(time.Second), context.Cause(ctx), m.con.tail(20))
	}
}

// Kill ends QEMU with SIGKILL if it still runs and waits until it is reaped.
// It is safe to call more than once and after QEMU exited.
func (m *Machine) Kill() {
	if !m.Exited() && m.cmd.Process != nil {
		m.cmd.Process.Kill()
	}
	<-m.done
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
