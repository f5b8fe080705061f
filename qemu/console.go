package qemu

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Line is one complete line of the serial console.
type Line struct {
	Text string
	// At is when the line arrived, measured from the start of QEMU.
	At time.Duration
}

// console splits the serial console into lines and lets callers wait for a
// line matching a pattern. It is an io.Writer fed by QEMU's output.
type console struct {
	start time.Time
	// failOn are lines after which waiting is pointless (a kernel panic, an
	// init that gave up): a wait that meets one fails at once.
	failOn []*regexp.Regexp

	mu      sync.Mutex
	lines   []Line
	partial []byte
	changed chan struct{} // closed and replaced whenever a line arrives or the stream ends
	closed  bool          // no more lines will arrive
	cause   error         // why the stream ended
}

func newConsole(start time.Time, failOn []*regexp.Regexp) *console {
	return &console{start: start, failOn: failOn, changed: make(chan struct{})}
}

// Write implements io.Writer: it collects complete lines, dropping carriage
// returns and terminal escape noise at line ends.
func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		text := strings.TrimRight(string(c.partial[:i]), "\r")
		c.partial = c.partial[i+1:]
		c.lines = append(c.lines, Line{Text: text, At: time.Since(c.start)})
		added = true
	}
	if added {
		close(c.changed)
		c.changed = make(chan struct{})
	}
	return len(p), nil
}

// end marks the stream finished (QEMU exited); cause says how.
func (c *console) end(cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if len(c.partial) > 0 {
		c.lines = append(c.lines, Line{Text: strings.TrimRight(string(c.partial), "\r"), At: time.Since(c.start)})
		c.partial = nil
	}
	c.closed = true
	c.cause = cause
	close(c.changed)
}

// Lines returns a copy of every complete line so far.
func (c *console) Lines() []Line {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Line(nil), c.lines...)
}

// tail returns the last n lines as text, for error messages.
func (c *console) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	from := max(len(c.lines)-n, 0)
	var b strings.Builder
	for _, l := range c.lines[from:] {
		fmt.Fprintf(&b, "\n  | %s", l.Text)
	}
	if len(c.partial) > 0 {
		fmt.Fprintf(&b, "\n  | %s", c.partial)
	}
	if b.Len() == 0 {
		return "\n  (the console printed nothing)"
	}
	return b.String()
}

// waitFor returns the first line at index >= from that matches re, and its
// index. It fails when ctx ends, the stream ends without such a line, or a
// failOn line comes first.
func (c *console) waitFor(ctx context.Context, re *regexp.Regexp, from int, name string) (Line, int, error) {
	began := time.Now()
	for {
		c.mu.Lock()
		for i := from; i < len(c.lines); i++ {
			if re.MatchString(c.lines[i].Text) {
				l := c.lines[i]
				c.mu.Unlock()
				return l, i, nil
			}
			for _, f := range c.failOn {
				if text := c.lines[i].Text; f.MatchString(text) {
					c.mu.Unlock()
					return Line{}, -1, fmt.Errorf("%s: the console showed %q (matching /%s/) before /%s/; last console lines:%s",
						name, text, f, re, c.tail(30))
				}
			}
		}
		from = max(from, len(c.lines))
		changed, closed, cause := c.changed, c.closed, c.cause
		c.mu.Unlock()
		if closed {
			return Line{}, -1, fmt.Errorf("%s: QEMU exited (%v) before the console showed /%s/; last console lines:%s", name, cause, re, c.tail(30))
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Line{}, -1, fmt.Errorf("%s: the console did not show /%s/ within %s (%w); last console lines:%s",
				name, re, time.Since(began).Round(100*time.Millisecond), context.Cause(ctx), c.tail(30))
		}
	}
}
