package supervise

import (
	"regexp"
	"strings"
	"sync"
	"unicode"

	"github.com/cairn-os/cairn/config/brief"
)

// maxLastWords bounds the quote of a service's output in its exit line.
const maxLastWords = 200

// fatalLine matches a line that says why a Go program is about to die with
// a stack trace after it: a panic, a runtime fatal error, a klog Fatal
// (severity F, then the date and time).
var fatalLine = regexp.MustCompile(`^(panic: |fatal error: |F\d{4} \d\d:\d\d:\d\d)`)

// stackTrace matches the header of a goroutine's stack in a Go trace;
// stackFrame a frame's file line, all a long trace leaves in the ring.
var (
	stackTrace = regexp.MustCompile(`(?m)^goroutine \d+ \[`)
	stackFrame = regexp.MustCompile(`\.go:\d+( \+0x[0-9a-f]+)?$`)
)

// fatalWords keeps the last fatal line of a run, seen as the output
// streams by, so a trace longer than the ring still has its reason.
type fatalWords struct {
	mu   sync.Mutex
	line string
}

func (f *fatalWords) reset() { f.set("") }

func (f *fatalWords) set(s string) {
	f.mu.Lock()
	f.line = s
	f.mu.Unlock()
}

func (f *fatalWords) get() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.line
}

// see records line when it is a fatal line.
func (f *fatalWords) see(line []byte) {
	if len(line) > 0 && (line[0] == 'p' || line[0] == 'f' || line[0] == 'F' || line[0] == ' ' || line[0] == '\t') {
		l := strings.TrimSpace(string(line[:min(len(line), 4*maxLastWords)]))
		if fatalLine.MatchString(l) {
			f.set(l)
		}
	}
}

// exitReason is why a run ended as its output says: its last line, or,
// when the output ends in a Go stack trace (a panic, a klog Fatal), the
// line that introduced the trace, which the frames would otherwise hide.
// One line, at most maxLastWords bytes, no control characters.
func exitReason(out []byte, fatal string) string {
	l := brief.LastLine(out, maxLastWords)
	if fatal != "" && (stackTrace.Match(out) || stackFrame.MatchString(l)) {
		l = brief.LastLine([]byte(fatal), maxLastWords)
	}
	return printable(l)
}

// printable drops what a console must not get from a program: control
// characters (an escape sequence, a carriage return) and invalid UTF-8
// (a cut through a character).
func printable(s string) string {
	s = strings.ToValidUTF8(s, "")
	return strings.Map(func(r rune) rune {
		if r == '\t' {
			return ' '
		}
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}
