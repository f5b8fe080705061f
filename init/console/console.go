// Package console writes the init's one-line-per-event messages, each
// "cairn: [SSSSS.mmm] text" with the time since boot, to the console and to
// the kernel log (/dev/kmsg), and adapts them to log/slog.
package console

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Prefix starts every line the init writes.
const Prefix = "cairn: "

// Logger writes console lines. The zero value is not usable; use New.
type Logger struct {
	mu    sync.Mutex
	out   io.Writer
	kmsg  string
	debug bool
	clock func() time.Duration
}

// Options configure a Logger.
type Options struct {
	// Out receives every line; the console (standard output of PID 1).
	Out io.Writer
	// Kmsg is the kernel log device; empty writes no kernel log.
	Kmsg string
	// Debug shows debug-level slog records (cairn.debug on the command line).
	Debug bool
	// Clock returns the time since boot; Uptime when nil.
	Clock func() time.Duration
}

// New returns a Logger.
func New(o Options) *Logger {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Clock == nil {
		o.Clock = Uptime
	}
	return &Logger{out: o.Out, kmsg: o.Kmsg, debug: o.Debug, clock: o.Clock}
}

// SetDebug turns debug-level records on or off.
func (l *Logger) SetDebug(on bool) {
	l.mu.Lock()
	l.debug = on
	l.mu.Unlock()
}

// Debug reports whether debug-level records are shown.
func (l *Logger) Debug() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.debug
}

// SetOutput replaces the console writer, for example once /dev/console can
// be opened.
func (l *Logger) SetOutput(w io.Writer) {
	l.mu.Lock()
	l.out = w
	l.mu.Unlock()
}

// SetKmsg sets the kernel log device ("" for none).
func (l *Logger) SetKmsg(path string) {
	l.mu.Lock()
	l.kmsg = path
	l.mu.Unlock()
}

// Printf writes one line; a multi-line text becomes several lines with the
// same time stamp.
func (l *Logger) Printf(format string, args ...any) {
	l.Print(fmt.Sprintf(format, args...))
}

// Print writes text as one line (several when it holds newlines).
func (l *Logger) Print(text string) {
	text = strings.TrimRight(text, "\n")
	l.mu.Lock()
	defer l.mu.Unlock()
	// The time is taken under the lock, so lines appear in time order.
	t := l.clock()
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		b.WriteString(Line(t, line))
		b.WriteByte('\n')
	}
	io.WriteString(l.out, b.String())
	if l.kmsg != "" {
		writeKmsg(l.kmsg, b.String())
	}
}

// Raw writes text to the console only, without prefix or time stamp: the
// output of services shown on request.
func (l *Logger) Raw(text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.out, text)
}

// Line formats one console line: "cairn: [00012.345] text".
func Line(sinceBoot time.Duration, text string) string {
	if sinceBoot < 0 {
		sinceBoot = 0
	}
	ms := sinceBoot.Milliseconds()
	return fmt.Sprintf("%s[%05d.%03d] %s", Prefix, ms/1000, ms%1000, text)
}

// Uptime is the time since the kernel started (CLOCK_BOOTTIME), the clock
// the kernel's own log uses.
func Uptime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// writeKmsg appends lines to the kernel log at debug level (<15> is
// user.debug), so the kernel does not echo them to the console a second
// time at the default log level. The device is opened per write: the
// kernel rate-limits each open file, not each writer.
func writeKmsg(path, lines string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return
	}
	defer f.Close()
	for _, line := range strings.Split(strings.TrimRight(lines, "\n"), "\n") {
		// One write is one record; the kernel caps a record at 1 KiB.
		if len(line) > 960 {
			line = line[:960]
		}
		f.WriteString("<15>" + line + "\n")
	}
}
