package etcdsnap

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Size is n bytes for a person.
func Size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// WriteList prints the snapshots as a table, newest first: the file's
// name, the server that keeps it, where, its size and when it was taken.
func WriteList(w io.Writer, rec *Record) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tNODE\tLOCATION\tSIZE\tCREATED")
	for _, s := range rec.Snapshots {
		fmt.Fprintf(tw, "%s\t%s\tfile://%s\t%s\t%s\n", s.Name, s.Node, s.Path, Size(s.Size), s.Time.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// Describe is an answer in one line: where the snapshot landed, or why
// there is none.
func Describe(a Answer) string {
	if a.Snapshot == nil {
		return fmt.Sprintf("%s: no snapshot: %s", a.Node, a.Error)
	}
	s := a.Snapshot
	return fmt.Sprintf("%s: %s (%s, sha256 %s)", a.Node, s.Path, Size(s.Size), s.SHA256)
}
