package servicelb

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/cairn-os/cairn/config"
)

// The modes a LoadBalancer Service can be in.
const (
	modeNone      = ""          // not a LoadBalancer Service of cairn's
	modeServiceLB = "servicelb" // the nodes' own addresses
	modePool      = "pool"      // one address of the pool
)

// modeOf is how the Service gets its address: by its class, else the
// configured default (the pool when there is one).
func modeOf(s *service, pool config.Pool) string {
	if s.Spec.Type != "LoadBalancer" || s.Metadata.DeletionTimestamp != nil {
		return modeNone
	}
	class := ""
	if s.Spec.LoadBalancerClass != nil {
		class = *s.Spec.LoadBalancerClass
	}
	switch {
	case class == "" && len(pool) > 0, class == ClassPool:
		return modePool
	case class == "", class == ClassServiceLB:
		return modeServiceLB
	}
	return modeNone
}

// Node labels servicelb reads.
const (
	// enableLBLabel: when any node has it, only the nodes where it is
	// "true" give their addresses (k3s's label).
	enableLBLabel = "svccontroller.k3s.cattle.io/enablelb"
	// excludeLabel keeps a node out of every load balancer (Kubernetes's
	// well-known label).
	excludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"
)

// reservedPort is a port the nodes serve on their own addresses: a
// servicelb Service on it would take it over on every node, kube-proxy's
// rules for the nodes' addresses coming before the node's own listeners.
type reservedPort struct {
	proto string
	port  int32
	what  string
}

var reserved = []reservedPort{
	{"TCP", 2379, "etcd's client port"},
	{"TCP", 2380, "etcd's peer port"},
	{"TCP", 6443, "kube-apiserver's port on every server"},
	{"TCP", 6444, "the agents' load balancer in front of the servers"},
	{"TCP", 6446, "the servers' upgrade-file port"},
	{"TCP", 10250, "the kubelet's port on every node"},
	{"UDP", 68, "the nodes' DHCP client port"},
	{"UDP", 8472, "flannel's VXLAN port on every node"},
}

// note is a Warning Event a Service should carry.
type note struct{ reason, message string }

// decision is what one Service's status should say, and why not more.
type decision struct {
	svc  *service
	mode string
	// want are the addresses its status should list; none: an empty
	// status.
	want  []netip.Addr
	notes []note
}

// world is what the controller knows of the cluster.
type world struct {
	services []*service
	nodes    []*node
	// ready maps a Service (namespace/name) to the nodes of its ready
	// endpoints.
	ready map[string][]string
	pool  config.Pool
}

// plan decides every Service's status: those of cairn's classes, and
// Services that are no longer LoadBalancers but still carry an address
// cairn gave them. Older Services keep what younger ones contest: an
// address of the pool, a port on the nodes' addresses.
func plan(w world) []decision {
	svcs := slices.Clone(w.services)
	slices.SortFunc(svcs, func(a, b *service) int {
		if c := a.Metadata.CreationTimestamp.Compare(b.Metadata.CreationTimestamp); c != 0 {
			return c
		}
		return strings.Compare(a.Metadata.key(), b.Metadata.key())
	})
	nodeAddrs := map[netip.Addr]bool{}
	for _, n := range w.nodes {
		for _, typ := range []string{"InternalIP", "ExternalIP"} {
			for _, a := range n.addrs(typ) {
				nodeAddrs[a] = true
			}
		}
	}
	var out []decision
	var pooled, nodal []*service
	for _, s := range svcs {
		switch modeOf(s, w.pool) {
		case modePool:
			pooled = append(pooled, s)
		case modeServiceLB:
			nodal = append(nodal, s)
		case modeNone:
			// A Service that stopped being a LoadBalancer keeps no
			// address cairn gave it; another class's are not touched.
			if s.Spec.Type != "LoadBalancer" && s.Metadata.DeletionTimestamp == nil && len(s.Status.LoadBalancer.Ingress) > 0 {
				ours := true
				for _, a := range s.addresses() {
					ours = ours && (w.pool.Contains(a) || nodeAddrs[a])
				}
				if ours && len(s.addresses()) == len(s.Status.LoadBalancer.Ingress) {
					out = append(out, decision{svc: s})
				}
			}
		}
	}
	out = append(out, planPool(pooled, w.pool)...)
	out = append(out, planServiceLB(nodal, w)...)
	return out
}

// planPool gives each Service one address of the pool, of its first IP
// family: spec.loadBalancerIP when it is in the pool and free, else the
// one its status has when that is, else the lowest free one.
func planPool(svcs []*service, pool config.Pool) []decision {
	out := make([]decision, len(svcs))
	used := map[netip.Addr]string{}
	if len(pool) == 0 {
		for i, s := range svcs {
			out[i] = decision{svc: s, mode: modePool, notes: []note{{"NoLoadBalancerPool",
				fmt.Sprintf("loadBalancerClass %s asks for an address of the pool, and this cluster's servers have no kubernetes.loadbalancer-pool; set one, or use loadBalancerClass %s (the nodes' addresses)", ClassPool, ClassServiceLB)}}}
		}
		return out
	}
	// Those that asked for an address, then those that have one, keep it.
	var later []int
	for i, s := range svcs {
		out[i] = decision{svc: s, mode: modePool}
		fam4 := s.families()[0]
		if s.Spec.ExternalTrafficPolicy == "Local" {
			out[i].notes = append(out[i].notes, note{"ExternalTrafficPolicyLocal",
				"the address is announced by one server at a time, and with externalTrafficPolicy: Local a node forwards only to endpoints on itself: the Service answers only while the announcing server runs one; use externalTrafficPolicy: Cluster"})
		}
		if ask := s.Spec.LoadBalancerIP; ask != "" {
			a, err := netip.ParseAddr(ask)
			a = a.Unmap()
			switch {
			case err != nil:
				out[i].notes = append(out[i].notes, note{"LoadBalancerIPInvalid", fmt.Sprintf("spec.loadBalancerIP %q is not an IP address", ask)})
			case !pool.Contains(a):
				out[i].notes = append(out[i].notes, note{"LoadBalancerIPNotInPool",
					fmt.Sprintf("spec.loadBalancerIP %s is not in kubernetes.loadbalancer-pool (%s); the Service gets no address until it asks for one of the pool, or for none", a, pool)})
			case used[a] != "":
				out[i].notes = append(out[i].notes, note{"LoadBalancerIPInUse",
					fmt.Sprintf("spec.loadBalancerIP %s is the address of Service %s; the Service gets no address until that one frees it, or it asks for another", a, used[a])})
			default:
				used[a] = s.Metadata.key()
				out[i].want = []netip.Addr{a}
			}
			continue
		}
		kept := false
		for _, a := range s.addresses() {
			if pool.Contains(a) && a.Is4() == fam4 && used[a] == "" {
				used[a] = s.Metadata.key()
				out[i].want = []netip.Addr{a}
				kept = true
				break
			}
		}
		if !kept {
			later = append(later, i)
		}
	}
	// The others get the lowest free address of their family.
	exhausted := map[bool]bool{}
	for _, i := range later {
		s := svcs[i]
		fam4 := s.families()[0]
		if !exhausted[fam4] {
			if a, ok := lowestFree(pool, fam4, used); ok {
				used[a] = s.Metadata.key()
				out[i].want = []netip.Addr{a}
				continue
			}
			exhausted[fam4] = true
		}
		family := "IPv4"
		if !fam4 {
			family = "IPv6"
		}
		out[i].notes = append(out[i].notes, note{"LoadBalancerPoolExhausted",
			fmt.Sprintf("every %s address of kubernetes.loadbalancer-pool (%s) is taken; the Service gets one when another Service frees one, or when the pool grows", family, pool)})
	}
	return out
}

// lowestFree is the pool's first address of the family nobody uses.
func lowestFree(pool config.Pool, fam4 bool, used map[netip.Addr]string) (netip.Addr, bool) {
	for _, r := range pool {
		if r.First.Is4() != fam4 {
			continue
		}
		for a := r.First; a.IsValid() && a.Compare(r.Last) <= 0; a = a.Next() {
			if used[a] == "" {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

// planServiceLB gives each Service the addresses of the nodes that may
// carry it: Ready, not excluded, labelled enablelb=true when any node
// has that label; with externalTrafficPolicy Local only those running
// one of its ready endpoints. Their ExternalIPs when any has one, else
// their InternalIPs, of the Service's families. A Service on a port the
// nodes serve, or on one an older servicelb Service has, gets none.
func planServiceLB(svcs []*service, w world) []decision {
	labelled := slices.ContainsFunc(w.nodes, func(n *node) bool {
		_, ok := n.Metadata.Labels[enableLBLabel]
		return ok
	})
	var eligible []*node
	for _, n := range w.nodes {
		if _, ex := n.Metadata.Labels[excludeLabel]; ex || !n.ready() || labelled && n.Metadata.Labels[enableLBLabel] != "true" {
			continue
		}
		eligible = append(eligible, n)
	}
	taken := map[string]string{} // "TCP/80" → the Service that has it
	out := make([]decision, len(svcs))
	for i, s := range svcs {
		d := decision{svc: s, mode: modeServiceLB}
		var mine []string
		for _, p := range s.Spec.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = "TCP"
			}
			key := fmt.Sprintf("%s/%d", proto, p.Port)
			if r := slices.IndexFunc(reserved, func(r reservedPort) bool { return r.proto == proto && r.port == p.Port }); r >= 0 {
				d.notes = append(d.notes, note{"PortReserved",
					fmt.Sprintf("port %s is %s: servicelb would take it over on the nodes' addresses, so the Service gets no address; use another port, or an address of the pool (loadBalancerClass %s)", key, reserved[r].what, ClassPool)})
			} else if other, ok := taken[key]; ok && other != s.Metadata.key() {
				d.notes = append(d.notes, note{"PortInUse",
					fmt.Sprintf("port %s on the nodes' addresses is Service %s's; the Service gets no address until that one frees it, or it uses another port", key, other)})
			} else {
				mine = append(mine, key)
			}
		}
		if s.Spec.LoadBalancerIP != "" {
			d.notes = append(d.notes, note{"LoadBalancerIPIgnored",
				fmt.Sprintf("spec.loadBalancerIP %s is honoured for addresses of the pool only; servicelb gives the nodes' addresses", s.Spec.LoadBalancerIP)})
		}
		if slices.ContainsFunc(d.notes, func(n note) bool { return n.reason != "LoadBalancerIPIgnored" }) {
			out[i] = d
			continue
		}
		for _, k := range mine {
			taken[k] = s.Metadata.key()
		}
		nodes := eligible
		if s.Spec.ExternalTrafficPolicy == "Local" {
			nodes = nil
			for _, n := range eligible {
				if slices.Contains(w.ready[s.Metadata.key()], n.Metadata.Name) {
					nodes = append(nodes, n)
				}
			}
		}
		typ := "InternalIP"
		if slices.ContainsFunc(nodes, func(n *node) bool { return len(n.addrs("ExternalIP")) > 0 }) {
			typ = "ExternalIP"
		}
		for _, fam4 := range s.families() {
			var fam []netip.Addr
			for _, n := range nodes {
				for _, a := range n.addrs(typ) {
					if a.Is4() == fam4 && !slices.Contains(fam, a) {
						fam = append(fam, a)
					}
				}
			}
			slices.SortFunc(fam, netip.Addr.Compare)
			d.want = append(d.want, fam...)
		}
		if len(d.want) == 0 {
			why := "no node is Ready"
			switch {
			case s.Spec.ExternalTrafficPolicy == "Local" && len(eligible) > 0:
				why = "no Ready node runs a ready endpoint of it (externalTrafficPolicy: Local)"
			case labelled:
				why = "no Ready node is labelled " + enableLBLabel + "=true"
			}
			d.notes = append(d.notes, note{"UnAvailableLoadBalancer", "There are no available nodes for LoadBalancer: " + why})
		}
		out[i] = d
	}
	return out
}

// sameAddresses says whether a and b hold the same addresses, in any
// order.
func sameAddresses(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
