// Package boot holds the init's boot steps: API file systems, kernel
// modules and coldplug, finding and mounting the system image, and the
// switch to it. Each step is a small value with a name; Run executes a
// table of them and reports each on the console.
package boot

import (
	"fmt"
	"log/slog"
	"time"
)

// Step is one named boot action.
type Step interface {
	// String says what the step does, for the console ("mount /proc").
	String() string
	// Run performs the step.
	Run() error
}

// Policy is what a failed step means for the boot.
type Policy int

const (
	// Continue logs the failure and goes on with the next step.
	Continue Policy = iota
	// Stop logs the failure and skips the remaining steps of the table.
	Stop
)

// Entry is a step and what its failure means.
type Entry struct {
	Step
	OnError Policy
}

// Run runs the steps in order. Each is logged at debug level before it
// runs; a failure is printed with the step's name. It returns the first
// error of a Stop step (after which nothing else ran).
func Run(steps []Entry) error {
	for _, e := range steps {
		start := time.Now()
		slog.Debug(e.String())
		err := e.Run()
		if err == nil {
			slog.Debug(fmt.Sprintf("%s: done in %s", e, time.Since(start).Round(time.Millisecond)))
			continue
		}
		if e.OnError == Stop {
			return fmt.Errorf("%s: %w", e, err)
		}
		slog.Warn(fmt.Sprintf("%s: %v", e, err))
	}
	return nil
}

// Func is a step made from a function and its name.
type Func struct {
	Name string
	Fn   func() error
}

func (f Func) String() string { return f.Name }
func (f Func) Run() error     { return f.Fn() }
