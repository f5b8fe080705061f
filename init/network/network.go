// Package network brings up the node's links: loopback, then DHCPv4 on every
// physical link, or the static addresses, routes, VLANs and bonds of the
// config's network section. It writes resolv.conf and keeps DHCP leases
// renewed until its context ends.
package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/cairn-os/cairn/config"
)

// Options tunes Up.
type Options struct {
	// Root prefixes /sys and /etc paths; empty means "/".
	Root string
	// Hostname is sent to DHCP servers (option 12).
	Hostname string
	// Log receives the console lines "network: up ..." and lease events.
	Log *slog.Logger
	// Timeout bounds how long Up waits for every link to get its address;
	// 0 means 30s. Links still waiting keep trying in the background.
	Timeout time.Duration
}

// State is what Up brought up. It is safe for concurrent use; DHCP clients
// keep updating it until Up's context ends.
type State struct {
	mu    sync.Mutex
	addrs map[string][]netip.Prefix
	ntp   map[string][]netip.Addr
}

func newState() *State {
	return &State{addrs: map[string][]netip.Prefix{}, ntp: map[string][]netip.Addr{}}
}

// Addresses returns the addresses of every configured link by name.
func (s *State) Addresses() map[string][]netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]netip.Prefix, len(s.addrs))
	for k, v := range s.addrs {
		out[k] = append([]netip.Prefix(nil), v...)
	}
	return out
}

// NTPServers returns the time servers DHCP offered (option 42), links in
// name order.
func (s *State) NTPServers() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var links []string
	for l := range s.ntp {
		links = append(links, l)
	}
	sort.Strings(links)
	var out []netip.Addr
	for _, l := range links {
		out = append(out, s.ntp[l]...)
	}
	return out
}

func (s *State) setAddrs(link string, p []netip.Prefix) { setLocked(&s.mu, s.addrs, link, p) }

func (s *State) setNTP(link string, a []netip.Addr) { setLocked(&s.mu, s.ntp, link, a) }

// setLocked sets m[link] under mu, deleting it when v is empty.
func setLocked[T any](mu *sync.Mutex, m map[string][]T, link string, v []T) {
	mu.Lock()
	defer mu.Unlock()
	if len(v) == 0 {
		delete(m, link)
		return
	}
	m[link] = v
}

// job is one link to address: static, DHCP, or just up.
type job struct {
	id    string // the config's name for it ("eth0", "lan", "bond0")
	link  string // the kernel's name
	iface config.Interface
}

// Up brings up loopback and then every link: per cfg, or DHCPv4 on every
// physical link when cfg is nil (every veth when there is no physical link,
// as in the container platform). Call it once per boot: its DHCP clients own
// their links until ctx ends. It returns when each link has its address
// or Options.Timeout passed; the error then names each link that failed or
// is still waiting (those keep trying until ctx ends).
func Up(ctx context.Context, cfg *config.Network, opts Options) (*State, error) {
	if opts.Root == "" {
		opts.Root = "/"
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	st := newState()
	log := opts.Log
	if lo, err := netlink.LinkByName("lo"); err != nil {
		return st, fmt.Errorf("network: no loopback link: %w", err)
	} else if err := netlink.LinkSetUp(lo); err != nil {
		return st, fmt.Errorf("network: bringing up lo: %w", err)
	}
	var errs []error
	var jobs []job
	if cfg == nil {
		links, err := physicalLinks(opts.Root)
		if err != nil {
			return st, err
		}
		if len(links) == 0 {
			// In the container platform the node's NIC is a veth.
			links = vethLinks()
		}
		if len(links) == 0 {
			log.Warn("network: no physical links found; only loopback is up")
		}
		for _, l := range links {
			jobs = append(jobs, job{id: l, link: l, iface: config.Interface{DHCP4: true}})
		}
	} else {
		jobs, errs = createLinks(cfg)
	}
	res := newResolver(opts.Root, log)
	var waits []*dhcpClient
	for _, j := range jobs {
		if err := applyStatic(j, st, res, log); err != nil {
			errs = append(errs, err)
			continue
		}
		if j.iface.DHCP4 {
			c := &dhcpClient{link: j.link, hostname: opts.Hostname, log: log, state: st, res: res, bound: make(chan struct{})}
			go c.runGuarded(ctx)
			waits = append(waits, c)
		}
	}
	res.write()
	timeout := time.After(opts.Timeout)
	expired := false
	for _, c := range waits {
		if !expired {
			select {
			case <-c.bound:
				continue
			case <-timeout:
				expired = true
			case <-ctx.Done():
				return st, ctx.Err()
			}
		}
		select {
		case <-c.bound:
		default:
			errs = append(errs, fmt.Errorf("network: %s has no DHCP lease after %s; still asking in the background", c.link, opts.Timeout))
		}
	}
	return st, errors.Join(errs...)
}
