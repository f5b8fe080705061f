package supervise

import (
	"fmt"
	"log/slog"
	"runtime/debug"
)

// Go runs fn in a new goroutine that survives a panic: PID 1 must never
// die, so the panic and its stack are logged and the goroutine ends. Every
// goroutine the init starts goes through Go (or recovers the same way).
func Go(name string, fn func()) {
	go func() {
		defer Recover(name)
		fn()
	}()
}

// Recover logs a panic in the calling goroutine instead of letting it kill
// the process. Call it deferred: defer supervise.Recover("network").
func Recover(name string) {
	if r := recover(); r != nil {
		slog.Error(fmt.Sprintf("%s: internal error (panic): %v; the init keeps running, please report this with the stack below", name, r))
		slog.Error(string(debug.Stack()))
	}
}
