package servicelb

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitUntil polls cond for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s", what)
		}
	}
}

// lease is a Lease object for the fake.
func lease(name, holder string, renewed time.Time) map[string]any {
	return map[string]any{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
		"metadata": map[string]any{"name": name, "namespace": Namespace},
		"spec":     map[string]any{"holderIdentity": holder, "renewTime": renewed.UTC().Format("2006-01-02T15:04:05.000000Z07:00")}}
}

// startController runs a controller on f until the test ends.
func startController(t *testing.T, f *fakeAPI, pool ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c := newController(Options{API: f.client(), Node: "s1", Pool: mustPool(t, pool...), Printf: t.Logf})
	go func() { defer close(done); c.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func hasEvent(f *fakeAPI, prefix string) bool {
	return slices.ContainsFunc(f.eventLines(), func(l string) bool { return strings.HasPrefix(l, prefix) })
}

// TestController: against an apiserver, the statuses a user reads with
// kubectl get svc and the Events kubectl describe shows: addresses from
// the pool and from the nodes, refusals, an exhausted pool, an address
// freed and taken, each Event told once, a Service of another class
// untouched, the Leases of addresses nobody has deleted; and a restarted
// controller finds the allocation in the statuses and rewrites none.
func TestController(t *testing.T) {
	f := newFakeAPI(t)
	for _, n := range threeNodes {
		f.put(colNodes, n)
	}
	f.put(colServices, svc("web", 5))
	f.put(colServices, svc("nodes:"+ClassServiceLB, 4, "TCP/8080"))
	f.put(colServices, svc("api:"+ClassServiceLB, 3, "TCP/6443"))
	f.put(colServices, svc("other:example.com/lb", 2))
	f.put(colLeases, lease("cairn-lb-192.168.1.209", "", time.Now()))
	f.put(colLeases, lease("cairn-lb-192.168.1.208", "s2_01", time.Now()))
	f.put(colLeases, lease("cairn-vip", "s2_01", time.Now().Add(-time.Hour)))
	startController(t, f, "192.168.1.200-192.168.1.201")

	waitUntil(t, "addresses for web and nodes", func() bool {
		return f.status("default/web") == "[192.168.1.200]" && f.status("default/nodes") == "[192.168.1.11 192.168.1.12 192.168.1.21]"
	})
	waitUntil(t, "the Events", func() bool {
		return hasEvent(f, "web Normal UpdatedLoadBalancer: Updated LoadBalancer with new IPs: [] -> [192.168.1.200] (kubernetes.loadbalancer-pool)") &&
			hasEvent(f, "nodes Normal UpdatedLoadBalancer: Updated LoadBalancer with new IPs: [] -> [192.168.1.11 192.168.1.12 192.168.1.21] (the nodes' addresses)") &&
			hasEvent(f, "api Warning PortReserved: port TCP/6443 is kube-apiserver's port on every server")
	})
	if s := f.status("default/api"); s != "[]" {
		t.Errorf("api, on a port the nodes serve, has %s", s)
	}
	for _, w := range f.writes() {
		if strings.Contains(w, "/services/other/") {
			t.Errorf("the Service of another class was written: %s", w)
		}
	}
	waitUntil(t, "the stale Lease deleted", func() bool { return slices.Contains(f.writes(), "DELETE "+colLeases+"/cairn-lb-192.168.1.209") })
	for _, w := range f.writes() {
		if strings.HasPrefix(w, "DELETE") && !strings.HasSuffix(w, "cairn-lb-192.168.1.209") {
			t.Errorf("deleted a Lease someone holds, or not an address's: %s", w)
		}
	}

	// A younger Service asks for web's address; two more exhaust the pool.
	f.put(colServices, svc("asks>192.168.1.200", 1))
	f.put(colServices, svc("third", 1))
	f.put(colServices, svc("fourth", 0))
	waitUntil(t, "third's address and the refusals", func() bool {
		return f.status("default/third") == "[192.168.1.201]" &&
			hasEvent(f, "asks Warning LoadBalancerIPInUse: spec.loadBalancerIP 192.168.1.200 is the address of Service default/web") &&
			hasEvent(f, "fourth Warning LoadBalancerPoolExhausted: every IPv4 address of kubernetes.loadbalancer-pool (192.168.1.200-192.168.1.201) is taken")
	})
	// Told once: more rounds tell nothing again.
	n := len(f.eventLines())
	f.put(colNodes, threeNodes[0])
	f.put(colServices, svc("fifth", 0, "TCP/81"))
	waitUntil(t, "fifth's Event", func() bool { return hasEvent(f, "fifth Warning LoadBalancerPoolExhausted") })
	if got := f.eventLines()[n:]; len(got) != 1 {
		t.Errorf("after two more rounds, Events %q; want only fifth's", got)
	}

	// web goes: the Service that asked for its address gets it.
	f.remove(colServices, "default/web")
	waitUntil(t, "asks given 192.168.1.200", func() bool { return f.status("default/asks") == "[192.168.1.200]" })

	// A restart: a second controller (the first's Lease lost, say) reads
	// the allocation from the statuses and writes none of them.
	before := len(f.writes())
	startController(t, f, "192.168.1.200-192.168.1.201")
	f.put(colServices, svc("probe:"+ClassServiceLB, 0, "TCP/9090"))
	waitUntil(t, "probe's address", func() bool { return f.status("default/probe") != "[]" })
	for _, w := range f.writes()[before:] {
		if strings.HasPrefix(w, "PATCH") && !strings.Contains(w, "/services/probe/") {
			t.Errorf("after a restart the controller rewrote %s", w)
		}
	}
}

// TestControllerClearsStatus: a Service that stops being a LoadBalancer
// loses the address cairn gave it.
func TestControllerClearsStatus(t *testing.T) {
	f := newFakeAPI(t)
	f.put(colNodes, threeNodes[0])
	s := svc("web", 1)
	f.put(colServices, s)
	startController(t, f, "192.168.1.200")
	waitUntil(t, "web's address", func() bool { return f.status("default/web") == "[192.168.1.200]" })
	s.Spec.Type = "ClusterIP"
	s.Status.LoadBalancer.Ingress = []ingress{{IP: "192.168.1.200"}}
	f.put(colServices, s)
	waitUntil(t, "web's status emptied", func() bool { return f.status("default/web") == "[]" })
}

// holds records an announcer's candidacies.
type holds struct {
	mu    sync.Mutex
	lines []string
}

func (h *holds) hold(ctx context.Context, a netip.Addr) {
	h.add("start " + a.String())
	<-ctx.Done()
	h.add(fmt.Sprintf("stop %s: %v", a, context.Cause(ctx)))
}

func (h *holds) add(l string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lines = append(h.lines, l)
}

func (h *holds) has(l string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.lines, l)
}

// TestAnnounce: a server is a candidate for each address of the pool a
// Service has, for none other, and gives one up when no Service has it.
func TestAnnounce(t *testing.T) {
	f := newFakeAPI(t)
	f.put(colServices, svc("web@192.168.1.200", 2))
	f.put(colServices, svc("nodes:"+ClassServiceLB+"@192.168.1.11", 2))
	f.put(colServices, svc("outside@10.9.9.9", 2))
	f.put(colServices, svc("other:example.com/lb@192.168.1.202", 2))
	h := &holds{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Announce(ctx, AnnounceOptions{API: f.client(), Pool: mustPool(t, "192.168.1.200-192.168.1.210"), Hold: h.hold, Printf: t.Logf})
	}()
	waitUntil(t, "a candidacy for 192.168.1.200", func() bool { return h.has("start 192.168.1.200") })
	f.put(colServices, svc("db@192.168.1.201", 1))
	waitUntil(t, "a candidacy for 192.168.1.201", func() bool { return h.has("start 192.168.1.201") })
	f.remove(colServices, "default/web")
	waitUntil(t, "192.168.1.200 given up", func() bool { return h.has("stop 192.168.1.200: " + errReleased.Error()) })
	cancel()
	<-done
	waitUntil(t, "192.168.1.201 given up at the end", func() bool { return h.has("stop 192.168.1.201: context canceled") })
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.lines {
		if strings.Contains(l, "192.168.1.11") || strings.Contains(l, "10.9.9.9") || strings.Contains(l, "192.168.1.202") {
			t.Errorf("a candidacy for an address not of the pool's Services: %s", l)
		}
	}
	if errors.Is(ctx.Err(), context.Canceled) && len(h.lines) != 4 {
		t.Errorf("candidacies: %q", h.lines)
	}
}
