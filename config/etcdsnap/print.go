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
// name, the server that took it, where it is (file:// on that server,
// s3:// for a copy in S3), its size and when it was taken.
func WriteList(w io.Writer, rec *Record) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tNODE\tLOCATION\tSIZE\tCREATED")
	for _, s := range rec.Snapshots {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Node, s.Location(), Size(s.Size), s.Time.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// Describe is an answer in one line: where the snapshot landed (and its
// copy in S3), or why there is none.
func Describe(a Answer) string {
	if a.Snapshot == nil {
		return fmt.Sprintf("%s: no snapshot: %s", a.Node, a.Error)
	}
	s := a.Snapshot
	line := fmt.Sprintf("%s: %s (%s, sha256 %s)", a.Node, s.Path, Size(s.Size), s.SHA256)
	if a.S3 != nil {
		line += ", copied to " + a.S3.S3
	}
	return line
}

// DescribeS3 is why an answer's snapshot has no copy in S3, in one line;
// "" when it has one or none was asked for.
func DescribeS3(a Answer) string {
	if a.Snapshot == nil || a.S3Error == "" {
		return ""
	}
	return fmt.Sprintf("%s: %s was not copied to S3: %s", a.Node, a.Snapshot.Name, a.S3Error)
}
