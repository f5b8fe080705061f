package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// String returns the severity's name as printed in diagnostics.
func (s Severity) String() string {
	if s == Error {
		return "error"
	}
	return "warning"
}

// String formats d as "FILE:LINE:COL: error|warning: message", the form
// compilers use, so editors can jump to it. A diagnostic about a value that
// came from no source (a default) has no line and prints "FILE: ...".
func (d Diagnostic) String() string {
	file := d.File
	if file == "" {
		file = "<config>"
	}
	if d.Line <= 0 {
		return fmt.Sprintf("%s: %s: %s", file, d.Severity, d.Message)
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", file, d.Line, d.Column, d.Severity, d.Message)
}

// HasErrors reports whether any diagnostic is an Error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

// Errors returns only the diagnostics that are errors.
func (ds Diagnostics) Errors() Diagnostics { return ds.only(Error) }

// Warnings returns only the diagnostics that are warnings.
func (ds Diagnostics) Warnings() Diagnostics { return ds.only(Warning) }

// only returns the diagnostics of severity sev.
func (ds Diagnostics) only(sev Severity) Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == sev {
			out = append(out, d)
		}
	}
	return out
}

// ErrInvalid is wrapped by the error Diagnostics.Err returns, so callers can
// tell an invalid document from a failure to fetch one.
var ErrInvalid = errors.New("invalid cloud-config")

// Err returns nil unless ds has errors; otherwise an error wrapping
// ErrInvalid whose text lists every error, one per line.
func (ds Diagnostics) Err() error {
	errs := ds.Errors()
	if len(errs) == 0 {
		return nil
	}
	lines := make([]string, len(errs))
	for i, d := range errs {
		lines[i] = d.String()
	}
	return fmt.Errorf("%w (%d errors):\n%s", ErrInvalid, len(errs), strings.Join(lines, "\n"))
}

// sortDiags orders diagnostics by file (in the order files were given),
// then line and column; diagnostics without a line come last for their file.
func sortDiags(ds Diagnostics, files []string) {
	rank := map[string]int{}
	for i, f := range files {
		if _, ok := rank[f]; !ok {
			rank[f] = i
		}
	}
	rankOf := func(f string) int {
		if r, ok := rank[f]; ok {
			return r
		}
		return len(files)
	}
	lineOf := func(d Diagnostic) int {
		if d.Line <= 0 {
			return 1 << 30
		}
		return d.Line
	}
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(
			cmp.Compare(rankOf(a.File), rankOf(b.File)),
			cmp.Compare(lineOf(a), lineOf(b)),
			cmp.Compare(a.Column, b.Column))
	})
}
