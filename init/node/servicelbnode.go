package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/pki"
	"github.com/cairn-os/cairn/init/node/servicelb"
	"github.com/cairn-os/cairn/init/node/vip"
	"github.com/cairn-os/cairn/init/supervise"
)

// startServiceLB gives LoadBalancer Services their addresses, unless
// kubernetes.disable names servicelb: once this server's apiserver is
// ready, it is a candidate to decide them (one server at a time), and,
// with a loadbalancer-pool, a candidate to announce each address of the
// pool a Service has, with the VIP's election and timings (one Lease per
// address) on the VIP's link (vip-interface, else the link whose subnet
// holds the address).
func (s *server) startServiceLB(ctx context.Context, c pki.Cluster) {
	if slices.Contains(s.k.Disable, "servicelb") {
		return
	}
	pool, err := s.k.Pool()
	if err != nil {
		s.o.Printf("servicelb: %v; LoadBalancer Services get no addresses from this server", err)
		return
	}
	t, err := s.k.VIPTimings()
	if err != nil {
		s.o.Printf("servicelb: %v; LoadBalancer Services get no addresses from this server", err)
		return
	}
	tlsCfg, err := s.adminTLS(c)
	if err != nil {
		s.o.Printf("servicelb: %v; LoadBalancer Services get no addresses from this server", err)
		return
	}
	supervise.Go("servicelb", func() {
		if _, err := s.o.Services.Wait(ctx, "kube-apiserver", func(st supervise.Status) bool { return st.State == supervise.Ready }); err != nil {
			return
		}
		api := kube.New(apiserverLocal, kube.Options{TLS: tlsCfg, DialContext: s.admin.dial})
		leases := vip.NewAPIDial(apiserverLocal, tlsCfg, s.admin.dial)
		// Every election of this server asks its apiserver's readiness
		// through one check a retry period.
		ready := sharedReady(leases.Ready, t.RetryPeriod)
		var boot [4]byte
		rand.Read(boot[:])
		identity := nodeName(s.o) + "_" + hex.EncodeToString(boot[:])
		mode := "servicelb (the nodes' addresses) for Services without a class"
		if len(pool) > 0 {
			mode = "the pool " + pool.String() + " for Services without a class"
		}
		s.o.Printf("servicelb: a candidate to decide the LoadBalancer Services' addresses: %s", mode)
		supervise.Go("servicelb: election", func() {
			servicelb.Run(ctx, servicelb.Options{API: api, Leases: leases, Ready: ready, Identity: identity,
				Node: nodeName(s.o), Pool: pool, Printf: s.o.Printf})
		})
		if len(pool) == 0 {
			return
		}
		link := vipLink(s.o.Config)
		hold := func(ctx context.Context, a netip.Addr) {
			cfg := vip.Config{VIP: a, Lease: servicelb.AddressLease(a), Prefix: "servicelb", Identity: identity,
				LeaseDuration: t.LeaseDuration, RenewDeadline: t.RenewDeadline, RetryPeriod: t.RetryPeriod, Printf: s.o.Printf}
			vip.Run(ctx, cfg, leases, ready, vip.NewAddress(a, link))
		}
		servicelb.Announce(ctx, servicelb.AnnounceOptions{API: api, Pool: pool, Hold: hold, Printf: s.o.Printf})
	})
}

// sharedReady is check asked at most once per half period by any number
// of callers at once: each gets the latest answer. A check cut short by
// its caller's end (an election that stopped) answers that caller only.
func sharedReady(check vip.Ready, period time.Duration) vip.Ready {
	var mu sync.Mutex
	var at time.Time
	var last error
	return func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if !at.IsZero() && time.Since(at) < period/2 {
			return last
		}
		err := check(ctx)
		if ctx.Err() != nil {
			return err
		}
		last, at = err, time.Now()
		return last
	}
}
