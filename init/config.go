package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/init/boot"
	"github.com/cairn-os/cairn/init/clock"
	"github.com/cairn-os/cairn/init/datasource"
	"github.com/cairn-os/cairn/init/network"
	"github.com/cairn-os/cairn/init/supervise"

	"golang.org/x/sys/unix"
)

// Retrying an invalid or unreachable config: the first wait, and the cap.
var (
	configRetryFirst = 5 * time.Second
	configRetryMax   = time.Minute
)

// loadConfig gathers the config sources and loads them, retrying with
// backoff until the result is valid. Sources on the network need the
// network first: it comes up from the local sources' network section (or
// DHCP on every link) before they are read.
func (st *initState) loadConfig(ctx context.Context) *config.Config {
	delay := configRetryFirst
	for {
		opts := datasource.Options{
			Cmdline:   st.cmdline.String(),
			Log:       slog.Default(),
			NoDevices: st.platform == Container,
		}
		local := opts
		local.LocalOnly = true
		srcs, err := datasource.Gather(ctx, local)
		if err == nil && datasource.NeedsNetwork(opts) {
			if st.net == nil {
				var netCfg *config.Network
				var hostname string
				if c, diags := config.Load(srcs...); !diags.HasErrors() {
					netCfg, hostname = c.Network, c.Hostname
				}
				st.startNetwork(ctx, netCfg, hostname)
			}
			srcs, err = datasource.Gather(ctx, opts)
		}
		cfg, lines := readConfig(srcs, err)
		for _, l := range lines {
			st.log.Printf("%s", l)
		}
		if cfg != nil {
			return cfg
		}
		st.log.Printf("config: invalid, nothing applied; retrying sources in %s", delay)
		select {
		case <-ctx.Done():
			return &config.Config{}
		case <-time.After(delay):
		}
		delay = min(delay*2, configRetryMax)
	}
}

// readConfig loads what a Gather of the sources returned: the config when
// it may be applied (nil when not), and the console's lines about it. A
// refused source (there, but unreadable, too large or not a config) stops
// the boot as an invalid config does, a line for each; it never counts as
// absent, so a node never starts on the defaults when it was given a
// config it cannot use.
func readConfig(srcs []config.Source, err error) (*config.Config, []string) {
	var refused datasource.RefusedError
	switch {
	case errors.As(err, &refused):
		var lines []string
		for _, r := range refused {
			lines = append(lines, fmt.Sprintf("config: %s: error: %v", r.Source, r.Err))
		}
		return nil, lines
	case err != nil:
		return nil, []string{fmt.Sprintf("config: reading the sources failed: %v", err)}
	}
	var lines []string
	cfg, diags := config.Load(srcs...)
	for _, d := range diags {
		if d.Severity != config.Error || cfg == nil {
			lines = append(lines, fmt.Sprintf("config: %s", d))
		}
	}
	if diags.HasErrors() || cfg == nil {
		return nil, lines
	}
	if names := cfg.Sources(); len(names) == 0 {
		lines = append(lines, "config: loaded from defaults (no config source found)")
	} else {
		lines = append(lines, "config: loaded from "+strings.Join(names, ", "))
	}
	return cfg, lines
}

// applyConfig sets the hostname, sysctls and files. A failure is printed
// and the boot goes on: the node stays reachable to be fixed.
func (st *initState) applyConfig(cfg *config.Config) {
	if cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			st.log.Printf("config: setting the hostname to %q failed: %v", cfg.Hostname, err)
		} else if err := boot.WriteHostname("/", cfg.Hostname); err != nil {
			st.log.Printf("config: writing /etc/hostname failed: %v", err)
		}
	}
	if err := boot.ApplySysctls("/", cfg.Sysctl); err != nil {
		st.log.Printf("config: %v", err)
	}
	if err := boot.WriteFiles("/", cfg.WriteFiles); err != nil {
		st.log.Printf("config: %v", err)
	}
}

// startNetwork brings the links up; DHCP clients keep running until ctx ends.
func (st *initState) startNetwork(ctx context.Context, cfg *config.Network, hostname string) {
	if hostname == "" {
		if h, err := unixHostname(); err == nil {
			hostname = h
		}
	}
	state, err := network.Up(ctx, cfg, network.Options{Hostname: hostname, Log: slog.Default()})
	if err != nil {
		st.log.Printf("network: %s", strings.TrimPrefix(err.Error(), "network: "))
	}
	if state != nil {
		st.net, st.netCfg = state, cfg
	}
}

// identityLine names the machine and its addresses (network.State's, by
// link) once the network is up and its name decided, whatever it runs: the
// line to find a node by on a console.
func identityLine(hostname string, byLink map[string][]netip.Prefix) string {
	var addrs []string
	for _, link := range slices.Sorted(maps.Keys(byLink)) {
		for _, p := range byLink[link] {
			addrs = append(addrs, fmt.Sprintf("%s (%s)", p, link))
		}
	}
	if len(addrs) == 0 {
		return fmt.Sprintf("init: this is %s, with no address yet", hostname)
	}
	return fmt.Sprintf("init: this is %s at %s", hostname, strings.Join(addrs, ", "))
}

// startClock syncs the clock in the background from the configured
// servers, then those DHCP offered, then the pools; on the container platform the host
// keeps the time.
func (st *initState) startClock(ctx context.Context, cfg *config.Config) {
	if st.platform == Container {
		// The clock is the host's: never step it from a container.
		clock.Vouch("the container platform shares the host's clock", slog.Default())
		return
	}
	var dhcp []netip.Addr
	if st.net != nil {
		dhcp = st.net.NTPServers()
	}
	// Configured servers, then DHCP's option 42, then pools.
	servers := clock.Servers(cfg.NTP, dhcp)
	supervise.Go("clock", func() {
		if err := clock.Sync(ctx, servers, slog.Default()); err != nil {
			st.log.Printf("clock: %v", err)
		}
	})
}

func unixHostname() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Nodename[:]), nil
}
