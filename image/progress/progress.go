// Package progress shows how far a long operation has got (unpacking a
// kernel, writing an image, building the components, flashing a card): a
// bar that redraws itself on a terminal, and plain lines when the output is
// a file or a pipe, so that logs stay readable. The builder's steps report
// through it (image.Options.Progress), and so should any long operation a
// command drives.
//
//	r := progress.New(os.Stderr, "cairn: build: ")
//	t := r.Start("unpacking linux-image-6.1.0-57-amd64.deb", size)
//	io.Copy(io.MultiWriter(dst, t), src)
//	t.Done()
package progress

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Reporter starts tasks that report to one output. A nil *Reporter
// reports nothing, so that callers without an output need no checks.
type Reporter struct {
	w      io.Writer
	prefix string
	tty    bool
}

// New reports to w, each line starting with prefix; with bars when w is a
// terminal. A nil w reports nothing.
func New(w io.Writer, prefix string) *Reporter {
	if w == nil {
		return nil
	}
	f, ok := w.(*os.File)
	return &Reporter{w: w, prefix: prefix, tty: ok && term.IsTerminal(int(f.Fd()))}
}

// Task is one operation in progress. Its Write counts bytes, so it can sit
// in an io.MultiWriter or io.TeeReader next to the real work.
type Task struct {
	r       *Reporter
	desc    string
	total   int64
	done    int64
	quarter int64 // the last quarter a plain line was printed for
	begin   time.Time
	bar     *progressbar.ProgressBar
}

// Start begins a task of total units of work, in bytes; a total of -1
// means unknown (a spinner on a terminal).
func (r *Reporter) Start(desc string, total int64) *Task {
	if r == nil {
		return nil
	}
	t := &Task{r: r, desc: desc, total: total, begin: time.Now()}
	fmt.Fprintf(r.w, "%s%s ...\n", r.prefix, desc)
	if r.tty {
		// The bar has a line of its own, which fits 80 columns whatever
		// the description, and which Done replaces.
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(r.w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionClearOnFinish(),
		}
		if total > 0 {
			opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionShowCount(), progressbar.OptionUseIECUnits(true))
		}
		t.bar = progressbar.NewOptions64(total, opts...)
	}
	return t
}

// Add counts n more units of work done.
func (t *Task) Add(n int64) {
	if t == nil {
		return
	}
	t.done += n
	if t.bar != nil {
		t.bar.Add64(n)
		return
	}
	if t.total <= 0 {
		return
	}
	// Plain output gets a line at each quarter, not one per call.
	if q := min(t.done*4/t.total, 3); q > t.quarter {
		t.quarter = q
		fmt.Fprintf(t.r.w, "%s%s: %d%%\n", t.r.prefix, t.desc, q*25)
	}
}

// Write counts len(p) bytes done; it never fails.
func (t *Task) Write(p []byte) (int, error) {
	t.Add(int64(len(p)))
	return len(p), nil
}

// Done ends the task with a line saying how long it took.
func (t *Task) Done() {
	if t == nil {
		return
	}
	if t.bar != nil {
		t.bar.Finish()
	}
	fmt.Fprintf(t.r.w, "%s%s done in %.1fs\n", t.r.prefix, t.desc, time.Since(t.begin).Seconds())
}
