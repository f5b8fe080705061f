// Package brief shortens what goes into a one-line message: a program's
// output, an apiserver's reply, an error chain. The console prints one
// line per event; these keep that line short and free of newlines.
package brief

import (
	"errors"
	"net/url"
	"strings"
)

// FirstLine is the first non-empty line of b, trimmed, at most n bytes
// (an ellipsis marks a cut): the headline of a reply.
func FirstLine(b []byte, n int) string {
	for l := range strings.SplitSeq(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return clip(l, n)
		}
	}
	return ""
}

// LastLine is the last non-empty line of b, trimmed, at most n bytes: a
// program's last words, which usually say why it stopped.
func LastLine(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return clip(strings.TrimSpace(lines[len(lines)-1]), n)
}

// Err is the innermost part of an error chain, "connection refused" for
// "Get https://…: dial tcp 10.0.0.1:6443: connect: connection refused":
// for a progress line that repeats, where the whole chain is noise.
func Err(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil || u.Error() == "" {
			break
		}
		err = u
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && i+2 < len(s) {
		s = s[i+2:]
	}
	return s
}

func clip(s string, n int) string {
	if n > 0 && len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// URL is s for a message: without its user information and its query,
// which may hold credentials (a password, a signed URL's token).
func URL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(a URL that does not parse)" // it may hold a password
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}
