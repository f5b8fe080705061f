package config

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// AddrRange is the addresses from First to Last, both included, of one
// family.
type AddrRange struct {
	First, Last netip.Addr
}

// Contains says whether a is in the range.
func (r AddrRange) Contains(a netip.Addr) bool {
	a = a.Unmap()
	return r.First.Compare(a) <= 0 && a.Compare(r.Last) <= 0
}

// Size is how many addresses the range holds, at most MaxPoolAddresses+1
// (a larger range is only "too large").
func (r AddrRange) Size() int {
	n := 1
	for a := r.First; a != r.Last; a = a.Next() {
		if n > MaxPoolAddresses {
			return n
		}
		n++
	}
	return n
}

func (r AddrRange) String() string {
	if r.First == r.Last {
		return r.First.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

func (r AddrRange) overlaps(o AddrRange) bool {
	return r.First.Is4() == o.First.Is4() && r.First.Compare(o.Last) <= 0 && o.First.Compare(r.Last) <= 0
}

// Pool is kubernetes.loadbalancer-pool: the addresses LoadBalancer
// Services get, in the order they are handed out.
type Pool []AddrRange

// MaxPoolAddresses bounds the pool: each address that a Service holds is
// a Lease renewed by a server every vip-retry-period, so a pool is a
// handful of addresses, and a range larger than this is a mistake.
const MaxPoolAddresses = 65536

// Contains says whether a is in the pool.
func (p Pool) Contains(a netip.Addr) bool {
	return slices.ContainsFunc(p, func(r AddrRange) bool { return r.Contains(a) })
}

// Size is how many addresses the pool holds.
func (p Pool) Size() int {
	n := 0
	for _, r := range p {
		n += r.Size()
	}
	return n
}

func (p Pool) String() string {
	var s []string
	for _, r := range p {
		s = append(s, r.String())
	}
	return strings.Join(s, ",")
}

// Pool parses kubernetes.loadbalancer-pool; nil when it is not set. The
// config must have been validated.
func (k *Kubernetes) Pool() (Pool, error) {
	var p Pool
	for _, e := range k.LoadBalancerPool {
		for _, part := range splitComma(e) {
			r, err := parsePoolRange(part)
			if err != nil {
				return nil, fmt.Errorf("kubernetes.loadbalancer-pool: %w", err)
			}
			p = append(p, r)
		}
	}
	return p, nil
}

// parsePoolRange reads one range of the pool: FIRST-LAST, a CIDR (all
// of its addresses) or one address.
func parsePoolRange(s string) (AddrRange, error) {
	var r AddrRange
	if first, last, ok := strings.Cut(s, "-"); ok {
		a, errA := netip.ParseAddr(strings.TrimSpace(first))
		b, errB := netip.ParseAddr(strings.TrimSpace(last))
		if errA != nil || errB != nil || a.Zone() != "" || b.Zone() != "" {
			return r, fmt.Errorf("%q is not a range of two addresses like 192.168.1.200-192.168.1.220", s)
		}
		r = AddrRange{a.Unmap(), b.Unmap()}
		if r.First.Is4() != r.Last.Is4() {
			return r, fmt.Errorf("%q: %s and %s are not of one address family", s, r.First, r.Last)
		}
		if r.Last.Less(r.First) {
			return r, fmt.Errorf("%q ends before it starts; write it as %s-%s", s, r.Last, r.First)
		}
	} else if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil || pfx.Addr().Is4In6() {
			return r, fmt.Errorf("%q is not a CIDR like 192.168.1.192/27", s)
		}
		if pfx.Masked() != pfx {
			return r, fmt.Errorf("%q has host bits set; write it as %s", s, pfx.Masked())
		}
		r = AddrRange{pfx.Addr(), lastOf(pfx)}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return r, fmt.Errorf("%q is not an address range like 192.168.1.200-192.168.1.220, a CIDR like 192.168.1.192/27, or one address", s)
		}
		r = AddrRange{a.Unmap(), a.Unmap()}
	}
	// A range is refused when either end is: the classes in between are
	// contiguous blocks, so a range holding one has it at an end unless
	// it spans a whole block, which MaxPoolAddresses refuses anyway.
	for _, a := range []netip.Addr{r.First, r.Last} {
		if !a.IsGlobalUnicast() || a.Is4() && a.As4()[0] >= 240 {
			return r, fmt.Errorf("%q holds %s, which cannot be a Service's address (not a unicast address of a network: unspecified, loopback, multicast, link-local or reserved)", s, a)
		}
	}
	return r, nil
}

// lastOf is a prefix's last address.
func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// netRange is a net.IPNet as a range of addresses.
func netRange(n *net.IPNet) (AddrRange, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return AddrRange{}, false
	}
	ones, bits := n.Mask.Size()
	a = a.Unmap()
	p := netip.PrefixFrom(a, ones-(bits-a.BitLen()))
	return AddrRange{p.Masked().Addr(), lastOf(p.Masked())}, true
}

// loadBalancerPool checks kubernetes.loadbalancer-pool: each range, their
// size, and that no address of it is already the cluster's or a node's.
func (ck *checker) loadBalancerPool(clusterNets, serviceNets []*net.IPNet, nn nodeNetwork) {
	k := &ck.c.Kubernetes
	const key = "kubernetes.loadbalancer-pool"
	if !ck.set(key) {
		return
	}
	switch {
	case k.Role == "agent":
		ck.warnf(key, "%s is a server setting (servers hand out and announce the addresses); agents ignore it", key)
		return
	case k.Distribution == "k3s":
		ck.warnf(key, "%s is cairn's own load balancer, which does not run with distribution: k3s (k3s runs its servicelb); it is ignored", key)
		return
	case slices.Contains(k.Disable, "servicelb"):
		ck.warnf(key, "%s is set but disable names servicelb, which turns LoadBalancer Services off; it is ignored", key)
		return
	}
	type entry struct {
		path string
		r    AddrRange
	}
	var all []entry
	total := 0
	for i, e := range k.LoadBalancerPool {
		p := fmt.Sprintf("%s[%d]", key, i)
		parts := splitComma(e)
		if len(parts) == 0 {
			ck.add(Error, p, []string{p, key}, "%s is empty; give a range like 192.168.1.200-192.168.1.220, a CIDR or one address", p)
		}
		for _, part := range parts {
			r, err := parsePoolRange(part)
			if err != nil {
				ck.add(Error, p, []string{p, key}, "%s: %v", p, err)
				continue
			}
			for _, o := range all {
				if o.r.overlaps(r) {
					ck.add(Error, p, []string{p, key}, "%s %s overlaps %s %s; give each address once", p, r, o.path, o.r)
				}
			}
			all = append(all, entry{p, r})
			total += r.Size()
		}
	}
	if total > MaxPoolAddresses {
		ck.errorf(key, "%s holds more than %d addresses; each address a Service holds is a Lease a server renews every vip-retry-period: give the few addresses the Services need", key, MaxPoolAddresses)
	}
	if _, ok := nn.names[k.VIPInterface]; k.VIP == "" && k.VIPInterface != "" && !ok && ck.c.Network != nil {
		ck.errorf("kubernetes.vip-interface", "kubernetes.vip-interface %q is not a link under network (ethernets, vlans, bonds or a set-name)", k.VIPInterface)
	}
	var vip netip.Addr
	if a, err := netip.ParseAddr(k.VIP); err == nil {
		vip = a.Unmap()
	}
	var nodeIPs []netip.Addr
	if k.NodeIP != "" {
		if ips, err := parseIPs(k.NodeIP); err == nil {
			for _, ip := range ips {
				if a, ok := netip.AddrFromSlice(ip); ok {
					nodeIPs = append(nodeIPs, a.Unmap())
				}
			}
		}
	}
	for _, e := range all {
		for _, r := range []struct {
			key  string
			nets []*net.IPNet
		}{{"cluster-cidr", clusterNets}, {"service-cidr", serviceNets}} {
			for _, n := range r.nets {
				if nr, ok := netRange(n); ok && nr.overlaps(e.r) {
					ck.add(Error, e.path, []string{e.path, key}, "%s %s overlaps kubernetes.%s %s; give addresses of the nodes' network", e.path, e.r, r.key, n)
				}
			}
		}
		if vip.IsValid() && e.r.Contains(vip) {
			ck.add(Error, e.path, []string{e.path, key}, "%s %s holds kubernetes.vip %s; the VIP is the servers' own address: leave it out of the pool", e.path, e.r, vip)
		}
		for _, ip := range nodeIPs {
			if e.r.Contains(ip) {
				ck.add(Error, e.path, []string{e.path, key}, "%s %s holds this node's node-ip %s; give addresses no node owns", e.path, e.r, ip)
			}
		}
		ck.poolOnNetwork(e.path, e.r, nn)
	}
}

// poolOnNetwork checks a range of the pool against the server's static
// addresses: none of them in it, nor a subnet's network or broadcast
// address; each address is held on the link whose subnet holds it (or on
// vip-interface), so a range outside every static subnet of a server
// without DHCP (or vip-interface) cannot be held at all.
func (ck *checker) poolOnNetwork(p string, r AddrRange, nn nodeNetwork) {
	for _, a := range nn.addrs {
		ar, ok := netRange(a.net)
		if !ok || ar.First.Is4() != r.First.Is4() {
			continue
		}
		ip, _ := netip.AddrFromSlice(a.ip)
		if r.Contains(ip.Unmap()) {
			ck.add(Error, p, []string{p}, "%s %s holds this node's own address %s (%s); give addresses no node owns", p, r, ip.Unmap(), a.path)
		}
		if ones, bits := a.net.Mask.Size(); r.First.Is4() && bits-ones >= 2 {
			for _, edge := range []struct {
				what string
				addr netip.Addr
			}{{"network", ar.First}, {"broadcast", ar.Last}} {
				if r.Contains(edge.addr) {
					ck.add(Error, p, []string{p}, "%s %s holds %s, the %s address of %s %s; give host addresses only", p, r, edge.addr, edge.what, a.path, a.net)
				}
			}
		}
	}
	if ck.c.Kubernetes.VIPInterface != "" || len(nn.dhcp) > 0 {
		return
	}
	var subnets []string
	for _, a := range nn.addrs {
		ar, ok := netRange(a.net)
		if !ok || ar.First.Is4() != r.First.Is4() {
			continue
		}
		if ar.Contains(r.First) && ar.Contains(r.Last) {
			return
		}
		subnets = append(subnets, a.net.String())
	}
	if len(subnets) > 0 {
		ck.add(Error, p, []string{p}, "%s %s is in none of the node's subnets (%s): a server holds each address on the link whose subnet holds it; give addresses of one of them, or set kubernetes.vip-interface", p, r, strings.Join(subnets, ", "))
	}
}
