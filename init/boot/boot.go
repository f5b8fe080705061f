// Package boot holds the init's boot steps: API file systems, kernel
// modules and coldplug, finding and mounting the system image, and the
// switch to it. Each step is a small value with a name; Run executes a
// table of them and reports each on the console.
package boot

import (
	"context"
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

// Run runs the steps in order, each announced on the console as
// "boot: <step>"; a failure is printed with the step's name. It returns the
// first error of a Stop step (after which nothing else ran).
func Run(steps []Entry) error {
	return run(steps, slog.LevelInfo)
}

func run(steps []Entry, announce slog.Level) error {
	for _, e := range steps {
		start := time.Now()
		slog.Log(context.Background(), announce, "boot: "+e.String())
		err := e.Run()
		if err == nil {
			slog.Debug(fmt.Sprintf("boot: %s: done in %s", e, time.Since(start).Round(time.Millisecond)))
			continue
		}
		if e.OnError == Stop {
			return fmt.Errorf("%s: %w", e, err)
		}
		slog.Warn(fmt.Sprintf("boot: %s: %v", e, err))
	}
	return nil
}

// Group is a named table of steps that the console shows as one line;
// its steps show with cairn.debug.
type Group struct {
	Name  string
	Steps []Entry
}

func (g Group) String() string { return g.Name }

// Run runs the steps.
func (g Group) Run() error { return run(g.Steps, slog.LevelDebug) }

// Func is a step made from a function and its name.
type Func struct {
	Name string
	Fn   func() error
}

func (f Func) String() string { return f.Name }
func (f Func) Run() error     { return f.Fn() }
