// Package supervise runs the node's long-lived programs as PID 1 does:
// each service is a small value (command, environment, dependencies, a
// readiness check, a restart policy with capped exponential backoff, where
// its output goes), every state change is reported as one console line, and
// orphans are reaped without stealing the exit status of supervised
// children. It also guards the init's own goroutines against panics.
package supervise
