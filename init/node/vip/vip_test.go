package vip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cluster is several electors sharing one fake apiserver (the lease) and
// one fake network (who has the address), which records every moment two
// servers had the address at once.
type cluster struct {
	t  *testing.T
	mu sync.Mutex
	// the lease
	rec     Record
	exists  bool
	version int
	history []Record
	// the network
	holders map[string]bool
	overlap []string
	// the consoles
	lines []string
	// names are the names of the leases asked for
	names map[string]bool
}

// lease notes that a member asked for the lease called name.
func (c *cluster) lease(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.names == nil {
		c.names = map[string]bool{}
	}
	c.names[name] = true
}

func newCluster(t *testing.T) *cluster { return &cluster{t: t, holders: map[string]bool{}} }

var testVIP = netip.MustParseAddr("10.0.0.100")

// member is one server of the cluster.
type member struct {
	c        *cluster
	id       string
	cut      atomic.Bool // its apiserver cannot reach the datastore: requests hang
	notReady atomic.Bool
	noLink   atomic.Bool // Add fails: no link in the VIP's subnet
	cancel   context.CancelFunc
	// cancelCause stops it with a reason the console gives.
	cancelCause context.CancelCauseFunc
	done        chan struct{}
}

func (c *cluster) start(id string, lease, renew, retry time.Duration) *member {
	return c.startWith(id, lease, renew, retry, func(*Config) {})
}

// startWith starts a member whose config edit changes first.
func (c *cluster) startWith(id string, lease, renew, retry time.Duration, edit func(*Config)) *member {
	m := &member{c: c, id: id, done: make(chan struct{})}
	ctx, cancel := context.WithCancelCause(context.Background())
	m.cancel = func() { cancel(nil) }
	m.cancelCause = cancel
	cfg := Config{VIP: testVIP, Identity: id + "_0001", LeaseDuration: lease, RenewDeadline: renew, RetryPeriod: retry,
		Printf: func(f string, a ...any) {
			c.mu.Lock()
			c.lines = append(c.lines, id+": "+fmt.Sprintf(f, a...))
			c.mu.Unlock()
		}}
	edit(&cfg)
	go func() {
		defer close(m.done)
		Run(ctx, cfg, (*memberStore)(m), m.ready, (*memberAddr)(m))
	}()
	c.t.Cleanup(func() { cancel(nil); <-m.done })
	return m
}

func (m *member) ready(ctx context.Context) error {
	if m.notReady.Load() {
		return errors.New("/readyz answered 500")
	}
	return m.wait(ctx)
}

// wait is a request's round trip: a hang while the member is cut off.
func (m *member) wait(ctx context.Context) error {
	if !m.cut.Load() {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

type memberStore member

func (s *memberStore) Get(ctx context.Context, name string) (Record, error) {
	m := (*member)(s)
	m.c.lease(name)
	if err := m.wait(ctx); err != nil {
		return Record{}, err
	}
	c := m.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.exists {
		return Record{}, ErrNotFound
	}
	return c.rec, nil
}

func (s *memberStore) Create(ctx context.Context, name string, r Record) (Record, error) {
	m := (*member)(s)
	m.c.lease(name)
	if err := m.wait(ctx); err != nil {
		return Record{}, err
	}
	c := m.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exists {
		return Record{}, ErrConflict
	}
	c.exists = true
	return c.writeLocked(r), nil
}

func (s *memberStore) Update(ctx context.Context, name string, r Record) (Record, error) {
	m := (*member)(s)
	m.c.lease(name)
	if err := m.wait(ctx); err != nil {
		return Record{}, err
	}
	c := m.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.exists {
		return Record{}, ErrNotFound
	}
	if r.Version != c.rec.Version {
		return Record{}, ErrConflict
	}
	return c.writeLocked(r), nil
}

func (c *cluster) writeLocked(r Record) Record {
	c.version++
	r.Version = strconv.Itoa(c.version)
	c.rec = r
	c.history = append(c.history, r)
	return r
}

type memberAddr member

func (a *memberAddr) Add() (string, error) {
	m := (*member)(a)
	if m.noLink.Load() {
		return "", errors.New("no link has an address in a subnet that holds 10.0.0.100")
	}
	c := m.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for other := range c.holders {
		if other != m.id {
			c.overlap = append(c.overlap, fmt.Sprintf("%s took the address while %s had it", m.id, other))
		}
	}
	c.holders[m.id] = true
	return "eth0", nil
}

func (a *memberAddr) Announce() {}

func (a *memberAddr) Remove() ([]string, error) {
	m := (*member)(a)
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	if !m.c.holders[m.id] {
		return nil, nil
	}
	delete(m.c.holders, m.id)
	return []string{"eth0"}, nil
}

// holder waits until exactly one member has the address and it is not
// except, and returns it.
func (c *cluster) holder(except string) string {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		var hs []string
		for h := range c.holders {
			hs = append(hs, h)
		}
		c.mu.Unlock()
		if len(hs) == 1 && hs[0] != except {
			return hs[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("no single holder (other than %q); console:\n%s", except, c.console())
	return ""
}

// expect waits for a console line.
func (c *cluster) expect(line string) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(c.console(), line+"\n") {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("no line %q; console:\n%s", line, c.console())
}

// expectOne waits for one of lines.
func (c *cluster) expectOne(lines ...string) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range lines {
			if strings.Contains(c.console(), l+"\n") {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("none of %q; console:\n%s", lines, c.console())
}

func (c *cluster) console() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n") + "\n"
}

func (c *cluster) checkOverlap() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.overlap {
		c.t.Errorf("two holders: %s", o)
	}
}

// Timings of the tests: short, with the same proportions as the defaults.
const (
	tLease = 400 * time.Millisecond
	tRenew = 250 * time.Millisecond
	tRetry = 50 * time.Millisecond
)

func (c *cluster) three() map[string]*member {
	ms := map[string]*member{}
	for _, id := range []string{"s1", "s2", "s3"} {
		ms[id] = c.start(id, tLease, tRenew, tRetry)
	}
	return ms
}

// TestIsolatedHolder: the holder whose apiserver hangs (cut off from the
// datastore) drops the address at its renew deadline, before another
// server takes it; the console says why.
func TestIsolatedHolder(t *testing.T) {
	c := newCluster(t)
	ms := c.three()
	for round := range 3 {
		h := c.holder("")
		c.expect(h + ": vip: took 10.0.0.100 on eth0")
		ms[h].cut.Store(true)
		next := c.holder(h)
		// Its requests hang: whichever ends first, the renewal or the
		// readiness check, says why.
		c.expectOne(h+": vip: dropped 10.0.0.100: could not renew the lease within 250ms", h+": vip: dropped 10.0.0.100: apiserver not ready")
		ms[h].cut.Store(false)
		t.Logf("round %d: %s → %s", round, h, next)
	}
	c.checkOverlap()
}

// TestNotReady: the holder whose apiserver stops being ready drops the
// address at once and another takes it when the lease expires.
func TestNotReady(t *testing.T) {
	c := newCluster(t)
	ms := c.three()
	h := c.holder("")
	ms[h].notReady.Store(true)
	c.expect(h + ": vip: dropped 10.0.0.100: apiserver not ready")
	next := c.holder(h)
	c.expect(next + ": vip: took 10.0.0.100 on eth0")
	c.checkOverlap()
}

// TestShutdownReleases: a holder that stops drops the address and gives
// the lease back: the next holder takes a released lease, not an expired
// one.
func TestShutdownReleases(t *testing.T) {
	c := newCluster(t)
	ms := map[string]*member{}
	// Long leases: only a release lets the next take it within the test.
	for _, id := range []string{"s1", "s2"} {
		ms[id] = c.start(id, time.Hour, 59*time.Minute, tRetry)
	}
	h := c.holder("")
	ms[h].cancel()
	<-ms[h].done
	c.expect(h + ": vip: dropped 10.0.0.100: shutting down")
	next := c.holder(h)
	c.mu.Lock()
	var released bool
	for i, r := range c.history {
		if r.Holder == next+"_0001" && i > 0 && c.history[i-1].Holder == "" {
			released = true
		}
	}
	c.mu.Unlock()
	if !released {
		t.Errorf("%s did not take a released lease: %+v", next, c.history)
	}
	c.checkOverlap()
}

// TestLostLease: a holder that finds another server in the lease drops
// the address and names it.
func TestLostLease(t *testing.T) {
	c := newCluster(t)
	c.start("s1", time.Hour, 59*time.Minute, tRetry)
	c.holder("")
	c.mu.Lock()
	r := c.rec
	r.Holder = "s9_abcd"
	c.writeLocked(r)
	c.mu.Unlock()
	c.expect("s1: vip: dropped 10.0.0.100: lost the lease to s9")
}

// TestLeftOver: an address left on a link from before (a restarted init)
// is removed before the server takes part.
func TestLeftOver(t *testing.T) {
	c := newCluster(t)
	c.holders["s1"] = true
	c.start("s1", tLease, tRenew, tRetry)
	c.expect("s1: vip: removed 10.0.0.100 from eth0: it was left from before this server took part")
}

// TestCannotAdd: a server that wins the lease but cannot add the address
// says so once and lets another hold it.
func TestCannotAdd(t *testing.T) {
	c := newCluster(t)
	s1 := c.start("s1", tLease, tRenew, tRetry)
	s1.noLink.Store(true)
	c.expect("s1: vip: cannot take 10.0.0.100: no link has an address in a subnet that holds 10.0.0.100; letting another server hold it")
	c.start("s2", tLease, tRenew, tRetry)
	if h := c.holder(""); h != "s2" {
		t.Errorf("holder %s, want s2", h)
	}
	if n := strings.Count(c.console(), "cannot take"); n != 1 {
		t.Errorf("said %d times that it cannot take the VIP, want once:\n%s", n, c.console())
	}
}

// TestNamedLease: an election of another address (one of the
// LoadBalancer pool's) uses its own Lease and console prefix, and a stop
// with a cause says it when it drops the address.
func TestNamedLease(t *testing.T) {
	c := newCluster(t)
	s1 := c.startWith("s1", tLease, tRenew, tRetry, func(cfg *Config) {
		cfg.Lease, cfg.Prefix = "cairn-lb-10.0.0.100", "servicelb"
	})
	c.expect("s1: servicelb: took 10.0.0.100 on eth0")
	s1.cancelCause(errors.New("no Service has it any more"))
	<-s1.done
	c.expect("s1: servicelb: dropped 10.0.0.100: no Service has it any more")
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.names) != 1 || !c.names["cairn-lb-10.0.0.100"] {
		t.Errorf("leases asked for: %v, want only cairn-lb-10.0.0.100", c.names)
	}
	if c.rec.Holder != "" {
		t.Errorf("the lease after the stop: holder %q, want it given back", c.rec.Holder)
	}
}
