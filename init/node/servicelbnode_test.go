package node

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSharedReady: many elections asking at once cost one check of the
// apiserver; a check its caller cut short is not the others' answer.
func TestSharedReady(t *testing.T) {
	var checks atomic.Int32
	notReady := errors.New("/readyz answered 500")
	var failing atomic.Bool
	check := func(ctx context.Context) error {
		checks.Add(1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if failing.Load() {
			return notReady
		}
		return nil
	}
	ready := sharedReady(check, time.Hour)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := ready(context.Background()); err != nil {
				t.Errorf("ready: %v", err)
			}
		})
	}
	wg.Wait()
	if n := checks.Load(); n != 1 {
		t.Errorf("20 callers at once: %d checks, want 1", n)
	}

	ready = sharedReady(check, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ready(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("a canceled caller: %v", err)
	}
	failing.Store(true)
	if err := ready(context.Background()); !errors.Is(err, notReady) {
		t.Errorf("after a canceled check, the next caller gets %v; want its own check's %v", err, notReady)
	}
}
