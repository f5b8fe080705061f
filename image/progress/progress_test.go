package progress

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"
)

// TestPlainLines checks what a log file gets: a line when a task starts,
// one at each quarter however the work is split, and one when it is done.
func TestPlainLines(t *testing.T) {
	var out bytes.Buffer
	r := New(&out, "cairn: build: ")
	task := r.Start("unpacking k.deb", 1000)
	for range 10 {
		io.Copy(task, strings.NewReader(strings.Repeat("x", 99)))
	}
	task.Add(10)
	task.Done()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		"cairn: build: unpacking k.deb ...",
		"cairn: build: unpacking k.deb: 25%",
		"cairn: build: unpacking k.deb: 50%",
		"cairn: build: unpacking k.deb: 75%",
	}
	if len(lines) != len(want)+1 || strings.Join(lines[:len(want)], "\n") != strings.Join(want, "\n") {
		t.Fatalf("output:\n%s\nwant the lines\n%s\nthen the done line", out.String(), strings.Join(want, "\n"))
	}
	if done := lines[len(want)]; !strings.HasPrefix(done, "cairn: build: unpacking k.deb done in ") || !strings.HasSuffix(done, "s") {
		t.Errorf("last line %q, want \"cairn: build: unpacking k.deb done in N.Ns\"", done)
	}
}

func TestPlainLinesOfAnUnknownTotal(t *testing.T) {
	var out bytes.Buffer
	task := New(&out, "cairn: ").Start("building the components", -1)
	task.Add(1 << 30)
	task.Done()
	if got := out.String(); !strings.HasPrefix(got, "cairn: building the components ...\ncairn: building the components done in ") || strings.Count(got, "\n") != 2 {
		t.Errorf("output %q, want a start line and a done line", got)
	}
}

// TestTerminalBar checks that a terminal gets the start line, then a bar
// on a line of its own, drawn in place (\r), which the done line replaces.
func TestTerminalBar(t *testing.T) {
	var out bytes.Buffer
	r := &Reporter{w: &out, prefix: "cairn: build: ", tty: true}
	task := r.Start("writing disk.img", 4<<20)
	for range 4 {
		task.Write(make([]byte, 1<<20))
	}
	task.Done()
	got := out.String()
	// How often the bar is redrawn between depends on the clock; that it
	// is drawn at the start, with the total, does not.
	for _, want := range []string{"cairn: build: writing disk.img ...\n\r   0% |", "0 B/4.0 MiB)", "\rcairn: build: writing disk.img done in "} {
		if !strings.Contains(got, want) {
			t.Errorf("terminal output %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "25%\n") {
		t.Errorf("terminal output %q has plain quarter lines", got)
	}
}

// TestTerminalSpinner checks that a step of unknown size gets a spinner
// with the time it has taken, and no byte count.
func TestTerminalSpinner(t *testing.T) {
	var out bytes.Buffer
	r := &Reporter{w: &out, prefix: "cairn: build: ", tty: true}
	task := r.Start("building the init", -1)
	task.Done()
	got := out.String()
	if !strings.HasPrefix(got, "cairn: build: building the init ...\n\r") || !regexp.MustCompile(`\[\d+s\] `).MatchString(got) || strings.Contains(got, " B") || !strings.Contains(got, "\rcairn: build: building the init done in ") {
		t.Errorf("terminal output %q, want the start line, a spinner with the elapsed time and no bytes, then the done line", got)
	}
}

func TestNothingWithoutAnOutput(t *testing.T) {
	r := New(nil, "cairn: ")
	task := r.Start("x", 10)
	task.Add(5)
	if n, err := task.Write([]byte("abc")); n != 3 || err != nil {
		t.Errorf("Write on a nil task = %d, %v; want 3, nil", n, err)
	}
	task.Done()
}
