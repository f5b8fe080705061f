package config

import (
	"fmt"
	"net"
	"slices"
	"strings"
)

// staticAddr is one static address of the node, with the link and the key
// that set it.
type staticAddr struct {
	link string // the key under network.ethernets, vlans or bonds
	path string // network.ethernets.lan.addresses[0]
	ip   net.IP
	net  *net.IPNet
}

// route is one static route's destination.
type route struct {
	path string
	to   *net.IPNet
}

// nodeNetwork is what the config says about the node's own network.
type nodeNetwork struct {
	addrs  []staticAddr
	routes []route
	// dhcp names the links that take DHCP; every link does when the
	// config has no network section.
	dhcp []string
	// names maps every name a link goes by (its key, its set-name) to
	// its key.
	names map[string]string
}

// nodeNetwork gathers the node's static addresses, routes and DHCP links.
func (c *Config) nodeNetwork() nodeNetwork {
	nn := nodeNetwork{names: map[string]string{}}
	nw := c.Network
	if nw == nil {
		nn.dhcp = []string{"every link"}
		return nn
	}
	add := func(kind, name string, in Interface) {
		p := "network." + kind + "." + name
		nn.names[name] = name
		if in.DHCP4 {
			nn.dhcp = append(nn.dhcp, name)
		}
		for i, a := range in.Addresses {
			if ip, n, err := net.ParseCIDR(a); err == nil {
				nn.addrs = append(nn.addrs, staticAddr{link: name, path: fmt.Sprintf("%s.addresses[%d]", p, i), ip: ip, net: n})
			}
		}
		for i, r := range in.Routes {
			if _, n, err := net.ParseCIDR(r.To); err == nil && r.To != "default" {
				nn.routes = append(nn.routes, route{path: fmt.Sprintf("%s.routes[%d]", p, i), to: n})
			}
		}
	}
	for _, name := range sortedKeys(nw.Ethernets) {
		e := nw.Ethernets[name]
		add("ethernets", name, e.Interface)
		if e.SetName != "" {
			nn.names[e.SetName] = name
		}
	}
	for _, name := range sortedKeys(nw.VLANs) {
		add("vlans", name, nw.VLANs[name].Interface)
	}
	for _, name := range sortedKeys(nw.Bonds) {
		add("bonds", name, nw.Bonds[name].Interface)
	}
	return nn
}

// vipOnNetwork checks the VIP against the server's own network: it must
// lie in a static subnet of the link that holds it (or of vip-interface),
// and be neither one of the node's addresses nor a subnet's network or
// broadcast address.
func (ck *checker) vipOnNetwork(vip net.IP, nn nodeNetwork) {
	k := &ck.c.Kubernetes
	const p = "kubernetes.vip"
	for _, a := range nn.addrs {
		if a.ip.Equal(vip) {
			ck.add(Error, p, []string{p}, "kubernetes.vip %s is this node's own address (%s); the VIP must be an address no node owns", vip, a.path)
			return
		}
	}
	link := ""
	if k.VIPInterface != "" {
		key, ok := nn.names[k.VIPInterface]
		if !ok && ck.c.Network != nil {
			ck.errorf("kubernetes.vip-interface", "kubernetes.vip-interface %q is not a link under network (ethernets, vlans, bonds or a set-name)", k.VIPInterface)
			return
		}
		link = key
	}
	var candidates []staticAddr
	for _, a := range nn.addrs {
		if link == "" || a.link == link {
			candidates = append(candidates, a)
		}
	}
	for _, a := range candidates {
		if !a.net.Contains(vip) {
			continue
		}
		ones, bits := a.net.Mask.Size()
		if vip.To4() != nil && bits-ones >= 2 {
			if vip.Equal(a.net.IP) {
				ck.errorf(p, "kubernetes.vip %s is the network address of %s %s; pick a host address inside it", vip, a.path, a.net)
			} else if vip.Equal(lastAddress(a.net)) {
				ck.errorf(p, "kubernetes.vip %s is the broadcast address of %s %s; pick a host address inside it", vip, a.path, a.net)
			}
		}
		return
	}
	dhcp := nn.dhcp
	if link != "" {
		dhcp = nil
		if slices.Contains(nn.dhcp, link) {
			dhcp = []string{link}
		}
	}
	var subnets []string
	for _, a := range candidates {
		subnets = append(subnets, a.net.String())
	}
	lease := "the DHCP lease of " + strings.Join(dhcp, ", ")
	if ck.c.Network == nil {
		lease = "the DHCP lease (without a network section every link takes DHCP)"
	}
	switch {
	case len(dhcp) > 0 && len(subnets) == 0:
		ck.warnf(p, "kubernetes.vip %s cannot be checked against the node's network before %s; make sure it lies in the lease's subnet, or give the server a static address", vip, lease)
	case len(dhcp) > 0:
		ck.warnf(p, "kubernetes.vip %s is in none of the node's static subnets (%s); it must lie in the subnet of %s", vip, strings.Join(subnets, ", "), lease)
	case len(subnets) > 0:
		ck.errorf(p, "kubernetes.vip %s is in none of the node's subnets (%s); pick an address in the subnet of the link that should hold it", vip, strings.Join(subnets, ", "))
	}
}

// lastAddress is a subnet's last (IPv4 broadcast) address.
func lastAddress(n *net.IPNet) net.IP {
	ip := slices.Clone(n.IP.To16())
	mask := n.Mask
	if len(mask) == net.IPv4len {
		ip = ip.To4()
	}
	for i := range ip {
		ip[i] |= ^mask[i]
	}
	return ip
}

// rangesOffNetwork checks that the pod and service ranges stay clear of the
// node's own subnets and routes: a pod or service address there would
// shadow a real host.
func (ck *checker) rangesOffNetwork(key string, ranges []*net.IPNet, nn nodeNetwork) {
	p := "kubernetes." + key
	for _, r := range ranges {
		for _, a := range nn.addrs {
			if overlaps(r, a.net) {
				ck.add(Error, p, []string{p, a.path}, "kubernetes.%s %s overlaps the node's subnet %s (%s); pick a range the network does not use", key, r, a.net, a.path)
			}
		}
		for _, rt := range nn.routes {
			if overlaps(r, rt.to) {
				ck.add(Error, p, []string{p, rt.path}, "kubernetes.%s %s overlaps the route to %s (%s); pick a range the network does not use", key, r, rt.to, rt.path)
			}
		}
	}
}

// kubeletLabels are the labels in the kubernetes.io and k8s.io namespaces
// the kubelet may set on its own node; kubeletLabelNamespaces are the
// namespaces whose labels it may set.
var (
	kubeletLabels = []string{
		"kubernetes.io/hostname", "kubernetes.io/instance-type", "kubernetes.io/os", "kubernetes.io/arch",
		"beta.kubernetes.io/instance-type", "beta.kubernetes.io/os", "beta.kubernetes.io/arch",
		"failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
		"topology.kubernetes.io/zone", "topology.kubernetes.io/region", "node.kubernetes.io/instance-type",
	}
	kubeletLabelNamespaces = []string{"kubelet.kubernetes.io", "node.kubernetes.io"}
)

// kubeletRefuses reports whether the kubelet refuses to register its node
// with the label key.
func kubeletRefuses(key string) bool {
	ns, _, ok := strings.Cut(key, "/")
	if !ok {
		return false
	}
	ns = strings.ToLower(ns)
	inNS := func(n string) bool { return ns == n || strings.HasSuffix(ns, "."+n) }
	if !inNS("kubernetes.io") && !inNS("k8s.io") {
		return false
	}
	if slices.Contains(kubeletLabels, key) {
		return false
	}
	for _, n := range kubeletLabelNamespaces {
		if inNS(n) {
			return false
		}
	}
	return true
}
