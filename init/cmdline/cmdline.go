// Package cmdline splits the kernel command line into words the way the
// kernel does: spaces separate words, double quotes group spaces into one
// and are dropped. Every part of the init reads the command line through it.
package cmdline

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxLen bounds what Read takes from a file: kernels cap the command line
// at a few KiB (COMMAND_LINE_SIZE), so anything longer is not one.
const MaxLen = 64 << 10

// Line is a command line split into words, quotes removed.
type Line []string

// Parse splits s into words.
func Parse(s string) Line {
	var words Line
	var cur strings.Builder
	quoted, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			have = true
		case !quoted && (r == ' ' || r == '\t' || r == '\n'):
			if have {
				words = append(words, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		words = append(words, cur.String())
	}
	return words
}

// Read parses the command line in the file path (/proc/cmdline), at most
// MaxLen bytes of it.
func Read(path string) (Line, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the kernel command line: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxLen))
	if err != nil {
		return nil, fmt.Errorf("reading the kernel command line: %w", err)
	}
	return Parse(string(data)), nil
}

// Has reports whether the word key or key=... appears.
func (l Line) Has(key string) bool {
	for _, w := range l {
		if w == key || strings.HasPrefix(w, key+"=") {
			return true
		}
	}
	return false
}

// Get returns the value of the last key=value word, or "".
func (l Line) Get(key string) string {
	v := ""
	for _, w := range l {
		if strings.HasPrefix(w, key+"=") {
			v = w[len(key)+1:]
		}
	}
	return v
}

// String joins the words back, quoting those with spaces, so Parse of the
// result gives the same words.
func (l Line) String() string {
	var b strings.Builder
	for i, w := range l {
		if i > 0 {
			b.WriteByte(' ')
		}
		if w == "" || strings.ContainsAny(w, " \t\n") {
			b.WriteString(`"` + w + `"`)
		} else {
			b.WriteString(w)
		}
	}
	return b.String()
}
