package servicelb

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/brief"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/supervise"
)

// How the controller paces itself: changes that come together are one
// round; a round whose writes failed is tried again; the Leases of the
// pool's addresses nobody holds are deleted now and then.
var (
	settle      = 100 * time.Millisecond
	retryWrites = 5 * time.Second
	sweepEvery  = 10 * time.Minute
	// staleLease is how long a Lease of an address no Service has may go
	// unrenewed before it is deleted while it still names a holder.
	staleLease = 10 * time.Minute
)

// controller is the deciding server's view of the cluster.
type controller struct {
	o Options

	// mu guards the reflectors' items.
	mu   sync.Mutex
	kick chan struct{}

	// told maps a Service's UID to the notes last told as its Events.
	told map[string]string
	// said is the last console line about a failed write.
	said  string
	swept time.Time
	now   func() time.Time
}

func newController(o Options) *controller {
	return &controller{o: o, kick: make(chan struct{}, 1), told: map[string]string{}, now: time.Now}
}

func (c *controller) changed() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// run watches Services, Nodes and EndpointSlices and decides at every
// change, until ctx ends.
func (c *controller) run(ctx context.Context) {
	var synced []chan struct{}
	start := func(r interface{ run(context.Context) }, ch chan struct{}, name string) {
		synced = append(synced, ch)
		supervise.Go("servicelb: "+name, func() { r.run(ctx) })
	}
	svcs := &reflector[*service]{api: c.o.API, path: "/api/v1/services", what: "Services", mu: &c.mu,
		changed: c.changed, synced: make(chan struct{}), say: c.o.Printf, parse: parseService}
	nodes := &reflector[*node]{api: c.o.API, path: "/api/v1/nodes", what: "Nodes", mu: &c.mu,
		changed: c.changed, synced: make(chan struct{}), say: c.o.Printf, parse: parseNode}
	eps := &reflector[endpoints]{api: c.o.API, path: "/apis/discovery.k8s.io/v1/endpointslices", what: "EndpointSlices", mu: &c.mu,
		changed: c.changed, synced: make(chan struct{}), say: c.o.Printf, parse: func(raw json.RawMessage) (objectMeta, endpoints, bool, error) {
			m, e, err := parseEndpoints(raw)
			return m, e, e.service != "", err
		}}
	start(svcs, svcs.synced, "Services")
	start(nodes, nodes.synced, "Nodes")
	start(eps, eps.synced, "EndpointSlices")
	for _, ch := range synced {
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
	get := func() world {
		c.mu.Lock()
		defer c.mu.Unlock()
		return worldOf(svcs.items, nodes.items, eps.items, c.o.Pool)
	}
	for {
		retry := false
		func() {
			defer supervise.Recover("servicelb")
			retry = !c.round(ctx, get())
		}()
		var again <-chan time.Time
		if retry {
			again = time.After(retryWrites)
		}
		sweep := time.NewTimer(sweepEvery)
		select {
		case <-ctx.Done():
			sweep.Stop()
			return
		case <-c.kick:
		case <-again:
		case <-sweep.C:
		}
		sweep.Stop()
		if !supervise.Sleep(ctx, settle) {
			return
		}
		select { // what came meanwhile is in this round
		case <-c.kick:
		default:
		}
	}
}

func parseService(raw json.RawMessage) (objectMeta, *service, bool, error) {
	var s service
	err := json.Unmarshal(raw, &s)
	return s.Metadata, &s, true, err
}

func parseNode(raw json.RawMessage) (objectMeta, *node, bool, error) {
	var n node
	err := json.Unmarshal(raw, &n)
	return n.Metadata, &n, true, err
}

// worldOf is what the maps hold, for one round.
func worldOf(svcs map[string]*service, nodes map[string]*node, eps map[string]endpoints, pool config.Pool) world {
	w := world{ready: map[string][]string{}, pool: pool}
	for _, s := range svcs {
		w.services = append(w.services, s)
	}
	for _, n := range nodes {
		w.nodes = append(w.nodes, n)
	}
	slices.SortFunc(w.nodes, func(a, b *node) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	for _, e := range eps {
		w.ready[e.service] = append(w.ready[e.service], e.nodes...)
	}
	return w
}

// round writes what plan decides: a status that differs, the Events of
// what changed. It returns false when a write failed (tried again
// shortly).
func (c *controller) round(ctx context.Context, w world) bool {
	ok := true
	uids := map[string]bool{}
	inUse := map[string]bool{}
	for _, d := range plan(w) {
		s := d.svc
		uids[s.Metadata.UID] = true
		if d.mode == modePool {
			for _, a := range d.want {
				inUse[AddressLease(a)] = true
			}
		}
		have := s.addresses()
		if !sameAddresses(have, d.want) || len(have) != len(s.Status.LoadBalancer.Ingress) {
			err := c.setStatus(ctx, s, d.want)
			switch {
			case err == nil:
				if len(d.want) > 0 {
					from := "the nodes' addresses"
					if d.mode == modePool {
						from = "kubernetes.loadbalancer-pool"
					}
					c.event(ctx, s, "Normal", "UpdatedLoadBalancer", fmt.Sprintf("Updated LoadBalancer with new IPs: %s -> %s (%s)", addrList(have), addrList(d.want), from))
				}
			case kube.IsStatus(err, http.StatusNotFound), kube.IsStatus(err, http.StatusConflict):
				// Gone, or changed since it was read: its event brings
				// the next round.
			default:
				ok = false
				c.fail(fmt.Sprintf("servicelb: writing the status of Service %s: %s; trying again in %s", s.Metadata.key(), brief.Err(err), retryWrites))
			}
		}
		if !c.tell(ctx, s, d.notes) {
			ok = false
		}
	}
	for uid := range c.told {
		if !uids[uid] {
			delete(c.told, uid)
		}
	}
	if c.now().Sub(c.swept) >= sweepEvery {
		if err := c.sweep(ctx, inUse); err != nil {
			c.fail(fmt.Sprintf("servicelb: deleting the Leases of addresses no Service has: %s", brief.Err(err)))
		} else {
			c.swept = c.now()
		}
	}
	if ok {
		c.said = ""
	}
	return ok
}

// fail says line on the console, once until a round succeeds.
func (c *controller) fail(line string) {
	if line != c.said {
		c.o.Printf("%s", line)
		c.said = line
	}
}

func addrList(as []netip.Addr) string {
	var s []string
	for _, a := range as {
		s = append(s, a.String())
	}
	return "[" + strings.Join(s, " ") + "]"
}

// setStatus writes the Service's status.loadBalancer.ingress, at the
// version read (a Service changed meanwhile is decided again).
func (c *controller) setStatus(ctx context.Context, s *service, want []netip.Addr) error {
	var ing any // null: none
	if len(want) > 0 {
		list := []ingress{}
		for _, a := range want {
			list = append(list, ingress{IP: a.String(), IPMode: "VIP"})
		}
		ing = list
	}
	patch := map[string]any{
		"metadata": map[string]any{"resourceVersion": s.Metadata.ResourceVersion},
		"status":   map[string]any{"loadBalancer": map[string]any{"ingress": ing}},
	}
	path := "/api/v1/namespaces/" + url.PathEscape(s.Metadata.Namespace) + "/services/" + url.PathEscape(s.Metadata.Name) + "/status"
	return c.o.API.MergePatch(ctx, path, patch)
}

// tell posts the Warning Events of notes the Service was not told yet;
// false when a post failed.
func (c *controller) tell(ctx context.Context, s *service, notes []note) bool {
	var key strings.Builder
	for _, n := range notes {
		key.WriteString(n.reason + ": " + n.message + "\n")
	}
	before, known := c.told[s.Metadata.UID]
	if known && before == key.String() {
		return true
	}
	for _, n := range notes {
		if strings.Contains(before, n.reason+": "+n.message+"\n") {
			continue
		}
		if err := c.event(ctx, s, "Warning", n.reason, n.message); err != nil {
			c.fail(fmt.Sprintf("servicelb: an Event for Service %s: %s", s.Metadata.key(), brief.Err(err)))
			return false
		}
	}
	c.told[s.Metadata.UID] = key.String()
	return true
}

// maxMessage bounds an Event's message (the apiserver takes 1 KiB).
const maxMessage = 1024

// event posts one Event about the Service.
func (c *controller) event(ctx context.Context, s *service, typ, reason, message string) error {
	if len(message) > maxMessage {
		message = message[:maxMessage-3] + "..."
	}
	now := c.now().UTC().Format(time.RFC3339)
	ev := map[string]any{
		"apiVersion": "v1", "kind": "Event",
		"metadata": map[string]any{"generateName": s.Metadata.Name + ".", "namespace": s.Metadata.Namespace},
		"involvedObject": map[string]any{"apiVersion": "v1", "kind": "Service", "namespace": s.Metadata.Namespace,
			"name": s.Metadata.Name, "uid": s.Metadata.UID, "resourceVersion": s.Metadata.ResourceVersion},
		"type": typ, "reason": reason, "message": message,
		"source":         map[string]string{"component": Component, "host": c.o.Node},
		"firstTimestamp": now, "lastTimestamp": now, "count": 1,
		"reportingComponent": Component, "reportingInstance": c.o.Node,
	}
	return c.o.API.Do(ctx, http.MethodPost, "/api/v1/namespaces/"+url.PathEscape(s.Metadata.Namespace)+"/events", ev, nil)
}

const leasesPath = "/apis/coordination.k8s.io/v1/namespaces/" + Namespace + "/leases"

// sweep deletes the Leases of the pool's addresses that no Service has,
// once given back (or long unrenewed): each server gives its Lease back
// when it stops announcing the address.
func (c *controller) sweep(ctx context.Context, inUse map[string]bool) error {
	var list struct {
		Items []struct {
			Metadata objectMeta `json:"metadata"`
			Spec     struct {
				HolderIdentity *string `json:"holderIdentity"`
				RenewTime      string  `json:"renewTime"`
			} `json:"spec"`
		} `json:"items"`
	}
	if err := c.o.API.WithMaxReply(maxPage).Get(ctx, leasesPath, &list); err != nil {
		return err
	}
	for _, l := range list.Items {
		name := l.Metadata.Name
		if !strings.HasPrefix(name, LeasePrefix) || inUse[name] {
			continue
		}
		renewed, err := time.Parse("2006-01-02T15:04:05.000000Z07:00", l.Spec.RenewTime)
		held := l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != ""
		if held && err == nil && c.now().Sub(renewed) < staleLease {
			continue
		}
		opts := map[string]any{"apiVersion": "v1", "kind": "DeleteOptions",
			"preconditions": map[string]string{"resourceVersion": l.Metadata.ResourceVersion}}
		err = c.o.API.Do(ctx, http.MethodDelete, leasesPath+"/"+url.PathEscape(name), opts, nil)
		if err != nil && !kube.IsStatus(err, http.StatusNotFound) && !kube.IsStatus(err, http.StatusConflict) {
			return err
		}
	}
	return nil
}
