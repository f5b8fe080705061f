package supervise

import (
	"context"
	"time"
)

// Sleep waits d, or less if ctx ends first: true when it waited d, false
// when ctx ended (the boot is over). Loops that poll read as
// `for supervise.Sleep(ctx, every) { … }`.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
