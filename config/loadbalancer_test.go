package config

import (
	"net/netip"
	"testing"
)

// TestLoadBalancerPool: kubernetes.loadbalancer-pool, each problem as the
// line a user sees, and the pool a server hands addresses out of.
func TestLoadBalancerPool(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string // every line printed, in order; nil: none
		pool      string   // the parsed pool, when there is no line
		size      int
	}{
		{"a range", vipDoc + "  loadbalancer-pool: 192.168.1.200-192.168.1.220\n", nil, "192.168.1.200-192.168.1.220", 21},
		{"a CIDR, a list", vipDoc + "  loadbalancer-pool: [192.168.1.192/29, 192.168.1.250]\n", nil, "192.168.1.192-192.168.1.199,192.168.1.250", 9},
		{"commas in one string", vipDoc + "  loadbalancer-pool: 192.168.1.200-192.168.1.201, 192.168.1.210\n", nil, "192.168.1.200-192.168.1.201,192.168.1.210", 3},
		{"IPv6", lanDoc + "kubernetes:\n  loadbalancer-pool: fd00:1::10-fd00:1::1f\n", nil, "fd00:1::10-fd00:1::1f", 16},
		{"not a range", vipDoc + "  loadbalancer-pool: 192.168.1.200..220\n",
			[]string{`c:8:22: error: kubernetes.loadbalancer-pool[0]: "192.168.1.200..220" is not an address range like 192.168.1.200-192.168.1.220, a CIDR like 192.168.1.192/27, or one address`}, "", 0},
		{"half a range", vipDoc + "  loadbalancer-pool: [192.168.1.200-220]\n",
			[]string{`c:8:23: error: kubernetes.loadbalancer-pool[0]: "192.168.1.200-220" is not a range of two addresses like 192.168.1.200-192.168.1.220`}, "", 0},
		{"backwards", vipDoc + "  loadbalancer-pool:\n    - 192.168.1.220-192.168.1.200\n",
			[]string{`c:9:7: error: kubernetes.loadbalancer-pool[0]: "192.168.1.220-192.168.1.200" ends before it starts; write it as 192.168.1.200-192.168.1.220`}, "", 0},
		{"two families", vipDoc + "  loadbalancer-pool: 192.168.1.200-fd00::1\n",
			[]string{`c:8:22: error: kubernetes.loadbalancer-pool[0]: "192.168.1.200-fd00::1": 192.168.1.200 and fd00::1 are not of one address family`}, "", 0},
		{"host bits", vipDoc + "  loadbalancer-pool: 192.168.1.201/29\n",
			[]string{`c:8:22: error: kubernetes.loadbalancer-pool[0]: "192.168.1.201/29" has host bits set; write it as 192.168.1.200/29`}, "", 0},
		{"loopback", vipDoc + "  loadbalancer-pool: 127.0.0.10-127.0.0.20\n",
			[]string{`c:8:22: error: kubernetes.loadbalancer-pool[0]: "127.0.0.10-127.0.0.20" holds 127.0.0.10, which cannot be a Service's address`}, "", 0},
		{"too large", lanDoc + "kubernetes:\n  vip-interface: lan\n  loadbalancer-pool: 10.200.0.0/15\n",
			[]string{`c:8:22: error: kubernetes.loadbalancer-pool holds more than 65536 addresses`}, "", 0},
		{"overlapping entries", vipDoc + "  loadbalancer-pool: [192.168.1.200-192.168.1.210, 192.168.1.208/29]\n",
			[]string{`c:8:52: error: kubernetes.loadbalancer-pool[1] 192.168.1.208-192.168.1.215 overlaps kubernetes.loadbalancer-pool[0] 192.168.1.200-192.168.1.210; give each address once`}, "", 0},
		{"holds the VIP", vipDoc + "  loadbalancer-pool: 192.168.1.90-192.168.1.110\n",
			[]string{`c:8:22: error: kubernetes.loadbalancer-pool[0] 192.168.1.90-192.168.1.110 holds kubernetes.vip 192.168.1.100; the VIP is the servers' own address`}, "", 0},
		{"holds the node's address", vipDoc + "  loadbalancer-pool: 192.168.1.10-192.168.1.12\n",
			[]string{`c:8:22: error: kubernetes.loadbalancer-pool[0] 192.168.1.10-192.168.1.12 holds this node's own address 192.168.1.11 (network.ethernets.lan.addresses[0])`}, "", 0},
		{"holds the broadcast address", vipDoc + "  loadbalancer-pool: 192.168.1.248/29\n",
			[]string{`c:8:22: error: kubernetes.loadbalancer-pool[0] 192.168.1.248-192.168.1.255 holds 192.168.1.255, the broadcast address of network.ethernets.lan.addresses[0] 192.168.1.0/24`}, "", 0},
		{"in the service range", vipDoc + "  loadbalancer-pool: 10.43.0.100-10.43.0.110\n",
			[]string{`c:8:22: error: kubernetes.loadbalancer-pool[0] 10.43.0.100-10.43.0.110 overlaps kubernetes.service-cidr 10.43.0.0/16`,
				`c:8:22: error: kubernetes.loadbalancer-pool[0] 10.43.0.100-10.43.0.110 is in none of the node's subnets (192.168.1.0/24)`}, "", 0},
		{"in the pod range", lanDoc + "kubernetes:\n  cluster-cidr: 10.42.0.0/16\n  loadbalancer-pool: 10.42.9.0/28\n",
			[]string{`c:8:22: error: kubernetes.loadbalancer-pool[0] 10.42.9.0-10.42.9.15 overlaps kubernetes.cluster-cidr 10.42.0.0/16`,
				`c:8:22: error: kubernetes.loadbalancer-pool[0] 10.42.9.0-10.42.9.15 is in none of the node's subnets`}, "", 0},
		{"off the network with vip-interface", vipDoc + "  vip-interface: lan\n  loadbalancer-pool: 10.9.0.1-10.9.0.9\n", nil, "10.9.0.1-10.9.0.9", 9},
		{"vip-interface names no link", lanDoc + "kubernetes:\n  vip-interface: wan\n  loadbalancer-pool: 10.9.0.1-10.9.0.9\n",
			[]string{`c:7:18: error: kubernetes.vip-interface "wan" is not a link under network`}, "", 0},
		{"on an agent", "kubernetes:\n  role: agent\n  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n  vip: 10.0.0.100\n  loadbalancer-pool: 10.0.0.200-10.0.0.210\n",
			[]string{"c:5:22: warning: kubernetes.loadbalancer-pool is a server setting (servers hand out and announce the addresses); agents ignore it"}, "", 0},
		{"servicelb disabled", vipDoc + "  disable: servicelb\n  loadbalancer-pool: 192.168.1.200-192.168.1.220\n",
			[]string{"c:9:22: warning: kubernetes.loadbalancer-pool is set but disable names servicelb, which turns LoadBalancer Services off; it is ignored"}, "", 0},
		{"with distribution k3s", lanDoc + "kubernetes:\n  distribution: k3s\n  loadbalancer-pool: 192.168.1.200-192.168.1.220\n",
			[]string{"c:8:22: warning: kubernetes.loadbalancer-pool is cairn's own load balancer, which does not run with distribution: k3s"}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Load(src("c", tt.doc))
			wantLines(t, messages(diags), tt.want)
			if tt.pool == "" {
				return
			}
			p, err := cfg.Kubernetes.Pool()
			if err != nil || p.String() != tt.pool || p.Size() != tt.size {
				t.Errorf("Pool() = %s (%d addresses), %v; want %s (%d)", p, p.Size(), err, tt.pool, tt.size)
			}
		})
	}
}

// TestPoolContains: the ends of a range are in it, their neighbours are
// not, and an IPv4 address is never in an IPv6 range.
func TestPoolContains(t *testing.T) {
	k := Kubernetes{LoadBalancerPool: []string{"192.168.1.200-192.168.1.202", "fd00::/126"}}
	p, err := k.Pool()
	if err != nil {
		t.Fatal(err)
	}
	for a, want := range map[string]bool{
		"192.168.1.199": false, "192.168.1.200": true, "192.168.1.202": true, "192.168.1.203": false,
		"fd00::": true, "fd00::3": true, "fd00::4": false, "::ffff:192.168.1.201": true, "0.0.0.0": false,
	} {
		if got := p.Contains(netip.MustParseAddr(a)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", a, got, want)
		}
	}
}
