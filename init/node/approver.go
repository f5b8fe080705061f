package node

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairn-os/cairn/config/brief"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/init/node/nodeclaim"
	"github.com/cairn-os/cairn/init/supervise"
)

// A server decides the certificate requests that are its to decide:
// kubelet serving certificates (which kube-controller-manager leaves to
// the cluster's operator), admin certificates asked for with the server
// token (`cairn kubeconfig`), and kubelet client certificates asked for
// with the agent token, which claim a node name (nodenames.go).
// kube-controller-manager approves the kubelets' renewals of their own
// client certificates. The requests reach the approver by a watch (one
// list, then the changes): a server with none undecided asks nothing.

// approveEvery is how often the undecided requests the approver may
// decide are looked at again while there are any (a decision that failed,
// a claim whose record could not be read); a change to a request is
// looked at when it comes.
var approveEvery = 3 * time.Second

// csrWatchFor is how long one watch of the requests lasts before it is
// asked for again from where it ended.
var csrWatchFor = 5 * time.Minute

// recheckEvery is how often a serving request left unapproved is looked
// at again: a Node registering, or a server's label arriving, can make it
// one to approve.
var recheckEvery = 30 * time.Second

// serverGrace is how long a request naming an apiserver's address from a
// node not (yet) labelled a server is left without a word: a server's own
// kubelet may ask before its label is set, and its server approves it.
var serverGrace = 2 * time.Minute

// errNotServer says a request names an apiserver's address and its node is
// not a server.
var errNotServer = errors.New("an apiserver's address, and is not a server")

// csr is the part of a CertificateSigningRequest the approver reads.
type csr struct {
	Metadata struct {
		Name              string            `json:"name"`
		ResourceVersion   string            `json:"resourceVersion"`
		CreationTimestamp time.Time         `json:"creationTimestamp"`
		Annotations       map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Request           []byte   `json:"request"`
		SignerName        string   `json:"signerName"`
		Username          string   `json:"username"`
		Groups            []string `json:"groups"`
		Usages            []string `json:"usages"`
		ExpirationSeconds *int64   `json:"expirationSeconds"`
	} `json:"spec"`
	Status struct {
		Conditions []struct {
			Type string `json:"type"`
		} `json:"conditions"`
	} `json:"status"`
}

// request parses the PEM request of c.
func (c *csr) request() (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(c.Spec.Request)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("the request is not a PEM certificate request")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the request: %w", err)
	}
	return req, nil
}

// approveRequests decides, on every server, the certificate requests that
// are the servers' to decide, saying on the console once per request why
// one was not approved.
func (s *server) approveRequests(ctx context.Context, api *kube.Client) {
	q := newCSRQueue()
	supervise.Go("node: certificate requests watch", func() {
		// A failed list or watch is tried again; the requests wait as
		// they did for the next pass.
		say := &watchSay{printf: s.o.Printf}
		list := func(items []json.RawMessage) error {
			say.listed()
			return q.replace(items)
		}
		api.WithMaxReply(maxCSRList).ListWatch(ctx, csrPath, csrWatchFor, list, q.apply, say.failed)
	})
	a := &approver{s: s, api: api, policy: s.servingPolicy(), said: map[string]bool{}, looked: map[string]time.Time{}}
	t := time.NewTimer(approveEvery)
	defer t.Stop()
	for {
		var again <-chan time.Time
		if a.pass(ctx, q) {
			t.Reset(approveEvery)
			again = t.C
		}
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-again:
		}
	}
}

// approver is what the passes of approveRequests share.
type approver struct {
	s      *server
	api    *kube.Client
	policy servingPolicy
	// said names the requests the console was told about; looked the
	// serving requests left unapproved, and when.
	said   map[string]bool
	looked map[string]time.Time
}

// pass decides the undecided requests q holds, and says whether one it
// may decide is left undecided (to be looked at again).
func (a *approver) pass(ctx context.Context, q *csrQueue) (again bool) {
	s, api, said, looked := a.s, a.api, a.said, a.looked
	for _, item := range q.pending(join.AdminSigner) {
		c, raw := item.c, item.raw
		if !adminRequest(c) {
			continue // someone else's client certificate: not ours to decide
		}
		if err := checkAdminCSR(c); err != nil {
			if !said[c.Metadata.Name] {
				said[c.Metadata.Name] = true
				s.o.Printf("node: denying admin certificate request %s: %v", c.Metadata.Name, err)
			}
			if err := decide(ctx, api, raw, c.Metadata.Name, "Denied", "CairnAdminDeny", err.Error()); err != nil && ctx.Err() == nil {
				s.o.Printf("node: denying certificate request %s: %v", c.Metadata.Name, err)
			} else if err == nil {
				q.decided(c)
			}
			continue
		}
		if err := decide(ctx, api, raw, c.Metadata.Name, "Approved", "CairnAdminApprove", "asked for with the server token, approved by a cairn server"); err != nil && ctx.Err() == nil {
			s.o.Printf("node: approving certificate request %s: %v", c.Metadata.Name, err)
		} else if err == nil {
			q.decided(c)
		}
	}
	var view *clusterView
	if slices.ContainsFunc(q.pending(nodeclaim.Signer), func(p pendingCSR) bool { return mine(p.c) }) {
		// Read afresh: the claims are decided from a list of their own.
		s.decideClientRequests(ctx, api, said, &view)
	}
	for _, item := range q.pending("kubernetes.io/kubelet-serving") {
		c, raw := item.c, item.raw
		if at, ok := looked[c.Metadata.Name]; ok && time.Since(at) < recheckEvery {
			continue
		}
		if view == nil {
			var err error
			if view, err = readClusterView(ctx, api); err != nil {
				break // the next pass tries again
			}
		}
		if err := a.policy.check(c, view); err != nil {
			looked[c.Metadata.Name] = time.Now()
			early := errors.Is(err, errNotServer) && time.Since(c.Metadata.CreationTimestamp) < serverGrace
			if !said[c.Metadata.Name] && !early {
				said[c.Metadata.Name] = true
				s.o.Printf("node: not approving serving certificate request %s: %v", c.Metadata.Name, err)
			}
			continue
		}
		delete(looked, c.Metadata.Name)
		if err := decide(ctx, api, raw, c.Metadata.Name, "Approved", "CairnServingApprove", "the node's own name and addresses, approved by a cairn server"); err != nil && ctx.Err() == nil {
			s.o.Printf("node: approving certificate request %s: %v", c.Metadata.Name, err)
		} else if err == nil {
			q.decided(c)
		}
	}
	// Requests are deleted after a day (kube-controller-manager's
	// csrcleaner); these only bound what is remembered meanwhile.
	if len(said) > 1000 {
		clear(said)
	}
	if len(looked) > 1000 {
		clear(looked)
	}
	return slices.ContainsFunc(q.pending(""), func(p pendingCSR) bool { return mine(p.c) })
}

// mine says whether an undecided request is one the servers decide.
func mine(c *csr) bool {
	switch c.Spec.SignerName {
	case join.AdminSigner:
		return adminRequest(c)
	case nodeclaim.Signer:
		_, ours, _ := checkClientCSR(c)
		return ours
	}
	return c.Spec.SignerName == "kubernetes.io/kubelet-serving"
}

// The requests' collection, and bounds of what the approver keeps of it.
const (
	csrPath = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
	// maxCSRList bounds the list of every request (a few KiB each;
	// kube-controller-manager deletes them within a day).
	maxCSRList = 32 << 20
	// maxPendingCSRs bounds the undecided requests kept.
	maxPendingCSRs = 10000
)

// approverSigners are the signers whose requests the approver looks at.
var approverSigners = []string{join.AdminSigner, nodeclaim.Signer, "kubernetes.io/kubelet-serving"}

// csrQueue holds the undecided requests of approverSigners, as the watch
// of every request reports them, and wakes the approver when they change.
type csrQueue struct {
	mu    sync.Mutex
	items map[string]pendingCSR // by name
	wake  chan struct{}         // holds one wake-up at most
}

func newCSRQueue() *csrQueue {
	return &csrQueue{items: map[string]pendingCSR{}, wake: make(chan struct{}, 1)}
}

// replace makes the list's undecided requests the queue's.
func (q *csrQueue) replace(items []json.RawMessage) error {
	q.mu.Lock()
	clear(q.items)
	for _, raw := range items {
		q.putLocked(raw)
	}
	q.mu.Unlock()
	q.poke()
	return nil
}

// apply applies a change the watch reports.
func (q *csrQueue) apply(ev kube.WatchEvent) error {
	q.mu.Lock()
	switch ev.Type {
	case "ADDED", "MODIFIED":
		q.putLocked(ev.Object)
	case "DELETED":
		var m struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if json.Unmarshal(ev.Object, &m) == nil {
			delete(q.items, m.Metadata.Name)
		}
	}
	q.mu.Unlock()
	q.poke()
	return nil
}

// putLocked keeps raw when it is undecided and of one of approverSigners,
// and drops what the queue held under its name otherwise.
func (q *csrQueue) putLocked(raw json.RawMessage) {
	c := &csr{}
	if json.Unmarshal(raw, c) != nil || c.Metadata.Name == "" {
		return
	}
	if len(c.Status.Conditions) > 0 || !slices.Contains(approverSigners, c.Spec.SignerName) {
		delete(q.items, c.Metadata.Name)
		return
	}
	if _, ok := q.items[c.Metadata.Name]; ok || len(q.items) < maxPendingCSRs {
		q.items[c.Metadata.Name] = pendingCSR{c, raw}
	}
}

// decided drops a request this server decided, or found changed (a
// conflict), when the queue still holds the version c was decided from:
// the watch reports the newer version soon, and until then it is not
// decided twice. A newer version the watch brought meanwhile stays, to be
// decided: no other event may come for it.
func (q *csrQueue) decided(c *csr) {
	q.mu.Lock()
	if p, ok := q.items[c.Metadata.Name]; ok && p.c.Metadata.ResourceVersion == c.Metadata.ResourceVersion {
		delete(q.items, c.Metadata.Name)
	}
	q.mu.Unlock()
}

func (q *csrQueue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pending are the undecided requests for signer ("": every one), by
// name.
func (q *csrQueue) pending(signer string) []pendingCSR {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []pendingCSR
	for _, name := range slices.Sorted(maps.Keys(q.items)) {
		if p := q.items[name]; signer == "" || p.c.Spec.SignerName == signer {
			out = append(out, p)
		}
	}
	return out
}

// pendingCSR is one undecided request: its parsed part and its object.
type pendingCSR struct {
	c   *csr
	raw json.RawMessage
}

// pendingCSRs lists the undecided requests for signer (none when the list
// fails: the next pass tries again): decideClientRequests reads the claims
// afresh when the queue holds one.
func pendingCSRs(ctx context.Context, api *kube.Client, signer string) []pendingCSR {
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	q := "?fieldSelector=" + url.QueryEscape("spec.signerName="+signer)
	if err := api.Get(ctx, "/apis/certificates.k8s.io/v1/certificatesigningrequests"+q, &list); err != nil {
		return nil
	}
	var out []pendingCSR
	for _, raw := range list.Items {
		c := &csr{}
		if json.Unmarshal(raw, c) != nil || len(c.Status.Conditions) > 0 || c.Spec.SignerName != signer {
			continue
		}
		out = append(out, pendingCSR{c, raw})
	}
	return out
}

// adminRequest says whether a client certificate request is one of
// `cairn kubeconfig`'s: named so, or asking for the admins' group.
func adminRequest(c *csr) bool {
	if strings.HasPrefix(c.Metadata.Name, join.AdminPrefix) {
		return true
	}
	req, err := c.request()
	return err == nil && slices.Contains(req.Subject.Organization, join.AdminsGroup)
}

// checkAdminCSR checks that an admin request comes from the server token's
// bootstrap token and asks for exactly an admin's client certificate: the
// fixed subject O=join.AdminsGroup, CN=its own name, no other name, client
// use only, a lifetime within join.MaxExpiry.
func checkAdminCSR(c *csr) error {
	if !slices.Contains(c.Spec.Groups, join.ServersGroup) || !strings.HasPrefix(c.Spec.Username, "system:bootstrap:") {
		return fmt.Errorf("requested by %s, not with the server token (group %s)", c.Spec.Username, join.ServersGroup)
	}
	name := c.Metadata.Name
	if !strings.HasPrefix(name, join.AdminPrefix) {
		return fmt.Errorf("its name does not begin %s", join.AdminPrefix)
	}
	req, err := c.request()
	if err != nil {
		return err
	}
	if req.Subject.CommonName != name || !slices.Equal(req.Subject.Organization, []string{join.AdminsGroup}) || len(req.Subject.Names) != 2 {
		return fmt.Errorf("subject %q is not CN=%s,O=%s", req.Subject, name, join.AdminsGroup)
	}
	if len(req.DNSNames)+len(req.IPAddresses)+len(req.EmailAddresses)+len(req.URIs) > 0 {
		return fmt.Errorf("names hosts, addresses, e-mail addresses or URIs")
	}
	if !slices.Contains(c.Spec.Usages, "client auth") {
		return fmt.Errorf("does not ask for client auth")
	}
	for _, u := range c.Spec.Usages {
		if u != "digital signature" && u != "key encipherment" && u != "client auth" {
			return fmt.Errorf("asks for usage %q", u)
		}
	}
	e := c.Spec.ExpirationSeconds
	if e == nil || *e < int64(join.MinExpiry/time.Second) || *e > int64(join.MaxExpiry/time.Second) {
		return fmt.Errorf("asks for no lifetime, or one outside %s to %s", join.MinExpiry, join.MaxExpiry)
	}
	return nil
}

// servingPolicy is what a kubelet serving certificate may never name in
// this cluster, from the server's config.
type servingPolicy struct {
	// self is this server's node, whose addresses are a server's.
	self string
	// vip and sans are the VIP's and tls-san's addresses.
	vip, sans []netip.Addr
	// nets are the service and cluster (pod) CIDRs.
	nets []netip.Prefix
	// names are the names of the apiserver: kubernetes.default and the
	// rest, the VIP's and tls-san's names; domain is the cluster domain.
	names  []string
	domain string
}

func (s *server) servingPolicy() servingPolicy {
	k := s.k
	p := servingPolicy{self: nodeName(s.o), domain: strings.TrimSuffix(strings.ToLower(k.ClusterDomain), "."),
		names: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}}
	for _, cidrs := range []string{k.ServiceCIDR, k.ClusterCIDR} {
		for c := range strings.SplitSeq(cidrs, ",") {
			if n, err := netip.ParsePrefix(strings.TrimSpace(c)); err == nil {
				p.nets = append(p.nets, n.Masked())
			}
		}
	}
	add := func(list *[]netip.Addr, v string) {
		for n := range strings.SplitSeq(v, ",") {
			n = strings.TrimSpace(n)
			if a, err := netip.ParseAddr(n); err == nil {
				*list = append(*list, a.Unmap())
			} else if n != "" {
				p.names = append(p.names, strings.ToLower(strings.TrimSuffix(n, ".")))
			}
		}
	}
	add(&p.vip, k.VIP)
	for _, san := range k.TLSSAN {
		add(&p.sans, san)
	}
	return p
}

// clusterView is what the approver reads of the cluster in one pass: each
// Node's addresses and whether it is a server, and the apiserver's
// addresses (the kubernetes Service's endpoints).
type clusterView struct {
	nodes      map[string]nodeView
	apiservers []netip.Addr
}

type nodeView struct {
	addrs  []netip.Addr
	server bool
}

// maxNodeList bounds the Node list the approver reads (a Node's status
// lists its images: a few KiB a node).
const maxNodeList = 64 << 20

func readClusterView(ctx context.Context, api *kube.Client) (*clusterView, error) {
	var nodes struct {
		Items []struct {
			Metadata struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Status struct {
				Addresses []struct {
					Type    string `json:"type"`
					Address string `json:"address"`
				} `json:"addresses"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := api.WithMaxReply(maxNodeList).Get(ctx, "/api/v1/nodes", &nodes); err != nil {
		return nil, fmt.Errorf("listing the nodes: %w", err)
	}
	v := &clusterView{nodes: map[string]nodeView{}}
	for _, n := range nodes.Items {
		nv := nodeView{server: n.Metadata.Labels[upgrade.ServerLabel] == "true"}
		for _, a := range n.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				nv.addrs = append(nv.addrs, ip.Unmap())
			}
		}
		v.nodes[n.Metadata.Name] = nv
	}
	var eps struct {
		Items []struct {
			Endpoints []struct {
				Addresses []string `json:"addresses"`
			} `json:"endpoints"`
		} `json:"items"`
	}
	q := "?labelSelector=" + url.QueryEscape("kubernetes.io/service-name=kubernetes")
	if err := api.Get(ctx, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"+q, &eps); err != nil {
		return nil, fmt.Errorf("reading the apiserver's endpoints: %w", err)
	}
	for _, s := range eps.Items {
		for _, e := range s.Endpoints {
			for _, a := range e.Addresses {
				if ip, err := netip.ParseAddr(a); err == nil {
					v.apiservers = append(v.apiservers, ip.Unmap())
				}
			}
		}
	}
	return v, nil
}

// check says why a kubelet serving request may not be approved, nil when
// it may: it must come from a node, for server use, and name only that
// node's name and addresses its Node reports, none of them the VIP, a
// Service or pod address, another Node's address, an apiserver's address
// (but a server's own, whoever else claims it) or one of the apiserver's
// names.
func (p servingPolicy) check(c *csr, v *clusterView) error {
	node, ok := strings.CutPrefix(c.Spec.Username, "system:node:")
	if !ok || node == "" || !slices.Contains(c.Spec.Groups, "system:nodes") {
		return fmt.Errorf("requested by %q, not a node", c.Spec.Username)
	}
	for _, u := range c.Spec.Usages {
		if u != "digital signature" && u != "key encipherment" && u != "server auth" {
			return fmt.Errorf("node %s asks for usage %q", node, u)
		}
	}
	req, err := c.request()
	if err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	if req.Subject.CommonName != c.Spec.Username || !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) {
		return fmt.Errorf("subject %q is not %s in system:nodes", req.Subject, c.Spec.Username)
	}
	if len(req.EmailAddresses) > 0 || len(req.URIs) > 0 {
		return fmt.Errorf("node %s names e-mail addresses or URIs", node)
	}
	for _, d := range req.DNSNames {
		if d != node {
			return fmt.Errorf("node %s names %q, not its own name", node, d)
		}
		if why := p.reservedName(d); why != "" {
			return fmt.Errorf("node %s is named %q, %s", node, d, why)
		}
	}
	self, known := v.nodes[node]
	if !known {
		return fmt.Errorf("node %s has no Node object", node)
	}
	server := self.server || node == p.self
	for _, ip := range req.IPAddresses {
		a, _ := netip.AddrFromSlice(ip)
		a = a.Unmap()
		if why := p.reservedAddr(a); why != "" {
			return fmt.Errorf("node %s names %s, %s", node, a, why)
		}
		if !slices.Contains(self.addrs, a) {
			return fmt.Errorf("node %s names %s, not one of its addresses", node, a)
		}
		apiserver := slices.Contains(v.apiservers, a)
		if apiserver && server {
			continue // a server's own: another Node claiming it changes nothing
		}
		if apiserver {
			return fmt.Errorf("node %s names %s, %w", node, a, errNotServer)
		}
		for _, name := range slices.Sorted(maps.Keys(v.nodes)) {
			if name != node && slices.Contains(v.nodes[name].addrs, a) {
				return fmt.Errorf("node %s names %s, an address of node %s", node, a, name)
			}
		}
	}
	return nil
}

// reservedName says why a name may not be a kubelet's, "" when it may.
func (p servingPolicy) reservedName(d string) string {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	switch {
	case slices.Contains(p.names, d):
		return "a name of the apiserver"
	case strings.HasSuffix(d, ".svc"), p.domain != "" && (d == p.domain || strings.HasSuffix(d, "."+p.domain)):
		return "a name in the cluster's own domain"
	}
	return ""
}

// reservedAddr says why an address may not be in a kubelet's certificate,
// "" when it may.
func (p servingPolicy) reservedAddr(a netip.Addr) string {
	switch {
	case slices.Contains(p.vip, a):
		return "the VIP"
	case slices.Contains(p.sans, a):
		return "an apiserver's address (tls-san)"
	case a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast() || !a.IsValid():
		return "not a node's own address"
	}
	for _, n := range p.nets {
		if n.Contains(a) {
			return fmt.Sprintf("inside %s (Services or pods)", n)
		}
	}
	return ""
}

// decide adds the condition typ (Approved or Denied) to a request.
func decide(ctx context.Context, api *kube.Client, raw json.RawMessage, name, typ, reason, message string) error {
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return err
	}
	st, _ := obj["status"].(map[string]any)
	if st == nil {
		st = map[string]any{}
	}
	conds, _ := st["conditions"].([]any)
	st["conditions"] = append(conds, map[string]any{"type": typ, "status": "True", "reason": reason, "message": message})
	obj["status"] = st
	err := api.Do(ctx, http.MethodPut, "/apis/certificates.k8s.io/v1/certificatesigningrequests/"+name+"/approval", obj, nil)
	if kube.IsStatus(err, http.StatusConflict) {
		// Another server decided it first, or it changed since raw was
		// read: the watch brings the newer version.
		return nil
	}
	return err
}

// watchSay tells the console why the requests cannot be listed or
// watched, once per distinct reason (a request made meanwhile waits), and
// when they are listed again.
type watchSay struct {
	printf func(string, ...any)
	said   string // the reason last said, "" when the last list worked
}

// maxWatchReason bounds the reason watchSay prints and remembers.
const maxWatchReason = 300

func (w *watchSay) failed(err error) {
	reason := brief.FirstLine([]byte(err.Error()), maxWatchReason)
	if reason == "" {
		reason = "an error without a message"
	}
	if reason == w.said {
		return
	}
	w.said = reason
	w.printf("node: watching certificate requests: %s; a request made meanwhile waits to be decided (trying again)", reason)
}

func (w *watchSay) listed() {
	if w.said != "" {
		w.said = ""
		w.printf("node: watching certificate requests again: they are listed")
	}
}
