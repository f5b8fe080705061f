package vip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/init/supervise"
)

// announceAt is when the holder announces the address, after it took it:
// several times, spaced, so a lost frame or a switch that was busy
// learning does not leave the old MAC in the network's tables.
var announceAt = []time.Duration{0, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}

// netlinkAddress is the VIP on a link of this machine.
type netlinkAddress struct {
	vip  netip.Addr
	want LinkMatch

	mu   sync.Mutex
	gen  int // changes on every Add and Remove: an announcer of an older one stops
	held bool
	link netlink.Link
}

// NewAddress holds vip (as a /32 or /128) on the link want names.
func NewAddress(vip netip.Addr, want LinkMatch) Address {
	return &netlinkAddress{vip: vip, want: want}
}

func (a *netlinkAddress) family() int {
	if a.vip.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func (a *netlinkAddress) ipnet() *net.IPNet {
	return &net.IPNet{IP: a.vip.AsSlice(), Mask: net.CIDRMask(a.vip.BitLen(), a.vip.BitLen())}
}

// findLink is the link to hold the VIP on.
func (a *netlinkAddress) findLink() (netlink.Link, error) {
	if !a.want.zero() {
		links, err := netlink.LinkList()
		if err != nil {
			return nil, fmt.Errorf("listing links: %w", err)
		}
		for _, l := range links {
			at := l.Attrs()
			switch {
			case a.want.Name != "" && at.Name == a.want.Name,
				a.want.MAC != nil && at.HardwareAddr.String() == a.want.MAC.String(),
				a.want.Glob != "" && globMatch(a.want.Glob, at.Name):
				return l, nil
			}
		}
		return nil, fmt.Errorf("no link matches vip-interface (%s)", a.wantString())
	}
	addrs, err := netlink.AddrList(nil, a.family())
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	for _, ad := range addrs {
		p, ok := prefixOf(ad.IPNet)
		if !ok || p.Bits() == p.Addr().BitLen() || p.Addr() == a.vip || !p.Contains(a.vip) {
			continue
		}
		l, err := netlink.LinkByIndex(ad.LinkIndex)
		if err != nil {
			continue
		}
		return l, nil
	}
	return nil, fmt.Errorf("no link has an address in a subnet that holds %s (set kubernetes.vip-interface, or give the link an address in the VIP's subnet)", a.vip)
}

func (a *netlinkAddress) wantString() string {
	switch {
	case a.want.Name != "":
		return "name " + a.want.Name
	case a.want.MAC != nil:
		return "MAC " + a.want.MAC.String()
	}
	return "name " + a.want.Glob
}

func globMatch(glob, name string) bool {
	ok, _ := filepath.Match(glob, name)
	return ok
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}

// Add puts the VIP on its link.
func (a *netlinkAddress) Add() (string, error) {
	l, err := a.findLink()
	if err != nil {
		return "", err
	}
	addr := &netlink.Addr{IPNet: a.ipnet()}
	if a.vip.Is6() {
		// No duplicate address detection: the election already says no
		// other server has it, and DAD would keep it tentative for a second.
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := netlink.AddrAdd(l, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return "", fmt.Errorf("adding %s to %s: %w", a.vip, l.Attrs().Name, err)
	}
	a.mu.Lock()
	a.gen++
	a.held, a.link = true, l
	a.mu.Unlock()
	return l.Attrs().Name, nil
}

// Announce sends gratuitous ARP (or unsolicited NA) at the times of
// announceAt, in the background, until Remove or the next Add.
func (a *netlinkAddress) Announce() {
	a.mu.Lock()
	gen, link := a.gen, a.link
	a.mu.Unlock()
	if link == nil {
		return
	}
	supervise.Go("vip: announce", func() {
		start := time.Now()
		for _, at := range announceAt {
			time.Sleep(time.Until(start.Add(at)))
			// Under the lock: Remove waits for a send in progress, and
			// nothing is sent after it.
			a.mu.Lock()
			if !a.held || a.gen != gen {
				a.mu.Unlock()
				return
			}
			err := announce(link, a.vip)
			a.mu.Unlock()
			if err != nil {
				return
			}
		}
	})
}

// Remove takes the VIP off every link that has it.
func (a *netlinkAddress) Remove() ([]string, error) {
	a.mu.Lock()
	a.gen++
	a.held = false
	a.mu.Unlock()
	addrs, err := netlink.AddrList(nil, a.family())
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	var removed []string
	var errs []error
	for _, ad := range addrs {
		if p, ok := prefixOf(ad.IPNet); !ok || p.Addr() != a.vip {
			continue
		}
		l, err := netlink.LinkByIndex(ad.LinkIndex)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := netlink.AddrDel(l, &ad); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("removing %s from %s: %w", a.vip, l.Attrs().Name, err))
			continue
		}
		removed = append(removed, l.Attrs().Name)
	}
	return removed, errors.Join(errs...)
}

// announce sends the announcements of ip on link once.
func announce(link netlink.Link, ip netip.Addr) error {
	mac := link.Attrs().HardwareAddr
	if len(mac) != 6 {
		return nil // not Ethernet: nothing to announce
	}
	var frames [][]byte
	proto := uint16(etherTypeARP)
	dst := broadcastMAC
	if ip.Is4() {
		frames = gratuitousARP(mac, ip)
	} else {
		frames, proto, dst = [][]byte{unsolicitedNA(mac, ip)}, etherTypeIPv6, allNodesMAC
	}
	// Protocol 0: the socket only sends, nothing is queued to it.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("a packet socket: %w", err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: link.Attrs().Index, Halen: 6}
	copy(to.Addr[:], dst)
	for _, f := range frames {
		if err := unix.Sendto(fd, f, 0, to); err != nil {
			return fmt.Errorf("announcing %s on %s: %w", ip, link.Attrs().Name, err)
		}
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
