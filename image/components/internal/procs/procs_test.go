package procs

import (
	"context"
	"runtime"
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	p := Policy{Max: 4, Busy: 0.4, Idle: 0.1, Quiet: 3}
	for _, tt := range []struct {
		name             string
		cur              int
		share            float64
		quiet            int
		wantProcs, wantQ int
	}{
		{"busy from one P: all of them at once", 1, 0.9, 0, 4, 0},
		{"busy while it has them: kept", 4, 0.5, 2, 4, 0},
		{"first quiet period: kept", 4, 0.02, 0, 4, 1},
		{"second quiet period: kept", 4, 0.02, 1, 4, 2},
		{"third quiet period: one P", 4, 0.02, 2, 1, 3},
		{"quiet with one P: stays", 1, 0.0, 7, 1, 8},
		{"between the thresholds: kept, the quiet run broken", 4, 0.2, 2, 4, 0},
		{"between the thresholds on one P: stays", 1, 0.3, 5, 1, 0},
	} {
		gotP, gotQ := p.Next(tt.cur, tt.share, tt.quiet)
		if gotP != tt.wantProcs || gotQ != tt.wantQ {
			t.Errorf("%s: Next(%d, %.2f, %d) = %d, %d; want %d, %d", tt.name, tt.cur, tt.share, tt.quiet, gotP, gotQ, tt.wantProcs, tt.wantQ)
		}
	}
}

// TestAdapt runs Adapt on this process: it goes to one P while the test
// waits, and back to two while a goroutine spins.
func TestAdapt(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("one CPU: nothing to adapt")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Adapt(ctx, Policy{Max: 2, Every: 50 * time.Millisecond, Busy: 0.2, Idle: 0.05, Quiet: 3})
	}()
	defer func() { cancel(); <-done }()

	waitProcs := func(want int, work func()) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for runtime.GOMAXPROCS(0) != want {
			if time.Now().After(deadline) {
				t.Fatalf("GOMAXPROCS is %d after 10 s, want %d", runtime.GOMAXPROCS(0), want)
			}
			work()
		}
	}
	waitProcs(1, func() { time.Sleep(20 * time.Millisecond) })
	spin := func() {
		for end := time.Now().Add(20 * time.Millisecond); time.Now().Before(end); {
		}
	}
	waitProcs(2, spin)
	waitProcs(1, func() { time.Sleep(20 * time.Millisecond) })
}

func TestAdaptOneCPU(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { Adapt(ctx, Policy{Max: 1, Every: time.Millisecond}); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Adapt with Max 1 did not return at once")
	}
}

func TestFixed(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	if Fixed() {
		t.Error("an empty GOMAXPROCS counted as set")
	}
	t.Setenv("GOMAXPROCS", "1")
	if !Fixed() {
		t.Error("GOMAXPROCS=1 not counted as set")
	}
}
