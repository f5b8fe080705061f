// Package procs gives a daemon of cairn-node one P (GOMAXPROCS=1) while it
// is idle and all of them while it works.
//
// With more than one P, each time a timer readies a goroutine of an idle Go
// program, the runtime wakes a second thread to look for work on another P
// and finds none. The Kubernetes components have dozens of periodic timers,
// so at rest much of their CPU goes there (docs/performance.md, "A profile
// of an idle server"). One P has no second thread to wake; under a burst
// (a conformance run, a rollout) the program wants every CPU back. Adapt
// looks at the process's CPU time every period and moves between the two.
package procs

import (
	"context"
	"os"
	"runtime"
	"syscall"
	"time"
)

// Policy is when Adapt moves.
type Policy struct {
	// Max is the number of Ps while busy: the runtime's own choice at start
	// (the CPUs, or a container's CPU limit).
	Max int
	// Every is how often the CPU time is read.
	Every time.Duration
	// Busy: a period in which the process used more than this share of one
	// CPU gives it Max Ps at once.
	Busy float64
	// Idle: Quiet periods in a row, each below this share of one CPU, give
	// it one P.
	Idle  float64
	Quiet int
}

// Default is the policy of cairn-node's daemons. An idle server's
// components use 0.1-2.5% of a CPU each natively, and ten times that on a
// CPU as slow as QEMU's emulation: below a quarter of a CPU a program has
// no use for a second P. Above half of one, on one P, it is waiting for
// the CPU. 2 s is a wake-up a component hardly notices, and a burst runs
// on one P for at most that long.
func Default() Policy {
	return Policy{Max: runtime.GOMAXPROCS(0), Every: 2 * time.Second, Busy: 0.5, Idle: 0.25, Quiet: 3}
}

// Next is the number of Ps after a period in which the process used share
// of one CPU, with cur Ps now and quiet quiet periods before this one; it
// returns the quiet periods counted so far.
func (p Policy) Next(cur int, share float64, quiet int) (procs, quietNow int) {
	switch {
	case share > p.Busy:
		return p.Max, 0
	case share < p.Idle:
		quiet++
		if quiet >= p.Quiet {
			return 1, quiet
		}
		return cur, quiet
	default:
		return cur, 0
	}
}

// Fixed reports whether the environment sets GOMAXPROCS: a number given to
// a process is kept as given.
func Fixed() bool { return os.Getenv("GOMAXPROCS") != "" }

// Adapt moves the process between one P and Max until ctx ends. It starts
// at Max (a daemon's start is its busiest time) and does nothing when Max
// is 1.
func Adapt(ctx context.Context, p Policy) {
	if p.Max <= 1 || p.Every <= 0 {
		return
	}
	t := time.NewTicker(p.Every)
	defer t.Stop()
	cur, quiet := runtime.GOMAXPROCS(0), 0
	last, at := cpuTime(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			used := cpuTime()
			wall := now.Sub(at)
			if wall <= 0 || used < last {
				last, at = used, now
				continue
			}
			var next int
			next, quiet = p.Next(cur, float64(used-last)/float64(wall), quiet)
			last, at = used, now
			if next != cur {
				runtime.GOMAXPROCS(next)
				cur = next
			}
		}
	}
}

// cpuTime is the CPU time of the process, all its threads, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
