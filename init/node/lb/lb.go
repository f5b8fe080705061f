// Package lb is an agent's way to the control plane: a TCP proxy in the
// init that forwards each connection to a server that answers, learning
// the servers from the cluster, so the agent keeps working when the server
// it joined through goes away (as k3s's agent load balancer does).
package lb

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/supervise"
)

// Addr is where an agent's components reach the control plane.
const Addr = "127.0.0.1:6444"

// Balancer timings: a dial to a server that is gone gives up quickly, and
// servers are probed often enough to notice one leaving within seconds.
var (
	balancerDialTimeout = 2 * time.Second
	balancerProbeEvery  = 3 * time.Second
	balancerLearnEvery  = 30 * time.Second
	// maxBalancerConns bounds the connections the proxy carries at once.
	maxBalancerConns = 512
	// maxServers bounds the servers learned from the cluster.
	maxServers = 16
)

// Balancer forwards connections to the first healthy server: the one a
// connection last went to while it answers, else the others in order. The
// registration address (the `server` the agent was given) is always among
// them; servers learned from the cluster come after it.
type Balancer struct {
	printf func(string, ...any)
	// fixed is the registration address; it is never dropped.
	fixed string
	// probeEvery is how often every server is dialled.
	probeEvery time.Duration

	mu      sync.Mutex
	servers []string        // host:port, fixed first
	down    map[string]bool // by the last probe
	current string          // where the last connection went
	conns   map[string]map[net.Conn]bool
	active  int
}

// New is a balancer whose registration address (a server's host:port)
// is fixed; printf writes one console line.
func New(fixed string, printf func(string, ...any)) *Balancer {
	return &Balancer{printf: printf, fixed: fixed, probeEvery: balancerProbeEvery, servers: []string{fixed}, current: fixed,
		down: map[string]bool{}, conns: map[string]map[net.Conn]bool{}}
}

// Serve accepts on ln until ctx ends.
func (b *Balancer) Serve(ctx context.Context, ln net.Listener) {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	supervise.Go("node: balancer probes", func() { b.probe(ctx) })
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			b.printf("node: the control-plane proxy on %s stopped: %v", Addr, err)
			return
		}
		b.mu.Lock()
		full := b.active >= maxBalancerConns
		if !full {
			b.active++
		}
		b.mu.Unlock()
		if full {
			c.Close()
			continue
		}
		supervise.Go("node: balancer connection", func() {
			defer func() {
				b.mu.Lock()
				b.active--
				b.mu.Unlock()
			}()
			b.forward(ctx, c)
		})
	}
}

// order is the servers to try, healthy ones first, the current one first
// among them.
func (b *Balancer) order() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.servers))
	if !b.down[b.current] && slices.Contains(b.servers, b.current) {
		out = append(out, b.current)
	}
	for _, s := range b.servers {
		if !b.down[s] && s != b.current {
			out = append(out, s)
		}
	}
	for _, s := range b.servers {
		if b.down[s] {
			out = append(out, s)
		}
	}
	return out
}

func (b *Balancer) forward(ctx context.Context, c net.Conn) {
	defer c.Close()
	var up net.Conn
	var target string
	for _, s := range b.order() {
		d := net.Dialer{Timeout: balancerDialTimeout, KeepAlive: 15 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", s)
		if err == nil {
			up, target = conn, s
			break
		}
		b.mark(s, false)
	}
	if up == nil {
		return
	}
	defer up.Close()
	b.mu.Lock()
	if b.current != target {
		b.printf("node: the control plane is reached through %s now", target)
		b.current = target
	}
	if b.conns[target] == nil {
		b.conns[target] = map[net.Conn]bool{}
	}
	b.conns[target][c] = true
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.conns[target], c)
		b.mu.Unlock()
	}()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}
	supervise.Go("node: balancer pipe", func() { pipe(up, c) })
	supervise.Go("node: balancer pipe", func() { pipe(c, up) })
	<-done
	<-done
}

// mark records a server's health; a server found down has its
// connections closed at once, so clients reconnect through the balancer
// to one that answers instead of waiting for their own timeouts.
func (b *Balancer) mark(s string, up bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	was := !b.down[s]
	b.down[s] = !up
	if was && !up {
		for c := range b.conns[s] {
			c.Close()
		}
		if len(b.servers) > 1 {
			b.printf("node: server %s does not answer; %d other servers known", s, len(b.servers)-1)
		}
	}
}

// probe dials every server every balancerProbeEvery.
func (b *Balancer) probe(ctx context.Context) {
	for supervise.Sleep(ctx, b.probeEvery) {
		b.mu.Lock()
		servers := slices.Clone(b.servers)
		b.mu.Unlock()
		for _, s := range servers {
			d := net.Dialer{Timeout: balancerDialTimeout}
			c, err := d.DialContext(ctx, "tcp", s)
			if err == nil {
				c.Close()
			}
			b.mark(s, err == nil)
		}
	}
}

// setServers replaces the learned servers; the registration address stays.
func (b *Balancer) setServers(learned []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	next := []string{b.fixed}
	for _, s := range learned {
		if !slices.Contains(next, s) && len(next) < maxServers {
			next = append(next, s)
		}
	}
	if !slices.Equal(next, b.servers) {
		b.printf("node: control-plane servers: %v", next)
	}
	b.servers = next
}

// Learn reads the apiservers' addresses from the cluster (the
// `kubernetes` Service's EndpointSlice) every balancerLearnEvery, with
// the node's own credentials, through the balancer itself.
func (b *Balancer) Learn(ctx context.Context, api *kube.Client) {
	for {
		var list struct {
			Items []struct {
				Endpoints []struct {
					Addresses []string `json:"addresses"`
				} `json:"endpoints"`
				Ports []struct {
					Name string `json:"name"`
					Port int    `json:"port"`
				} `json:"ports"`
			} `json:"items"`
		}
		err := api.Get(ctx, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes", &list)
		if err == nil {
			var learned []string
			for _, it := range list.Items {
				port := 0
				for _, p := range it.Ports {
					if p.Name == "https" || port == 0 {
						port = p.Port
					}
				}
				for _, e := range it.Endpoints {
					for _, a := range e.Addresses {
						if ip, err := netip.ParseAddr(a); err == nil && port > 0 && port < 65536 {
							learned = append(learned, net.JoinHostPort(ip.String(), strconv.Itoa(port)))
						}
					}
				}
			}
			slices.Sort(learned)
			b.setServers(learned)
		}
		if !supervise.Sleep(ctx, balancerLearnEvery) {
			return
		}
	}
}
