package image

import (
	report "github.com/cairn-os/cairn/image/progress"
)

// progress reports the build's long steps, one at a time, through the
// shared helper: a bar on a terminal, plain lines otherwise. A progress
// without a reporter says nothing.
type progress struct {
	r    *report.Reporter
	step *report.Task
}

func newProgress(r *report.Reporter) *progress { return &progress{r: r} }

// start begins a step whose size is not known.
func (p *progress) start(msg string) { p.startSized(msg, -1) }

// startSized begins a step of total bytes, counted with add.
func (p *progress) startSized(msg string, total int64) {
	if p != nil {
		p.step = p.r.Start(msg, total)
	}
}

// add counts n bytes of the current step.
func (p *progress) add(n int64) {
	if p != nil {
		p.step.Add(n)
	}
}

// done ends the current step.
func (p *progress) done() {
	if p != nil {
		p.step.Done()
		p.step = nil
	}
}
