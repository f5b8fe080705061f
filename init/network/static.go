package network

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/config"
)

// applyStatic brings a link up with its MTU, static addresses, routes and
// nameservers. DHCP, when asked for, starts afterwards.
func applyStatic(j job, st *State, res *resolver, log *slog.Logger) error {
	l, err := netlink.LinkByName(j.link)
	if err != nil {
		return fmt.Errorf("network: %s: %w", j.link, err)
	}
	in := j.iface
	if in.MTU > 0 && l.Attrs().MTU != in.MTU {
		if err := netlink.LinkSetMTU(l, in.MTU); err != nil {
			return fmt.Errorf("network: %s: setting MTU %d: %w", j.link, in.MTU, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("network: bringing up %s: %w", j.link, err)
	}
	var prefixes []netip.Prefix
	for _, a := range in.Addresses {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return fmt.Errorf("network: %s: address %q is not CIDR (like 192.168.1.10/24): %w", j.link, a, err)
		}
		addr := &netlink.Addr{IPNet: prefixNet(p)}
		if p.Addr().Is4() && p.Bits() < 31 {
			addr.Broadcast = broadcast(p)
		}
		if err := netlink.AddrReplace(l, addr); err != nil {
			return fmt.Errorf("network: %s: adding %s: %w", j.link, p, err)
		}
		prefixes = append(prefixes, p)
		log.Info(fmt.Sprintf("network: up %s %s via static", j.link, p))
	}
	if len(prefixes) > 0 {
		st.setAddrs(j.link, prefixes)
	}
	routes := append([]config.Route(nil), in.Routes...)
	if in.Gateway4 != "" {
		routes = append(routes, config.Route{To: "default", Via: in.Gateway4})
	}
	for _, r := range routes {
		rt, err := staticRoute(l.Attrs().Index, r)
		if err != nil {
			return fmt.Errorf("network: %s: %w", j.link, err)
		}
		if err := netlink.RouteReplace(rt); err != nil {
			return fmt.Errorf("network: %s: route to %s via %s: %w", j.link, r.To, r.Via, err)
		}
	}
	if ns := in.Nameservers; ns != nil {
		var servers []netip.Addr
		for _, s := range ns.Addresses {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return fmt.Errorf("network: %s: nameserver %q is not an IP address", j.link, s)
			}
			servers = append(servers, a)
		}
		res.set("static:"+j.link, servers, ns.Search)
	}
	return nil
}

func staticRoute(index int, r config.Route) (*netlink.Route, error) {
	rt := &netlink.Route{LinkIndex: index, Priority: r.Metric, Protocol: unix.RTPROT_STATIC}
	if r.To != "default" && r.To != "0.0.0.0/0" && r.To != "::/0" {
		p, err := netip.ParsePrefix(r.To)
		if err != nil {
			return nil, fmt.Errorf("route to %q: not \"default\" or CIDR", r.To)
		}
		rt.Dst = prefixNet(p.Masked())
	}
	if r.Via != "" {
		gw, err := netip.ParseAddr(r.Via)
		if err != nil {
			return nil, fmt.Errorf("route to %s: via %q is not an IP address", r.To, r.Via)
		}
		rt.Gw = gw.AsSlice()
		if rt.Dst == nil && gw.Is6() {
			rt.Dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
	} else {
		rt.Scope = netlink.SCOPE_LINK
	}
	return rt, nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func broadcast(p netip.Prefix) net.IP {
	a := p.Addr().As4()
	m := net.CIDRMask(p.Bits(), 32)
	for i := range a {
		a[i] |= ^m[i]
	}
	return net.IP(a[:])
}
