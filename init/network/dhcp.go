package network

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/init/supervise"
)

// dhcpClient keeps one link leased, following RFC 2131's states: INIT
// (broadcast DISCOVER), BOUND, RENEWING at T1 (unicast REQUEST to the
// server), REBINDING at T2 (broadcast REQUEST), and back to INIT when the
// lease expires or a server says NAK.
type dhcpClient struct {
	link     string
	hostname string
	log      *slog.Logger
	state    *State
	res      *resolver
	bound    chan struct{} // closed at the first lease

	lease  *nclient4.Lease
	addr   netip.Prefix
	routes []*netlink.Route
}

// Retry pacing. Vars so tests could shorten them; the values follow
// common client practice (RFC 2131 asks for randomised, growing delays).
var (
	dhcpAttempt    = 4 * time.Second  // first wait for an answer, doubled per retransmission
	dhcpMaxBackoff = 32 * time.Second // between full DISCOVER rounds
	minRetry       = 10 * time.Second // between renewal attempts
)

func (c *dhcpClient) modifiers() []dhcpv4.Modifier {
	m := []dhcpv4.Modifier{dhcpv4.WithRequestedOptions(
		dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
		dhcpv4.OptionDomainName, dhcpv4.OptionInterfaceMTU, dhcpv4.OptionBroadcastAddress,
		dhcpv4.OptionNTPServers, dhcpv4.OptionIPAddressLeaseTime, dhcpv4.OptionRenewTimeValue,
		dhcpv4.OptionRebindingTimeValue, dhcpv4.OptionDNSDomainSearchList, dhcpv4.OptionClasslessStaticRoute,
	)}
	if c.hostname != "" {
		m = append(m, dhcpv4.WithOption(dhcpv4.OptHostName(c.hostname)))
	}
	return m
}

// run keeps the link leased until ctx ends. The address stays when it does:
// the kernel expires it with the lease, and a shutting-down node should keep
// talking until its last service has stopped.
func (c *dhcpClient) run(ctx context.Context) {
	seedRandom()
	backoff := dhcpAttempt
	for ctx.Err() == nil {
		lease, err := c.discover(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Warn(fmt.Sprintf("network: no DHCP lease on %s yet (%v); asking again in %s", c.link, err, backoff))
			supervise.Sleep(ctx, backoff)
			backoff = min(2*backoff, dhcpMaxBackoff)
			continue
		}
		backoff = dhcpAttempt
		if err := c.apply(lease); err != nil {
			c.log.Error(fmt.Sprintf("network: applying the DHCP lease on %s: %v", c.link, err))
			c.drop()
			supervise.Sleep(ctx, backoff)
			continue
		}
		c.log.Info(fmt.Sprintf("network: up %s %s via dhcp", c.link, c.addr))
		select {
		case <-c.bound:
		default:
			close(c.bound)
		}
		c.keep(ctx)
	}
}

// runGuarded is run, restarted after a panic: PID 1 must survive a bug in
// the client, and the node must keep its lease.
func (c *dhcpClient) runGuarded(ctx context.Context) {
	for ctx.Err() == nil {
		if !c.runRecovering(ctx) {
			return
		}
		supervise.Sleep(ctx, dhcpAttempt)
	}
}

// runRecovering runs the client and reports whether it panicked.
func (c *dhcpClient) runRecovering(ctx context.Context) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error(fmt.Sprintf("network: DHCP client on %s stopped by an internal error (%v); restarting it in %s, please report this", c.link, r, dhcpAttempt))
			c.log.Debug(string(debug.Stack()))
			panicked = true
		}
	}()
	c.run(ctx)
	return false
}

// seedRandom waits, once, for the kernel's random pool. The DHCP library
// draws transaction IDs with non-blocking getrandom calls, which fail until
// the pool is ready and, early in boot on a machine without a hardware RNG
// (QEMU under TCG), never make it ready; a blocking read, as crypto/rand
// does, lets the kernel gather jitter entropy and finishes in about a second.
var seedRandom = sync.OnceFunc(func() {
	var b [4]byte
	crand.Read(b[:])
})

// discover runs DISCOVER/OFFER/REQUEST/ACK on a raw socket, since the link
// has no address yet.
func (c *dhcpClient) discover(ctx context.Context) (*nclient4.Lease, error) {
	cl, err := nclient4.New(c.link, nclient4.WithTimeout(dhcpAttempt), nclient4.WithRetry(3))
	if err != nil {
		return nil, fmt.Errorf("opening a DHCP socket: %w", err)
	}
	defer cl.Close()
	return cl.Request(ctx, c.modifiers()...)
}

// keep holds the lease until it is lost, renewing and rebinding.
func (c *dhcpClient) keep(ctx context.Context) {
	for {
		ack := c.lease.ACK
		start := c.lease.CreationTime
		lt := ack.IPAddressLeaseTime(time.Hour)
		t1 := start.Add(ack.IPAddressRenewalTime(lt / 2))
		t2 := start.Add(ack.IPAddressRebindingTime(lt * 7 / 8))
		expiry := start.Add(lt)
		if !sleepUntil(ctx, t1) {
			return
		}
		renewed := false
		for now := time.Now(); now.Before(expiry) && !renewed; now = time.Now() {
			rebinding := !now.Before(t2)
			end := t2
			if rebinding {
				end = expiry
			}
			lease, err := c.renew(ctx, rebinding, end)
			var nak *nclient4.ErrNak
			switch {
			case ctx.Err() != nil:
				return
			case errors.As(err, &nak):
				c.log.Warn(fmt.Sprintf("network: the DHCP server refused to renew %s on %s; asking for a new lease", c.addr, c.link))
				c.drop()
				return
			case err == nil:
				if err := c.apply(lease); err != nil {
					c.log.Error(fmt.Sprintf("network: applying the renewed lease on %s: %v", c.link, err))
					sleepUntil(ctx, minTime(time.Now().Add(minRetry), expiry))
					continue
				}
				c.log.Info(fmt.Sprintf("network: lease renewed on %s %s for %s", c.link, c.addr, lease.ACK.IPAddressLeaseTime(time.Hour)))
				renewed = true
			default:
				// RFC 2131 4.4.5: wait half the time left, at least a minute
				// there (minRetry here, as leases can be short).
				wait := max(time.Until(end)/2, minRetry)
				c.log.Debug(fmt.Sprintf("network: renewing the lease on %s failed: %v; again in %s", c.link, err, wait))
				sleepUntil(ctx, minTime(time.Now().Add(wait), expiry))
			}
		}
		if !renewed {
			if ctx.Err() != nil {
				return
			}
			c.log.Warn(fmt.Sprintf("network: the lease for %s on %s expired; asking for a new one", c.addr, c.link))
			c.drop()
			return
		}
	}
}

// renew sends one REQUEST for the current address: unicast to the server
// that granted it while RENEWING, broadcast while REBINDING.
func (c *dhcpClient) renew(ctx context.Context, rebinding bool, until time.Time) (*nclient4.Lease, error) {
	ctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	var cl *nclient4.Client
	var err error
	if rebinding {
		cl, err = nclient4.New(c.link, nclient4.WithTimeout(dhcpAttempt), nclient4.WithRetry(3))
	} else {
		server := c.lease.ACK.ServerIdentifier()
		if server == nil {
			server = c.lease.Offer.ServerIdentifier()
		}
		var conn net.PacketConn
		conn, err = unicastConn(c.link)
		if err == nil {
			var l netlink.Link
			if l, err = netlink.LinkByName(c.link); err == nil {
				cl, err = nclient4.NewWithConn(conn, l.Attrs().HardwareAddr,
					nclient4.WithServerAddr(&net.UDPAddr{IP: server, Port: nclient4.ServerPort}),
					nclient4.WithTimeout(dhcpAttempt), nclient4.WithRetry(3))
			}
			if err != nil {
				conn.Close()
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("opening a DHCP socket: %w", err)
	}
	defer cl.Close()
	xid, err := dhcpv4.GenerateTransactionID()
	if err != nil {
		return nil, err
	}
	req, err := dhcpv4.NewRenewFromAck(c.lease.ACK, append(c.modifiers(), dhcpv4.WithTransactionID(xid))...)
	if err != nil {
		return nil, err
	}
	resp, err := cl.SendAndRead(ctx, cl.RemoteAddr(), req, nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak))
	if err != nil {
		return nil, err
	}
	if resp.MessageType() == dhcpv4.MessageTypeNak {
		return nil, &nclient4.ErrNak{Offer: c.lease.Offer, Nak: resp}
	}
	return &nclient4.Lease{Offer: c.lease.Offer, ACK: resp, CreationTime: time.Now()}, nil
}

// unicastConn is a UDP socket on the client port of one link, for RENEWING:
// requests go to the server by unicast, the ACK comes back by unicast and a
// NAK by broadcast, so it binds the wildcard address, tied to the link (and
// shareable with the other links' clients).
func unicastConn(link string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			serr = unix.BindToDevice(int(fd), link)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", nclient4.ClientPort))
}

// apply puts a lease on the link: address with the lease's lifetime, MTU,
// routes, DNS and NTP servers.
func (c *dhcpClient) apply(lease *nclient4.Lease) error {
	ack := lease.ACK
	l, err := netlink.LinkByName(c.link)
	if err != nil {
		return err
	}
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || ip.IsUnspecified() {
		return errors.New("the ACK carries no address")
	}
	mask := ack.SubnetMask()
	if mask == nil {
		mask = net.CIDRMask(32, 32) // a classful default would be a guess
	}
	ones, _ := mask.Size()
	prefix := netip.PrefixFrom(ip, ones)
	if c.addr.IsValid() && c.addr != prefix {
		c.drop()
	}
	secs := int(ack.IPAddressLeaseTime(time.Hour) / time.Second)
	addr := &netlink.Addr{IPNet: prefixNet(prefix), ValidLft: secs, PreferedLft: secs}
	if ones < 31 {
		addr.Broadcast = broadcast(prefix)
	}
	if b := ack.BroadcastAddress(); b != nil {
		addr.Broadcast = b
	}
	if mtu := ack.GetOneOption(dhcpv4.OptionInterfaceMTU); len(mtu) == 2 {
		if m := int(binary.BigEndian.Uint16(mtu)); m >= 576 && m != l.Attrs().MTU {
			if err := netlink.LinkSetMTU(l, m); err != nil {
				return fmt.Errorf("setting MTU %d: %w", m, err)
			}
		}
	}
	if err := netlink.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("adding %s: %w", prefix, err)
	}
	c.addr = prefix
	c.lease = lease
	if err := c.setRoutes(l.Attrs().Index, prefix, ack); err != nil {
		return err
	}
	var dns []netip.Addr
	for _, s := range ack.DNS() {
		if a, ok := netip.AddrFromSlice(s.To4()); ok {
			dns = append(dns, a)
		}
	}
	var search []string
	if ds := ack.DomainSearch(); ds != nil {
		search = ds.Labels
	} else if d := ack.DomainName(); d != "" {
		search = []string{d}
	}
	c.res.set("dhcp:"+c.link, dns, search)
	var ntp []netip.Addr
	for _, s := range ack.NTPServers() {
		if a, ok := netip.AddrFromSlice(s.To4()); ok {
			ntp = append(ntp, a)
		}
	}
	c.state.setNTP(c.link, ntp)
	c.state.setAddrs(c.link, []netip.Prefix{prefix})
	return nil
}

// setRoutes installs the lease's routes: the classless static routes of
// option 121 when present (RFC 3442 says the router option is then
// ignored), else a default route through the first router. Routes the
// previous lease had and this one lacks are removed.
func (c *dhcpClient) setRoutes(index int, prefix netip.Prefix, ack *dhcpv4.DHCPv4) error {
	metric := 1024 + index // one default route per link, lowest index preferred
	var want []*netlink.Route
	onLink := func(gw net.IP) {
		a, ok := netip.AddrFromSlice(gw.To4())
		if ok && !prefix.Contains(a) {
			want = append(want, &netlink.Route{LinkIndex: index, Dst: &net.IPNet{IP: gw.To4(), Mask: net.CIDRMask(32, 32)},
				Scope: netlink.SCOPE_LINK, Protocol: unix.RTPROT_DHCP, Priority: metric, Src: prefix.Addr().AsSlice()})
		}
	}
	if classless := ack.ClasslessStaticRoute(); len(classless) > 0 {
		for _, r := range classless {
			rt := &netlink.Route{LinkIndex: index, Protocol: unix.RTPROT_DHCP, Priority: metric, Src: prefix.Addr().AsSlice()}
			if ones, _ := r.Dest.Mask.Size(); ones > 0 {
				rt.Dst = &net.IPNet{IP: r.Dest.IP.Mask(r.Dest.Mask).To4(), Mask: r.Dest.Mask}
			}
			if r.Router == nil || r.Router.IsUnspecified() {
				rt.Scope = netlink.SCOPE_LINK
			} else {
				onLink(r.Router)
				rt.Gw = r.Router.To4()
			}
			want = append(want, rt)
		}
	} else if routers := ack.Router(); len(routers) > 0 && !routers[0].IsUnspecified() {
		onLink(routers[0])
		want = append(want, &netlink.Route{LinkIndex: index, Gw: routers[0].To4(), Protocol: unix.RTPROT_DHCP, Priority: metric, Src: prefix.Addr().AsSlice()})
	}
	keep := map[string]bool{}
	for _, r := range want {
		keep[routeKey(r)] = true
	}
	for _, r := range c.routes {
		if !keep[routeKey(r)] {
			netlink.RouteDel(r)
		}
	}
	c.routes = nil
	var errs []error
	for _, r := range want {
		if err := netlink.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", routeKey(r), err))
			continue
		}
		c.routes = append(c.routes, r)
	}
	return errors.Join(errs...)
}

func routeKey(r *netlink.Route) string {
	dst := "default"
	if r.Dst != nil {
		dst = r.Dst.String()
	}
	if r.Gw != nil {
		return dst + " via " + r.Gw.String()
	}
	return dst + " dev"
}

// drop removes what the lease put on the link.
func (c *dhcpClient) drop() {
	if !c.addr.IsValid() {
		return
	}
	for _, r := range c.routes {
		netlink.RouteDel(r)
	}
	c.routes = nil
	if l, err := netlink.LinkByName(c.link); err == nil {
		netlink.AddrDel(l, &netlink.Addr{IPNet: prefixNet(c.addr)})
	}
	c.res.set("dhcp:"+c.link, nil, nil)
	c.state.setNTP(c.link, nil)
	c.state.setAddrs(c.link, nil)
	c.addr = netip.Prefix{}
	c.lease = nil
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	return supervise.Sleep(ctx, time.Until(t))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
