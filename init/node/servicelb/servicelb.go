// Package servicelb gives LoadBalancer Services their addresses, on the
// servers, without pods: the nodes' own addresses the k3s way
// (servicelb), or one address each from kubernetes.loadbalancer-pool,
// announced by one server at a time. Either way the address is only the
// Service's status: kube-proxy routes what arrives for the addresses a
// status lists. One server at a time decides (Run, under a Lease); every
// server announces the pool's addresses it wins (Announce).
package servicelb

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/vip"
	"github.com/cairn-os/cairn/init/supervise"
)

// The load balancer classes of cairn's two modes: a Service that names
// one in spec.loadBalancerClass gets that mode; a Service without a class
// gets the pool when the servers have one, else servicelb; a Service
// with any other class is left to whoever serves that class.
const (
	ClassServiceLB = "cairn-os.github.io/servicelb"
	ClassPool      = "cairn-os.github.io/pool"
)

// Names the controller uses in the cluster.
const (
	// Namespace holds the Leases.
	Namespace = "kube-system"
	// LeaseName is the Lease of the one server that decides.
	LeaseName = "cairn-servicelb"
	// LeasePrefix begins the Lease of each address of the pool in use:
	// the servers elect who announces it through it.
	LeasePrefix = "cairn-lb-"
	// Component is the Events' source and the status's field manager.
	Component = "cairn-servicelb"
)

// AddressLease is the name of the Lease that elects the server
// announcing a: "cairn-lb-192.168.1.200", "cairn-lb-fd00--10".
func AddressLease(a netip.Addr) string {
	return LeasePrefix + strings.ReplaceAll(a.Unmap().String(), ":", "-")
}

// Timings of the election of the deciding server: it only hands out
// addresses and writes statuses, so a minute's gap after its server dies
// only delays new Services, and its renewals cost little.
var (
	leaseDuration = 30 * time.Second
	renewDeadline = 20 * time.Second
	retryPeriod   = 10 * time.Second
)

// Options are what the controller needs, given once.
type Options struct {
	// API is the server's admin client of its own apiserver.
	API *kube.Client
	// Leases and Ready run the election of the deciding server (the
	// VIP's, see init/node/vip).
	Leases vip.Store
	Ready  vip.Ready
	// Identity names this server in the Lease ("s1_3fa2b1c0"); Node is
	// its node name, the Events' host.
	Identity, Node string
	// Pool is kubernetes.loadbalancer-pool; none: servicelb for Services
	// without a class.
	Pool config.Pool
	// Printf writes one console line.
	Printf func(format string, args ...any)
}

// Run decides the LoadBalancer Services' statuses whenever this server
// holds the Lease, until ctx ends.
func Run(ctx context.Context, o Options) {
	cfg := vip.Config{Lease: LeaseName, Prefix: "servicelb", Name: "the LoadBalancer Services", Identity: o.Identity,
		LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod, Printf: o.Printf}
	vip.Run(ctx, cfg, o.Leases, o.Ready, &task{ctx: ctx, o: o})
}

// task is the controller as the election holds it: Add starts it,
// Remove stops it and waits for it.
type task struct {
	ctx    context.Context
	o      Options
	cancel context.CancelFunc
	done   chan struct{}
}

// stopWait bounds how long Remove waits for the controller to stop
// (a request in flight ends with its context).
const stopWait = 5 * time.Second

func (t *task) Add() (string, error) {
	if t.cancel != nil {
		return "", nil
	}
	ctx, cancel := context.WithCancel(t.ctx)
	t.cancel, t.done = cancel, make(chan struct{})
	done := t.done
	supervise.Go("servicelb: controller", func() {
		defer close(done)
		newController(t.o).run(ctx)
	})
	return "", nil
}

func (t *task) Announce() {}

func (t *task) Remove() ([]string, error) {
	if t.cancel == nil {
		return nil, nil
	}
	t.cancel()
	select {
	case <-t.done:
	case <-time.After(stopWait):
	}
	t.cancel, t.done = nil, nil
	return nil, nil
}
