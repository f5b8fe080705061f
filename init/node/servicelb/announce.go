package servicelb

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/supervise"
)

// AnnounceOptions are what the announcer needs, given once.
type AnnounceOptions struct {
	// API is the server's admin client of its own apiserver.
	API *kube.Client
	// Pool is kubernetes.loadbalancer-pool: only its addresses are
	// announced.
	Pool config.Pool
	// Hold takes part in the election of a's announcer until ctx ends
	// (vip.Run with a's Lease), and gives a up then.
	Hold func(ctx context.Context, a netip.Addr)
	// Printf writes one console line.
	Printf func(format string, args ...any)
}

// errReleased is why an address is given up: no Service has it now.
var errReleased = errors.New("no Service has it any more")

// Announce keeps this server a candidate for every address of the pool
// that a Service of the pool's mode has in its status, and no other,
// until ctx ends.
func Announce(ctx context.Context, o AnnounceOptions) {
	a := &announcer{o: o, held: map[netip.Addr]*hold{}, kick: make(chan struct{}, 1)}
	r := &reflector[*service]{api: o.API, path: "/api/v1/services", what: "Services", mu: &a.mu,
		changed: a.changed, synced: make(chan struct{}), say: o.Printf, parse: parseService}
	supervise.Go("servicelb: announced Services", func() { r.run(ctx) })
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		}
		a.mu.Lock()
		want := announced(r.items, o.Pool)
		a.mu.Unlock()
		a.set(ctx, want)
		if !supervise.Sleep(ctx, settle) {
			return
		}
	}
}

// announcer is one server's set of candidacies.
type announcer struct {
	o    AnnounceOptions
	mu   sync.Mutex // guards the reflector's items
	kick chan struct{}
	held map[netip.Addr]*hold
}

// hold is one candidacy.
type hold struct {
	stop context.CancelCauseFunc
	done chan struct{}
}

func (a *announcer) changed() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// announced are the addresses of the pool the Services have.
func announced(svcs map[string]*service, pool config.Pool) []netip.Addr {
	var out []netip.Addr
	for _, s := range svcs {
		if modeOf(s, pool) != modePool {
			continue
		}
		for _, ad := range s.addresses() {
			if pool.Contains(ad) && !slices.Contains(out, ad) {
				out = append(out, ad)
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// set starts a candidacy for each address of want without one and ends
// those of the others (forgotten at a later call, once ended). A new
// candidacy for an address waits for the end of the last one: the two
// share this server's identity in one Lease.
func (a *announcer) set(ctx context.Context, want []netip.Addr) {
	for ad, h := range a.held {
		if !slices.Contains(want, ad) && h.stop != nil {
			h.stop(errReleased)
			h.stop = nil
		}
	}
	for ad, h := range a.held {
		if h.stop == nil {
			select {
			case <-h.done:
				delete(a.held, ad)
			default:
			}
		}
	}
	for _, ad := range want {
		prev := a.held[ad]
		if prev != nil && prev.stop != nil {
			continue
		}
		hctx, stop := context.WithCancelCause(ctx)
		h := &hold{stop: stop, done: make(chan struct{})}
		a.held[ad] = h
		supervise.Go("servicelb: "+ad.String(), func() {
			defer close(h.done)
			if prev != nil {
				select {
				case <-prev.done:
				case <-hctx.Done():
					return
				}
			}
			a.o.Hold(hctx, ad)
		})
	}
}
