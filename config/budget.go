package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The budget of one document: whatever its content, reading it costs a
// bounded amount of time and memory, and what is printed about it is short.
// The init reads documents from the network as PID 1, so a hostile one must
// not be able to run the node out of memory.
const (
	// MaxDocumentSize is the largest document cairn reads, from any kind
	// of input (file, pipe, device, URL) and after gunzip.
	MaxDocumentSize = 4 << 20
	// maxStructure bounds the characters that can start a YAML node
	// (",:-?[{"): the YAML parser builds at most three nodes for each, so
	// this bounds its memory before it runs.
	maxStructure = 40000
	// maxGaps bounds the places where a blank or a line break is followed
	// by text: the parser allocates for each such gap inside a value.
	maxGaps = 500000
	// maxNodes bounds the values the decoder visits, aliases expanded.
	maxNodes = 10000
	// maxExpanded bounds the bytes of the scalars the decoder visits,
	// aliases expanded: a document without aliases never reaches it.
	maxExpanded = 2 * MaxDocumentSize
	// maxShown is how many diagnostics a document gets; the rest are
	// counted in one last "and N more" line.
	maxShown = 50
	// maxKept is how many diagnostics are collected before the rest are
	// only counted.
	maxKept = 1000
	// maxQuoted is the longest value quoted whole in a message.
	maxQuoted = 64
)

// ErrTooLarge is wrapped by ReadLimited's error for input over
// MaxDocumentSize bytes.
var ErrTooLarge = errors.New("larger than the 4 MiB a cloud-config may have")

// ReadLimited reads a whole document from r, but never more than
// MaxDocumentSize bytes: a device like /dev/zero or a pipe that never ends
// is refused once it has given that much.
func ReadLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxDocumentSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxDocumentSize {
		return nil, fmt.Errorf("the document is %w; give the right file, or make it smaller", ErrTooLarge)
	}
	return data, nil
}

// ReadFile reads the document at path through ReadLimited, whatever kind
// of file it is.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := ReadLimited(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}

// structureOf finds where a document first exceeds maxStructure or
// maxGaps, without parsing it. ok is false then, with the line and column
// of the character that went over and which limit it is.
func structureOf(data []byte) (line, col int, what string, ok bool) {
	n, gaps := 0, 0
	line, start := 1, 0
	blank := true
	for i, c := range data {
		switch c {
		case '\n':
			line, start = line+1, i+1
			blank = true
			continue
		case ' ', '\t', '\r':
			blank = true
			continue
		case ',', ':', '-', '?', '[', '{':
			n++
		}
		if blank {
			gaps++
		}
		blank = false
		switch {
		case n > maxStructure:
			what = fmt.Sprintf("more than %d of the characters that start YAML values (,:-?[{)", maxStructure)
		case gaps > maxGaps:
			what = fmt.Sprintf("more than %d words and lines", maxGaps)
		default:
			continue
		}
		return line, utf8.RuneCount(data[start:i]) + 1, what, false
	}
	return 0, 0, "", true
}

// invalidUTF8 returns the line and column (in characters) of the first
// byte that is not UTF-8, and the byte.
func invalidUTF8(data []byte) (line, col int, b byte, ok bool) {
	if utf8.Valid(data) {
		return 0, 0, 0, true
	}
	line, col = 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return line, col, data[i], false
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += size
	}
	return 0, 0, 0, true
}

// short stands for a long value in a message: quoted, it shows the start
// and the end and says how long the value is.
type short string

// Format prints s whole when it is short, else its ends and its length.
func (s short) Format(f fmt.State, verb rune) {
	v := string(s)
	if len(v) <= maxQuoted {
		if verb == 'q' {
			io.WriteString(f, strconv.Quote(v))
		} else {
			io.WriteString(f, v)
		}
		return
	}
	head, tail := cutRunes(v, maxQuoted/2, true), cutRunes(v, maxQuoted/4, false)
	if verb == 'q' {
		fmt.Fprintf(f, "%s…%s (%d bytes)", strconv.Quote(head), strconv.Quote(tail), len(v))
	} else {
		fmt.Fprintf(f, "%s…%s (%d bytes)", head, tail, len(v))
	}
}

// cutRunes returns the first (or last) n bytes of s, not splitting a rune.
func cutRunes(s string, n int, first bool) string {
	if first {
		for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
			n--
		}
		return s[:n]
	}
	i := len(s) - n
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return s[i:]
}

// shortArgs replaces the long string arguments of a message with shorts:
// those quoted (%q) when longer than maxQuoted, others when longer than
// maxPlain (a message built beforehand is one of those).
func shortArgs(format string, args []any) []any {
	n := 0
	for i := 0; i < len(format) && n < len(args); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		for i < len(format) && strings.IndexByte("+-# 0123456789.", format[i]) >= 0 {
			i++
		}
		if i >= len(format) || format[i] == '%' {
			continue
		}
		limit := maxPlain
		if format[i] == 'q' {
			limit = maxQuoted
		}
		if s, ok := args[n].(string); ok && len(s) > limit {
			args[n] = short(s)
		}
		n++
	}
	return args
}

// maxPlain is the longest string printed whole with %s.
const maxPlain = 256

// maxMessage bounds a message whose long values came in through an error.
const maxMessage = 1024

// message formats a diagnostic's text within the budget.
func message(format string, args ...any) string {
	m := fmt.Sprintf(format, shortArgs(format, args)...)
	if len(m) > maxMessage {
		m = fmt.Sprint(short(m))
	}
	return m
}

// collector keeps the first maxKept diagnostics and counts the rest.
type collector struct {
	diags   Diagnostics
	dropped int
	// droppedErr says whether a dropped diagnostic is an error.
	droppedErr bool
}

func (c *collector) keep(d Diagnostic) {
	if len(c.diags) >= maxKept {
		c.dropped++
		c.droppedErr = c.droppedErr || d.Severity == Error
		return
	}
	c.diags = append(c.diags, d)
}

// capped returns ds (sorted) cut to maxShown, with one last diagnostic
// saying how many more there are; dropped and droppedErr count those
// already left out.
func capped(ds Diagnostics, dropped int, droppedErr bool) Diagnostics {
	if len(ds) <= maxShown && dropped == 0 {
		return ds
	}
	if len(ds) > maxShown {
		for _, d := range ds[maxShown:] {
			droppedErr = droppedErr || d.Severity == Error
		}
		dropped += len(ds) - maxShown
		ds = ds[:maxShown:maxShown]
	}
	last := Diagnostic{File: ds[len(ds)-1].File, Severity: Warning,
		Message: fmt.Sprintf("and %d more problems not shown; fix the ones above and check again", dropped)}
	if droppedErr {
		last.Severity = Error
	}
	return append(ds, last)
}
