// Package vip keeps the cluster's fixed registration address (the VIP) on
// exactly one ready server: servers elect a holder through a Lease in their
// own apiserver, and the holder adds the address to its link and announces
// it with gratuitous ARP (unsolicited neighbour advertisements for IPv6).
// The same election, with a Lease of its own per address, moves each
// address of the LoadBalancer pool (init/node/servicelb).
//
// The election judges time on the local monotonic clock only, as
// client-go's leaderelection does: a candidate takes the lease when it has
// seen no change of it for the holder's lease duration, and the holder
// drops the address when it has not renewed within its renew deadline,
// which is shorter. Clock skew between servers does not matter.
package vip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/cairn-os/cairn/init/supervise"
)

// Config says what to hold and how fast to move it.
type Config struct {
	// VIP is the address to hold.
	VIP netip.Addr
	// Lease names the Lease of this address's election in kube-system:
	// LeaseName (the cluster's VIP) when empty; every address elected
	// through one Store has a Lease of its own.
	Lease string
	// Prefix begins this election's console lines: "vip" when empty.
	Prefix string
	// Name is what the console calls what is held: VIP when empty (an
	// election that holds no address, but a task, names the task).
	Name string
	// Identity names this server in the lease; unique per boot
	// ("s1_3fa2b1c0": the node name, "_", random).
	Identity string
	// LeaseDuration is how long the others wait without seeing a renewal
	// before they take the lease; RenewDeadline how long the holder keeps
	// the address without a successful renewal; RetryPeriod how often
	// the holder renews and the others look.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Printf writes one console line.
	Printf func(format string, args ...any)
}

// Record is the lease as the election sees it.
type Record struct {
	// Holder is the holder's identity, "" when nobody holds it.
	Holder string
	// Duration is the holder's lease duration: how long the others wait.
	Duration time.Duration
	// Acquired and Renewed are wall-clock times, for people reading the
	// Lease; the election never compares them with a clock.
	Acquired, Renewed time.Time
	// Transitions counts changes of holder.
	Transitions int
	// Version is the object's resourceVersion: an update carrying an old
	// one fails with ErrConflict.
	Version string
}

// Errors a Store returns.
var (
	ErrNotFound = errors.New("the lease does not exist")
	ErrConflict = errors.New("the lease changed since it was read")
)

// Store reads and writes the leases, each by its name.
type Store interface {
	Get(ctx context.Context, name string) (Record, error)
	// Create makes the lease; ErrConflict when it exists already.
	Create(ctx context.Context, name string, r Record) (Record, error)
	// Update writes r if the lease is still at r.Version.
	Update(ctx context.Context, name string, r Record) (Record, error)
}

// Address is the VIP on this node's link (or, for an election of a task,
// the task: Add starts it, Remove stops it).
type Address interface {
	// Add adds the address and returns the link's name ("" for a task).
	Add() (link string, err error)
	// Announce tells the network that this node has the address now
	// (gratuitous ARP or unsolicited NA); it stops as soon as Remove is
	// called.
	Announce()
	// Remove takes the address off every link that has it; removed is
	// whether any had.
	Remove() (removed []string, err error)
}

// LinkMatch names the link to hold the VIP on, as the config does: a
// kernel name, a MAC address or a name glob (an ethernets entry's match).
// The zero LinkMatch means the link whose subnet holds the VIP.
type LinkMatch struct {
	Name string
	MAC  net.HardwareAddr
	Glob string
}

func (m LinkMatch) zero() bool { return m.Name == "" && m.MAC == nil && m.Glob == "" }

// Ready reports whether this server's apiserver is ready.
type Ready func(ctx context.Context) error

// elector is one server's view of the election.
type elector struct {
	c     Config
	store Store
	ready Ready
	addr  Address

	// observed is the last record read or written, seen at observedAt
	// (the local clock when this server first saw that version).
	observed   Record
	observedAt time.Time
	// holding: the address is on this node; renewed is when the last
	// successful write of the lease was sent.
	holding bool
	renewed time.Time
	// readyErr is the last readiness result, from watchReady.
	readyErr error
	readyCh  chan error
	// addFailed is the last error adding the address, said once;
	// until resting ends this server does not try to take the lease
	// again, so one that can hold the address gets it.
	addFailed string
	resting   time.Time
}

// errNotChecked is the readiness before the first check.
var errNotChecked = errors.New("not checked yet")

// Run holds the VIP whenever this server wins the election, until ctx
// ends; then it drops the address and releases the lease, so another
// server takes it at once. The console says why it dropped the address:
// "shutting down", or ctx's cause when one was given
// (context.WithCancelCause).
func Run(ctx context.Context, c Config, store Store, ready Ready, addr Address) {
	if c.Lease == "" {
		c.Lease = LeaseName
	}
	if c.Prefix == "" {
		c.Prefix = "vip"
	}
	e := &elector{c: c, store: store, ready: ready, addr: addr, readyErr: errNotChecked, readyCh: make(chan error, 1)}
	// A bug must not leave the address on a node that stopped renewing:
	// drop it, then let the caller's recovery report the panic.
	defer func() {
		if r := recover(); r != nil {
			addr.Remove()
			panic(r)
		}
	}()
	if links, err := addr.Remove(); err != nil {
		e.say("removing %s left from before: %v", e.name(), err)
	} else if len(links) > 0 {
		e.say("removed %s from %s: it was left from before this server took part", e.name(), strings.Join(links, ","))
	}
	readyCtx, stopReady := context.WithCancel(ctx)
	defer stopReady()
	supervise.Go(c.Prefix+": readiness", func() { e.watchReady(readyCtx) })
	for {
		wait := e.step(ctx)
		if !e.wait(ctx, wait) {
			why := "shutting down"
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
				why = cause.Error()
			}
			e.stop(why)
			return
		}
	}
}

// wait waits d, handling readiness results meanwhile: a holder whose
// apiserver stops being ready drops the address at once, and a server
// whose apiserver becomes ready takes part at once. It returns false when
// ctx ends.
func (e *elector) wait(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case err := <-e.readyCh:
			was := e.readyErr
			e.readyErr = err
			if err != nil && e.holding {
				e.drop("apiserver not ready")
			}
			if err == nil && was != nil {
				return true
			}
		case <-timer.C:
			return true
		}
	}
}

// watchReady checks the apiserver's readiness every retry period and
// hands each result to the election. A check that takes longer than the
// renew deadline counts as not ready.
func (e *elector) watchReady(ctx context.Context) {
	for {
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, e.c.RenewDeadline)
		err := e.ready(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		select { // only the latest result counts
		case <-e.readyCh:
		default:
		}
		e.readyCh <- err
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(e.c.RetryPeriod))):
		}
	}
}

// say writes one console line, after the election's prefix.
func (e *elector) say(format string, args ...any) {
	if e.c.Printf != nil {
		e.c.Printf(e.c.Prefix+": "+format, args...)
	}
}

// name is what the console calls what is held.
func (e *elector) name() string {
	if e.c.Name != "" {
		return e.c.Name
	}
	return e.c.VIP.String()
}

// deadline is when the holder must have renewed.
func (e *elector) deadline() time.Time { return e.renewed.Add(e.c.RenewDeadline) }

// step does one round: the holder renews the lease; the others read it
// and take it when it was given back or has expired. It returns how long
// to wait before the next round.
func (e *elector) step(ctx context.Context) time.Duration {
	if e.holding && !time.Now().Before(e.deadline()) {
		e.drop(fmt.Sprintf("could not renew the lease within %s", e.c.RenewDeadline))
	}
	if e.readyErr != nil {
		return e.c.RetryPeriod
	}
	// Every request of a holder ends by its deadline: a hung apiserver
	// must not keep the address past it.
	limit := time.Now().Add(max(e.c.LeaseDuration, time.Second))
	if e.holding {
		limit = e.deadline()
	}
	opCtx, cancel := context.WithDeadline(ctx, limit)
	defer cancel()
	if e.holding {
		// The holder knows the version it wrote last: one request.
		return e.renew(opCtx)
	}

	r, err := e.store.Get(opCtx, e.c.Lease)
	now := time.Now()
	switch {
	case errors.Is(err, ErrNotFound):
		return e.tryTake(opCtx, Record{}, true)
	case err != nil:
		return e.c.RetryPeriod
	}
	e.see(r, now)
	if r.Holder == e.c.Identity {
		// Still this server's (it dropped the address for a moment, or
		// its renewal's answer was lost): renew and take it back.
		return e.renew(opCtx)
	}
	if (r.Holder == "" || !now.Before(e.expiry())) && now.After(e.resting) {
		return e.tryTake(opCtx, r, false)
	}
	// Look again at the first moment the lease may have expired.
	return min(e.c.RetryPeriod, time.Until(e.expiry())+time.Millisecond)
}

// see notes a record read at now: a new version restarts its expiry.
func (e *elector) see(r Record, now time.Time) {
	if r.Version != e.observed.Version || e.observedAt.IsZero() {
		e.observed, e.observedAt = r, now
	}
}

// expiry is when the observed lease expires, on this server's clock.
func (e *elector) expiry() time.Time {
	d := e.observed.Duration
	if d <= 0 {
		d = e.c.LeaseDuration
	}
	return e.observedAt.Add(d)
}

// renew writes the lease again as its holder (and takes the address back
// when the lease is still this server's but the address was dropped).
func (e *elector) renew(ctx context.Context) time.Duration {
	next := e.observed
	next.Renewed = time.Now()
	next.Duration = e.c.LeaseDuration
	sent := time.Now()
	r, err := e.store.Update(ctx, e.c.Lease, next)
	switch {
	case err == nil:
		e.observed, e.observedAt, e.renewed = r, time.Now(), sent
		if !e.holding {
			e.take()
		}
		// Renew on a steady beat from the last renewal sent.
		return max(time.Until(sent.Add(e.c.RetryPeriod)), 0)
	case errors.Is(err, ErrConflict), errors.Is(err, ErrNotFound):
		// Someone else wrote it: see who.
		r, err := e.store.Get(ctx, e.c.Lease)
		if err == nil {
			e.see(r, time.Now())
			if r.Holder != e.c.Identity {
				e.drop("lost the lease to " + nodeOf(r.Holder))
			}
		}
	}
	if e.holding {
		return min(e.c.RetryPeriod, max(time.Until(e.deadline()), 0))
	}
	return e.c.RetryPeriod
}

// tryTake writes this server into the lease (created when absent).
func (e *elector) tryTake(ctx context.Context, r Record, create bool) time.Duration {
	now := time.Now()
	next := Record{Holder: e.c.Identity, Duration: e.c.LeaseDuration, Acquired: now, Renewed: now,
		Transitions: r.Transitions, Version: r.Version}
	if r.Holder != "" || create {
		next.Transitions++
	}
	sent := time.Now()
	var got Record
	var err error
	if create {
		got, err = e.store.Create(ctx, e.c.Lease, next)
	} else {
		got, err = e.store.Update(ctx, e.c.Lease, next)
	}
	if err != nil {
		// Another server was quicker, or the apiserver did not answer.
		return e.c.RetryPeriod
	}
	e.observed, e.observedAt, e.renewed = got, time.Now(), sent
	e.take()
	return max(time.Until(sent.Add(e.c.RetryPeriod)), 0)
}

// take adds the address; when that fails, the lease is given back so a
// server that can hold it does.
func (e *elector) take() {
	link, err := e.addr.Add()
	if err != nil {
		if msg := err.Error(); msg != e.addFailed {
			e.say("cannot take %s: %v; letting another server hold it", e.name(), err)
			e.addFailed = msg
		}
		e.addr.Remove()
		e.release()
		e.resting = time.Now().Add(2 * e.c.LeaseDuration)
		return
	}
	e.addFailed = ""
	e.holding = true
	if link == "" {
		e.say("took %s", e.name())
	} else {
		e.say("took %s on %s", e.name(), link)
	}
	e.addr.Announce()
}

// drop takes the address off at once.
func (e *elector) drop(why string) {
	if !e.holding {
		return
	}
	e.holding = false
	if _, err := e.addr.Remove(); err != nil {
		e.say("dropping %s: %v", e.name(), err)
	}
	e.say("dropped %s: %s", e.name(), why)
}

// releaseTimeout bounds giving the lease back at shutdown.
const releaseTimeout = time.Second

// release gives the lease back, when this server holds it: the others
// take it at their next look instead of waiting for it to expire.
func (e *elector) release() {
	if e.observed.Holder != e.c.Identity {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	next := e.observed
	next.Holder, next.Duration, next.Renewed = "", time.Second, time.Now()
	if r, err := e.store.Update(ctx, e.c.Lease, next); err == nil {
		e.observed, e.observedAt = r, time.Now()
	}
}

// stop ends this server's part: the address first, then the lease.
func (e *elector) stop(why string) {
	e.drop(why)
	e.release()
}

// nodeOf is the node name in an identity ("s2_9c1e40aa" → "s2").
func nodeOf(identity string) string {
	if i := strings.LastIndexByte(identity, '_'); i > 0 {
		return identity[:i]
	}
	return identity
}
