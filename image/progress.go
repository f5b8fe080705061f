package image

import (
	"fmt"
	"io"
	"time"
)

// progress prints a step to a terminal when it takes longer than a second.
type progress struct {
	w     io.Writer
	msg   string
	begin time.Time
	timer *time.Timer
	shown chan bool
}

func newProgress(w io.Writer) *progress { return &progress{w: w} }

func (p *progress) start(msg string) {
	if p == nil || p.w == nil {
		return
	}
	p.msg, p.begin = msg, time.Now()
	shown := make(chan bool, 1)
	p.shown = shown
	p.timer = time.AfterFunc(time.Second, func() {
		fmt.Fprintf(p.w, "cairn: build: %s ...\n", msg)
		shown <- true
	})
}

func (p *progress) done() {
	if p == nil || p.w == nil || p.timer == nil {
		return
	}
	if !p.timer.Stop() {
		<-p.shown
		fmt.Fprintf(p.w, "cairn: build: %s done in %.1fs\n", p.msg, time.Since(p.begin).Seconds())
	}
	p.timer = nil
}
