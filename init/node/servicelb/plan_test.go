package servicelb

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config"
)

// svc is a Service for the tests: "NAME[:class][@status,…][>loadBalancerIP]"
// with ports ("TCP/80"), created age minutes ago.
func svc(spec string, age int, ports ...string) *service {
	s := &service{}
	s.Spec.Type = "LoadBalancer"
	if rest, ask, ok := strings.Cut(spec, ">"); ok {
		spec, s.Spec.LoadBalancerIP = rest, ask
	}
	if rest, status, ok := strings.Cut(spec, "@"); ok {
		spec = rest
		for _, ip := range strings.Split(status, ",") {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, ingress{IP: ip})
		}
	}
	if name, class, ok := strings.Cut(spec, ":"); ok {
		spec = name
		s.Spec.LoadBalancerClass = &class
	}
	s.Metadata = objectMeta{Name: spec, Namespace: "default", UID: "uid-" + spec, ResourceVersion: "1",
		CreationTimestamp: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Duration(age) * time.Minute)}
	if len(ports) == 0 {
		ports = []string{"TCP/80"}
	}
	for _, p := range ports {
		proto, port, _ := strings.Cut(p, "/")
		var n int32
		fmt.Sscan(port, &n)
		s.Spec.Ports = append(s.Spec.Ports, servicePort{Protocol: proto, Port: n})
	}
	return s
}

// nod is a node for the tests: ready or not, its addresses
// ("InternalIP=10.0.0.11") and labels ("k=v").
func nod(name string, ready bool, addrs []string, labels ...string) *node {
	n := &node{Metadata: objectMeta{Name: name, Labels: map[string]string{}}}
	st := "False"
	if ready {
		st = "True"
	}
	n.Status.Conditions = append(n.Status.Conditions, struct {
		Type   string `json:"type"`
		Status string `json:"status"`
	}{"Ready", st})
	for _, a := range addrs {
		typ, ip, _ := strings.Cut(a, "=")
		n.Status.Addresses = append(n.Status.Addresses, struct {
			Type    string `json:"type"`
			Address string `json:"address"`
		}{typ, ip})
	}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		n.Metadata.Labels[k] = v
	}
	return n
}

func mustPool(t *testing.T, entries ...string) config.Pool {
	t.Helper()
	k := config.Kubernetes{LoadBalancerPool: entries}
	p, err := k.Pool()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// outcome is a decision as the tests read it: "NAME: ADDRS" and each
// note's reason, "NAME! Reason".
func outcome(ds []decision) string {
	var b strings.Builder
	for _, d := range ds {
		var as []string
		for _, a := range d.want {
			as = append(as, a.String())
		}
		fmt.Fprintf(&b, "%s: %s\n", d.svc.Metadata.Name, strings.Join(as, " "))
		for _, n := range d.notes {
			fmt.Fprintf(&b, "%s! %s\n", d.svc.Metadata.Name, n.reason)
		}
	}
	return b.String()
}

var threeNodes = []*node{
	nod("s1", true, []string{"InternalIP=192.168.1.11", "Hostname=s1"}),
	nod("s2", true, []string{"InternalIP=192.168.1.12", "InternalIP=fd00::12"}),
	nod("a1", true, []string{"InternalIP=192.168.1.21"}),
}

// TestPlanPool: the pool's addresses handed out, kept and refused, each
// as the Service's status and the Warning Events a user reads.
func TestPlanPool(t *testing.T) {
	tests := []struct {
		name     string
		pool     []string
		services []*service
		want     string
	}{
		{"lowest free address, oldest first", []string{"192.168.1.200-192.168.1.202"},
			[]*service{svc("b", 1), svc("a", 2)},
			"a: 192.168.1.200\nb: 192.168.1.201\n"},
		{"the status is the allocation: kept across a restart", []string{"192.168.1.200-192.168.1.202"},
			[]*service{svc("new", 1), svc("old@192.168.1.202", 2)},
			"old: 192.168.1.202\nnew: 192.168.1.200\n"},
		{"loadBalancerIP honoured", []string{"192.168.1.200-192.168.1.202"},
			[]*service{svc("a", 2), svc("b>192.168.1.200", 1)},
			"a: 192.168.1.201\nb: 192.168.1.200\n"},
		{"loadBalancerIP taken by an older Service", []string{"192.168.1.200-192.168.1.202"},
			[]*service{svc("a>192.168.1.201", 2), svc("b>192.168.1.201", 1)},
			"a: 192.168.1.201\nb: \nb! LoadBalancerIPInUse\n"},
		{"loadBalancerIP outside the pool", []string{"192.168.1.200-192.168.1.202"},
			[]*service{svc("a@192.168.1.200>192.168.1.99", 1)},
			"a: \na! LoadBalancerIPNotInPool\n"},
		{"exhausted: an Event, no crash", []string{"192.168.1.200"},
			[]*service{svc("a", 3), svc("b", 2), svc("c", 1)},
			"a: 192.168.1.200\nb: \nb! LoadBalancerPoolExhausted\nc: \nc! LoadBalancerPoolExhausted\n"},
		{"two Services with one address: the older keeps it", []string{"192.168.1.200-192.168.1.201"},
			[]*service{svc("b@192.168.1.200", 1), svc("a@192.168.1.200", 2)},
			"a: 192.168.1.200\nb: 192.168.1.201\n"},
		{"an address the pool lost is replaced", []string{"192.168.1.200-192.168.1.201"},
			[]*service{svc("a@192.168.1.250", 1)},
			"a: 192.168.1.200\n"},
		{"the pool class, and another class left alone", []string{"192.168.1.200-192.168.1.201"},
			[]*service{svc("a:"+ClassPool, 2), svc("b:example.com/other@10.9.9.9", 1)},
			"a: 192.168.1.200\n"},
		{"the pool class without a pool", nil,
			[]*service{svc("a:"+ClassPool, 1)},
			"a: \na! NoLoadBalancerPool\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pool config.Pool
			if tt.pool != nil {
				pool = mustPool(t, tt.pool...)
			}
			got := outcome(plan(world{services: tt.services, nodes: threeNodes, pool: pool}))
			if got != tt.want {
				t.Errorf("got\n%swant\n%s", got, tt.want)
			}
		})
	}
}

// TestPlanServiceLB: the nodes' addresses, as k3s's servicelb gives
// them, and the ports refused.
func TestPlanServiceLB(t *testing.T) {
	local := svc("local", 1)
	local.Spec.ExternalTrafficPolicy = "Local"
	dual := svc("dual", 1)
	dual.Spec.IPFamilies = []string{"IPv6", "IPv4"}
	tests := []struct {
		name     string
		nodes    []*node
		services []*service
		ready    map[string][]string
		want     string
	}{
		{"every Ready node's InternalIP", append(threeNodes, nod("down", false, []string{"InternalIP=192.168.1.30"})),
			[]*service{svc("web", 1)}, nil,
			"web: 192.168.1.11 192.168.1.12 192.168.1.21\n"},
		{"only the enablelb=true nodes once any has the label",
			[]*node{nod("s1", true, []string{"InternalIP=192.168.1.11"}, enableLBLabel+"=true"),
				nod("s2", true, []string{"InternalIP=192.168.1.12"}, enableLBLabel+"=false"),
				nod("a1", true, []string{"InternalIP=192.168.1.21"})},
			[]*service{svc("web", 1)}, nil,
			"web: 192.168.1.11\n"},
		{"excluded nodes left out", []*node{threeNodes[0], nod("x", true, []string{"InternalIP=192.168.1.40"}, excludeLabel+"=")},
			[]*service{svc("web", 1)}, nil,
			"web: 192.168.1.11\n"},
		{"ExternalIPs when a node has one", []*node{threeNodes[0], nod("e", true, []string{"InternalIP=192.168.1.50", "ExternalIP=203.0.113.5"})},
			[]*service{svc("web", 1)}, nil,
			"web: 203.0.113.5\n"},
		{"externalTrafficPolicy Local: the nodes of its ready endpoints", threeNodes,
			[]*service{local}, map[string][]string{"default/local": {"a1"}},
			"local: 192.168.1.21\n"},
		{"externalTrafficPolicy Local without endpoints", threeNodes,
			[]*service{local}, nil,
			"local: \nlocal! UnAvailableLoadBalancer\n"},
		{"the Service's families, in order", threeNodes,
			[]*service{dual}, nil,
			"dual: fd00::12 192.168.1.11 192.168.1.12 192.168.1.21\n"},
		{"no Ready node", []*node{nod("s1", false, []string{"InternalIP=192.168.1.11"})},
			[]*service{svc("web", 1)}, nil,
			"web: \nweb! UnAvailableLoadBalancer\n"},
		{"a port the nodes serve is refused", threeNodes,
			[]*service{svc("api", 1, "TCP/443", "TCP/6443"), svc("vx", 1, "UDP/8472"), svc("dns", 1, "UDP/53", "TCP/53")}, nil,
			"api: \napi! PortReserved\ndns: 192.168.1.11 192.168.1.12 192.168.1.21\nvx: \nvx! PortReserved\n"},
		{"a port an older Service has is refused", threeNodes,
			[]*service{svc("second", 1, "TCP/80"), svc("first", 2, "TCP/80", "TCP/443"), svc("udp", 1, "UDP/80")}, nil,
			"first: 192.168.1.11 192.168.1.12 192.168.1.21\nsecond: \nsecond! PortInUse\nudp: 192.168.1.11 192.168.1.12 192.168.1.21\n"},
		{"loadBalancerIP is only a warning", threeNodes,
			[]*service{svc("web>192.168.1.99", 1)}, nil,
			"web: 192.168.1.11 192.168.1.12 192.168.1.21\nweb! LoadBalancerIPIgnored\n"},
		{"the servicelb class beside a pool", threeNodes,
			[]*service{svc("nodes:"+ClassServiceLB, 1)}, nil,
			"nodes: 192.168.1.11 192.168.1.12 192.168.1.21\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A pool only for the class test: without a class a Service
			// would take the pool.
			var pool config.Pool
			if strings.Contains(tt.name, "class") {
				pool = mustPool(t, "192.168.1.200")
			}
			got := outcome(plan(world{services: tt.services, nodes: tt.nodes, ready: tt.ready, pool: pool}))
			if got != tt.want {
				t.Errorf("got\n%swant\n%s", got, tt.want)
			}
		})
	}
}

// TestPlanClears: a Service that stopped being a LoadBalancer loses the
// address cairn gave it; one whose address is not cairn's keeps it.
func TestPlanClears(t *testing.T) {
	was := svc("was@192.168.1.200", 2)
	was.Spec.Type = "ClusterIP"
	nodes := svc("nodes@192.168.1.11", 2)
	nodes.Spec.Type = "NodePort"
	foreign := svc("foreign@10.9.9.9", 1)
	foreign.Spec.Type = "ClusterIP"
	got := outcome(plan(world{services: []*service{was, nodes, foreign}, nodes: threeNodes, pool: mustPool(t, "192.168.1.200")}))
	if want := "nodes: \nwas: \n"; got != want {
		t.Errorf("got\n%swant\n%s", got, want)
	}
}

// TestPortMessages: the Warning a user reads for a refused port names the
// port, what the nodes run there, and what to do.
func TestPortMessages(t *testing.T) {
	ds := plan(world{services: []*service{svc("api", 1, "TCP/6443")}, nodes: threeNodes})
	if len(ds) != 1 || len(ds[0].notes) != 1 {
		t.Fatalf("%s", outcome(ds))
	}
	want := "port TCP/6443 is kube-apiserver's port on every server: servicelb would take it over on the nodes' addresses, so the Service gets no address; use another port, or an address of the pool (loadBalancerClass cairn-os.github.io/pool)"
	if got := ds[0].notes[0].message; got != want {
		t.Errorf("message:\n%s\nwant\n%s", got, want)
	}
}

// TestAddressLease: one Lease name per address, a valid object name.
func TestAddressLease(t *testing.T) {
	for a, want := range map[string]string{"192.168.1.200": "cairn-lb-192.168.1.200", "fd00::10": "cairn-lb-fd00--10", "::ffff:10.0.0.1": "cairn-lb-10.0.0.1"} {
		if got := AddressLease(netip.MustParseAddr(a)); got != want {
			t.Errorf("AddressLease(%s) = %s, want %s", a, got, want)
		}
	}
}
