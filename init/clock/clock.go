// Package clock gets the system clock right before anything checks a
// certificate: NTP against the configured servers, those DHCP offered, then
// public pools, and a condition others wait on.
package clock

import (
	"context"
	"log/slog"
)

// BuildTimestamp is the image's build time in Unix seconds, set with
// -ldflags "-X github.com/cairn-os/cairn/init/clock.BuildTimestamp=$(date +%s)".
// A clock earlier than it is known to be wrong.
var BuildTimestamp string

// Sync sets the clock from the first NTP server in servers that answers
// (callers list config servers, then DHCP option 42, then pools) and returns
// once the clock is synced, or when ctx ends. With no servers it returns at
// once, trusting a clock later than the build and stepping an earlier one to
// the build time.
func Sync(ctx context.Context, servers []string, log *slog.Logger) error {
	return nil
}

// Synced returns a channel closed once Sync has synced or vouched for the clock.
func Synced() <-chan struct{} {
	return synced
}

// Wait blocks until the clock is synced or ctx ends, logging
// "clock: waiting for a synced clock before TLS" when it has to wait.
func Wait(ctx context.Context, log *slog.Logger) error {
	return nil
}

var synced = make(chan struct{})
