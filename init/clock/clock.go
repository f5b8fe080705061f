// Package clock gets the system clock right before anything checks a
// certificate: NTP against the configured servers, those DHCP offered, then
// the configured pools; and a condition others wait on.
//
// A board without a real-time clock boots in 1970, where every certificate
// is "not yet valid". With servers to ask, Sync keeps asking until one
// answers. With none, it vouches for any clock later than the build (and
// steps an earlier one forward to the build time), so a machine without NTP
// still comes up.
package clock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beevik/ntp"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/config"
)

// BuildTimestamp is the image's build time in Unix seconds, set with
// -ldflags "-X github.com/cairn-os/cairn/init/clock.BuildTimestamp=$(date +%s)".
// A clock earlier than it is known to be wrong. Unset, buildFloor is used.
var BuildTimestamp string

// buildFloor is a date this code was written after: the least a clock can
// be without being plainly wrong, when no build time was stamped in.
var buildFloor = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

// StepThreshold is the offset above which Sync steps the clock. Smaller
// offsets do not matter to certificate checks and are left alone.
const StepThreshold = time.Second

// Seams for tests: the host's clock is not ours to change there.
var (
	now      = time.Now
	setClock = func(t time.Time) error {
		ts := unix.NsecToTimespec(t.UnixNano())
		return unix.ClockSettime(unix.CLOCK_REALTIME, &ts)
	}
	query = func(server string) (time.Duration, error) {
		r, err := ntp.QueryWithOptions(server, ntp.QueryOptions{Timeout: 5 * time.Second})
		if err != nil {
			return 0, err
		}
		if err := r.Validate(); err != nil {
			return 0, err
		}
		return r.ClockOffset, nil
	}
	firstRetry = 2 * time.Second
	maxRetry   = time.Minute
)

var (
	mu          sync.Mutex
	synced      = make(chan struct{})
	waitLogOnce sync.Once
)

// Servers lists the NTP servers to ask, in order: the config's servers,
// those DHCP offered (option 42), then the config's pools.
func Servers(cfg *config.NTP, dhcp []netip.Addr) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if cfg != nil {
		for _, s := range cfg.Servers {
			add(s)
		}
	}
	for _, a := range dhcp {
		add(a.String())
	}
	if cfg != nil {
		for _, s := range cfg.Pools {
			add(s)
		}
	}
	return out
}

// Sync sets the clock from the first of servers that answers and returns
// once the clock is synced, or with ctx's error when ctx ends first. It
// keeps retrying, with a console line saying the node waits, as long as no
// server answers. With no servers it returns at once: a clock later than
// the build is trusted, an earlier one is stepped to the build time.
func Sync(ctx context.Context, servers []string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(servers) == 0 {
		floor := buildTime()
		t := now()
		if t.Before(floor) {
			if err := setClock(floor); err != nil {
				return fmt.Errorf("clock: setting the clock to the build time %s: %w", floor.Format(time.RFC3339), err)
			}
			log.Warn(fmt.Sprintf("clock: no NTP servers configured or offered by DHCP; the clock said %s, before this build, so it is set to %s (configure ntp.servers for the real time)",
				t.UTC().Format(time.RFC3339), floor.Format(time.RFC3339)))
		} else {
			log.Info(fmt.Sprintf("clock: no NTP servers configured or offered by DHCP; trusting the system clock (%s, later than the build)", t.UTC().Format(time.RFC3339)))
		}
		markSynced()
		return nil
	}
	delay := firstRetry
	for {
		var errs []string
		for _, s := range servers {
			offset, err := query(s)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", s, err))
				continue
			}
			if offset > StepThreshold || offset < -StepThreshold {
				if err := setClock(now().Add(offset)); err != nil {
					return fmt.Errorf("clock: stepping the clock by %s from %s: %w", offset, s, err)
				}
			}
			log.Info(fmt.Sprintf("clock: synced from %s (offset %s)", s, offset.Round(time.Millisecond)))
			markSynced()
			return nil
		}
		waitLogOnce.Do(func() { log.Warn("clock: waiting for a synced clock before TLS") })
		log.Warn(fmt.Sprintf("clock: no NTP server answered (%s); asking again in %s", strings.Join(errs, "; "), delay))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("clock: gave up waiting for NTP: %w", ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, maxRetry)
	}
}

// Vouch marks the clock synced without asking NTP or touching it: for the
// container platform, where the host keeps the time and the init must not
// step the host's clock.
func Vouch(reason string, log *slog.Logger) {
	if log != nil {
		log.Info("clock: not synced by cairn: " + reason)
	}
	markSynced()
}

// Synced returns a channel closed once Sync has synced or vouched for the clock.
func Synced() <-chan struct{} {
	mu.Lock()
	defer mu.Unlock()
	return synced
}

// Wait blocks until the clock is synced or ctx ends, logging
// "clock: waiting for a synced clock before TLS" when it has to wait.
func Wait(ctx context.Context, log *slog.Logger) error {
	ch := Synced()
	select {
	case <-ch:
		return nil
	default:
	}
	if log != nil {
		waitLogOnce.Do(func() { log.Warn("clock: waiting for a synced clock before TLS") })
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return errors.Join(errors.New("clock: not synced"), ctx.Err())
	}
}

func markSynced() {
	mu.Lock()
	defer mu.Unlock()
	select {
	case <-synced:
	default:
		close(synced)
	}
}

// buildTime is BuildTimestamp, or buildFloor when it is unset or garbled.
func buildTime() time.Time {
	if s, err := strconv.ParseInt(BuildTimestamp, 10, 64); err == nil && s > 0 {
		t := time.Unix(s, 0).UTC()
		if t.After(buildFloor) {
			return t
		}
	}
	return buildFloor
}
