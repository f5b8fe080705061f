package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
)

// servingCSR is a kubelet-serving request from node n naming dns and ips.
func servingCSR(t *testing.T, n string, dns []string, ips ...string) *csr {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:" + n, Organization: []string{"system:nodes"}}, DNSNames: dns}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	c := &csr{}
	c.Metadata.Name = "csr-" + n
	c.Spec.Request = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	c.Spec.SignerName = "kubernetes.io/kubelet-serving"
	c.Spec.Username = "system:node:" + n
	c.Spec.Groups = []string{"system:nodes", "system:authenticated"}
	c.Spec.Usages = []string{"digital signature", "server auth"}
	return c
}

// testPolicy is the policy of server s1 of a cluster with VIP
// 192.168.77.100, tls-san k8s.example.com and 192.168.77.200, and the
// default CIDRs.
func testPolicy() servingPolicy {
	s := &server{o: Options{Config: &config.Config{}, Hostname: "s1"}, k: &config.Kubernetes{VIP: "192.168.77.100",
		TLSSAN: []string{"k8s.example.com", "192.168.77.200"}, ServiceCIDR: "10.43.0.0/16", ClusterCIDR: "10.42.0.0/16", ClusterDomain: "cluster.local"}}
	return s.servingPolicy()
}

// testView: servers s1 (.11) and s2 (.12, labelled), agents a1 (.21) and
// a2 (.22); the apiservers at .11 and .12.
func testView() *clusterView {
	addr := netip.MustParseAddr
	return &clusterView{
		nodes: map[string]nodeView{
			"s1": {addrs: []netip.Addr{addr("192.168.77.11")}, server: true},
			"s2": {addrs: []netip.Addr{addr("192.168.77.12")}, server: true},
			// a1 reports more than it owns: what a node may write itself.
			"a1": {addrs: []netip.Addr{addr("192.168.77.21"), addr("192.168.77.100"), addr("192.168.77.200"), addr("10.43.0.1"),
				addr("10.42.3.7"), addr("192.168.77.12"), addr("192.168.77.22"), addr("127.0.0.1"), addr("192.168.77.31")}},
			"a2": {addrs: []netip.Addr{addr("192.168.77.22")}},
			// kubernetes.default.svc and k8s.example.com: names a node gave itself.
			"kubernetes.default.svc": {addrs: []netip.Addr{addr("192.168.77.23")}},
			"k8s.example.com":        {addrs: []netip.Addr{addr("192.168.77.24")}},
			"web.cluster.local":      {addrs: []netip.Addr{addr("192.168.77.25")}},
		},
		apiservers: []netip.Addr{addr("192.168.77.11"), addr("192.168.77.12"), addr("192.168.77.31")},
	}
}

// TestServingPolicy: a node gets a serving certificate for its own name
// and addresses, and for nothing that is not only its own: each refusal
// says what it refused.
func TestServingPolicy(t *testing.T) {
	p, v := testPolicy(), testView()
	for _, ok := range []*csr{
		servingCSR(t, "a1", []string{"a1"}, "192.168.77.21"),
		servingCSR(t, "s2", []string{"s2"}, "192.168.77.12"), // a server, its own apiserver address
		servingCSR(t, "s1", []string{"s1"}, "192.168.77.11"),
	} {
		if err := p.check(ok, v); err != nil {
			t.Errorf("%s: %v", ok.Spec.Username, err)
		}
	}
	notNode := servingCSR(t, "a1", []string{"a1"})
	notNode.Spec.Groups = []string{"system:authenticated"}
	clientUsage := servingCSR(t, "a1", []string{"a1"})
	clientUsage.Spec.Usages = append(clientUsage.Spec.Usages, "client auth")
	for _, tt := range []struct {
		name string
		c    *csr
		want string
	}{
		{"the VIP", servingCSR(t, "a1", []string{"a1"}, "192.168.77.100"), "node a1 names 192.168.77.100, the VIP"},
		{"a tls-san address", servingCSR(t, "a1", nil, "192.168.77.200"), "names 192.168.77.200, an apiserver's address (tls-san)"},
		{"the kubernetes Service", servingCSR(t, "a1", nil, "10.43.0.1"), "names 10.43.0.1, inside 10.43.0.0/16 (Services or pods)"},
		{"a pod address", servingCSR(t, "a1", nil, "10.42.3.7"), "names 10.42.3.7, inside 10.42.0.0/16 (Services or pods)"},
		{"a server's address", servingCSR(t, "a1", nil, "192.168.77.12"), "names 192.168.77.12, an apiserver's address, and is not a server"},
		{"another agent's address", servingCSR(t, "a1", nil, "192.168.77.22"), "names 192.168.77.22, an address of node a2"},
		{"an apiserver no Node reports", servingCSR(t, "a1", nil, "192.168.77.31"), "names 192.168.77.31, an apiserver's address, and is not a server"},
		{"loopback", servingCSR(t, "a1", nil, "127.0.0.1"), "names 127.0.0.1, not a node's own address"},
		{"an address it does not report", servingCSR(t, "a1", nil, "192.168.77.99"), "names 192.168.77.99, not one of its addresses"},
		{"another name", servingCSR(t, "a1", []string{"kubernetes.default"}), `names "kubernetes.default", not its own name`},
		{"named kubernetes.default.svc", servingCSR(t, "kubernetes.default.svc", []string{"kubernetes.default.svc"}, "192.168.77.23"), `is named "kubernetes.default.svc", a name of the apiserver`},
		{"named as a tls-san", servingCSR(t, "k8s.example.com", []string{"k8s.example.com"}, "192.168.77.24"), `is named "k8s.example.com", a name of the apiserver`},
		{"named in the cluster domain", servingCSR(t, "web.cluster.local", []string{"web.cluster.local"}, "192.168.77.25"), `is named "web.cluster.local", a name in the cluster's own domain`},
		{"not from a node", notNode, "not a node"},
		{"client usage", clientUsage, `usage "client auth"`},
		{"unknown node", servingCSR(t, "a9", []string{"a9"}, "192.168.77.29"), "node a9 has no Node object"},
	} {
		err := p.check(tt.c, v)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}

// adminCSR is a request as `cairn kubeconfig` makes it, from the server
// token's bootstrap token.
func adminCSR(t *testing.T, name string, edit func(*x509.CertificateRequest)) *csr {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: name, Organization: []string{join.AdminsGroup}}}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	c := &csr{}
	c.Metadata.Name = name
	c.Spec.Request = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	c.Spec.SignerName = join.AdminSigner
	c.Spec.Username = "system:bootstrap:abcdef"
	c.Spec.Groups = []string{"system:bootstrappers", join.ServersGroup, "system:authenticated"}
	c.Spec.Usages = []string{"digital signature", "client auth"}
	day := int64(86400)
	c.Spec.ExpirationSeconds = &day
	return c
}

// TestCheckAdminCSR: only the server token's bootstrap token gets an
// admin certificate, and only the fixed subject, for client use, for a
// bounded time.
func TestCheckAdminCSR(t *testing.T) {
	if err := checkAdminCSR(adminCSR(t, "cairn-admin-0a1b2c", nil)); err != nil {
		t.Fatalf("cairn kubeconfig's request: %v", err)
	}
	agent := adminCSR(t, "cairn-admin-0a1b2c", nil)
	agent.Spec.Groups = []string{"system:bootstrappers", "system:authenticated"}
	node := adminCSR(t, "cairn-admin-0a1b2c", nil)
	node.Spec.Username, node.Spec.Groups = "system:node:a1", []string{"system:nodes", "system:authenticated"}
	masters := adminCSR(t, "cairn-admin-0a1b2c", func(r *x509.CertificateRequest) { r.Subject.Organization = []string{"system:masters"} })
	extraOU := adminCSR(t, "cairn-admin-0a1b2c", func(r *x509.CertificateRequest) { r.Subject.OrganizationalUnit = []string{"x"} })
	otherCN := adminCSR(t, "cairn-admin-0a1b2c", func(r *x509.CertificateRequest) { r.Subject.CommonName = "cairn-admin-other" })
	withSAN := adminCSR(t, "cairn-admin-0a1b2c", func(r *x509.CertificateRequest) { r.DNSNames = []string{"kubernetes"} })
	serverUse := adminCSR(t, "cairn-admin-0a1b2c", nil)
	serverUse.Spec.Usages = []string{"digital signature", "client auth", "server auth"}
	forever := adminCSR(t, "cairn-admin-0a1b2c", nil)
	forever.Spec.ExpirationSeconds = nil
	year := int64(365 * 86400)
	long := adminCSR(t, "cairn-admin-0a1b2c", nil)
	long.Spec.ExpirationSeconds = &year
	for _, tt := range []struct {
		name string
		c    *csr
		want string
	}{
		{"the agent token", agent, "requested by system:bootstrap:abcdef, not with the server token"},
		{"a node", node, "requested by system:node:a1, not with the server token"},
		{"system:masters", masters, "is not CN=cairn-admin-0a1b2c,O=cairn:cluster-admins"},
		{"an extra attribute", extraOU, "is not CN="},
		{"another common name", otherCN, "is not CN="},
		{"a host name", withSAN, "names hosts"},
		{"server use", serverUse, `usage "server auth"`},
		{"no lifetime", forever, "asks for no lifetime, or one outside 10m0s to 720h0m0s"},
		{"a year", long, "outside 10m0s to 720h0m0s"},
	} {
		err := checkAdminCSR(tt.c)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}

// fakeCSRAPI is an apiserver holding certificate requests, nodes and the
// kubernetes Service's endpoints, recording the approvals it is sent. It
// lists and watches the requests as an apiserver does: every change has a
// version, and a watch reports the changes after the version it is given.
type fakeCSRAPI struct {
	mu        sync.Mutex
	csrs      []*csr
	decisions map[string]string // name -> Approved or Denied
	nodeLists int
	lists     int // lists of every request
	selected  int // lists of one signer's
	watches   int
	rv        int
	versions  map[string]int // a request's version: 0 until it changes
	events    []fakeCSREvent
	changed   chan struct{} // closed and replaced on every change
	// failLists fails as many lists of every request, with failWith.
	failLists int
	failWith  string
	// beforeDecide runs, under mu, when a decision is sent, before it is
	// checked against the request's version.
	beforeDecide func(name string)
}

type fakeCSREvent struct {
	rv  int
	typ string
	obj json.RawMessage
}

// objectLocked is c as the apiserver serves it: with its version and the
// decision taken.
func (f *fakeCSRAPI) objectLocked(c *csr) json.RawMessage {
	data, _ := json.Marshal(c)
	var obj map[string]any
	json.Unmarshal(data, &obj)
	obj["metadata"].(map[string]any)["resourceVersion"] = fmt.Sprint(f.versions[c.Metadata.Name])
	if d := f.decisions[c.Metadata.Name]; d != "" {
		obj["status"] = map[string]any{"conditions": []any{map[string]any{"type": d, "status": "True"}}}
	}
	data, _ = json.Marshal(obj)
	return data
}

// changeLocked records a change to c for the watches.
func (f *fakeCSRAPI) changeLocked(typ string, c *csr) {
	f.rv++
	if f.versions == nil {
		f.versions = map[string]int{}
	}
	f.versions[c.Metadata.Name] = f.rv
	f.events = append(f.events, fakeCSREvent{f.rv, typ, f.objectLocked(c)})
	if f.changed != nil {
		close(f.changed)
	}
	f.changed = make(chan struct{})
}

// add creates a request.
func (f *fakeCSRAPI) add(c *csr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.csrs = append(f.csrs, c)
	f.changeLocked("ADDED", c)
}

func (f *fakeCSRAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const base = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
	if r.URL.Path == base && r.URL.Query().Get("watch") != "" {
		f.watch(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.URL.Path == base && r.URL.Query().Get("fieldSelector") == "" && f.failLists > 0:
		f.lists++
		f.failLists--
		w.WriteHeader(http.StatusInternalServerError)
		json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "code": 500, "message": f.failWith})
	case r.URL.Path == base && r.URL.Query().Get("fieldSelector") == "":
		f.lists++
		var items []json.RawMessage
		for _, c := range f.csrs {
			items = append(items, f.objectLocked(c))
		}
		json.NewEncoder(w).Encode(map[string]any{"metadata": map[string]any{"resourceVersion": fmt.Sprint(f.rv)}, "items": items})
	case r.URL.Path == base:
		f.selected++
		signer := strings.TrimPrefix(r.URL.Query().Get("fieldSelector"), "spec.signerName=")
		var items []json.RawMessage
		for _, c := range f.csrs {
			if c.Spec.SignerName == signer && f.decisions[c.Metadata.Name] == "" {
				items = append(items, f.objectLocked(c))
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"items": items})
	case strings.HasPrefix(r.URL.Path, base+"/") && strings.HasSuffix(r.URL.Path, "/approval") && r.Method == http.MethodPut:
		name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, base+"/"), "/approval")
		var obj struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
			Status struct {
				Conditions []struct{ Type string } `json:"conditions"`
			} `json:"status"`
		}
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &obj)
		if f.beforeDecide != nil {
			f.beforeDecide(name)
		}
		if obj.Metadata.ResourceVersion != fmt.Sprint(f.versions[name]) {
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "code": 409, "reason": "Conflict",
				"message": "the object has been modified; please apply your changes to the latest version and try again"})
			return
		}
		f.decisions[name] = obj.Status.Conditions[len(obj.Status.Conditions)-1].Type
		for _, c := range f.csrs {
			if c.Metadata.Name == name {
				f.changeLocked("MODIFIED", c)
			}
		}
		w.Write([]byte("{}"))
	case r.URL.Path == "/api/v1/nodes":
		f.nodeLists++
		w.Write([]byte(`{"items":[{"metadata":{"name":"s1","labels":{"node-role.kubernetes.io/control-plane":"true"}},"status":{"addresses":[{"type":"InternalIP","address":"192.168.77.11"}]}},
			{"metadata":{"name":"s9"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.77.19"}]}},
			{"metadata":{"name":"a1"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.77.21"},{"type":"InternalIP","address":"192.168.77.100"},{"type":"Hostname","address":"a1"}]}}]}`))
	case r.URL.Path == "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices":
		w.Write([]byte(`{"items":[{"endpoints":[{"addresses":["192.168.77.11"]},{"addresses":["192.168.77.19"]}]}]}`))
	default:
		http.NotFound(w, r)
	}
}

// watch streams the changes after the version asked for until the client
// goes.
func (f *fakeCSRAPI) watch(w http.ResponseWriter, r *http.Request) {
	from, _ := strconv.Atoi(r.URL.Query().Get("resourceVersion"))
	f.mu.Lock()
	f.watches++
	f.mu.Unlock()
	for {
		f.mu.Lock()
		var out []fakeCSREvent
		for _, e := range f.events {
			if e.rv > from {
				out = append(out, e)
			}
		}
		if f.changed == nil {
			f.changed = make(chan struct{})
		}
		changed := f.changed
		f.mu.Unlock()
		for _, e := range out {
			json.NewEncoder(w).Encode(kube.WatchEvent{Type: e.typ, Object: e.obj})
			from = e.rv
		}
		w.(http.Flusher).Flush()
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		}
	}
}

// TestApproveRequests: over a few passes, a server approves the node's own
// serving request and cairn kubeconfig's, denies an agent's admin request,
// leaves the request for the VIP pending, leaves someone else's client
// certificate alone, and says one line per request it did not approve,
// not one per pass; a request naming an apiserver's address from a node
// not labelled a server (a server before its label) is left pending
// without a word for serverGrace.
func TestApproveRequests(t *testing.T) {
	defer func(a, r time.Duration) { approveEvery, recheckEvery = a, r }(approveEvery, recheckEvery)
	approveEvery, recheckEvery = time.Millisecond, 0 // every pass looks at the VIP request again
	agentAdmin := adminCSR(t, "cairn-admin-agent1", nil)
	agentAdmin.Spec.Groups = []string{"system:bootstrappers", "system:authenticated"}
	someones := adminCSR(t, "alice", func(r *x509.CertificateRequest) { r.Subject.Organization = []string{"developers"} })
	someones.Spec.Username, someones.Spec.Groups = "admin", []string{"system:masters"}
	vip := servingCSR(t, "a1", []string{"a1"}, "192.168.77.100")
	vip.Metadata.Name = "csr-vip"
	early := servingCSR(t, "s9", []string{"s9"}, "192.168.77.19")
	early.Metadata.CreationTimestamp = time.Now()
	late := servingCSR(t, "s9", []string{"s9"}, "192.168.77.19")
	late.Metadata.Name, late.Metadata.CreationTimestamp = "csr-s9-late", time.Now().Add(-serverGrace-time.Minute)
	f := &fakeCSRAPI{decisions: map[string]string{}, csrs: []*csr{
		servingCSR(t, "a1", []string{"a1"}, "192.168.77.21"), vip,
		adminCSR(t, "cairn-admin-0a1b2c", nil), agentAdmin, someones, early, late,
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	var lines []string
	var mu sync.Mutex
	s := &server{o: Options{Config: &config.Config{}, Hostname: "s1", Printf: func(format string, a ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, a...))
		mu.Unlock()
	}}, k: &config.Kubernetes{VIP: "192.168.77.100", ServiceCIDR: "10.43.0.0/16", ClusterCIDR: "10.42.0.0/16", ClusterDomain: "cluster.local"}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.approveRequests(ctx, kube.New(srv.URL, kube.Options{})); close(done) }()
	// Five passes that looked at the VIP request.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		f.mu.Lock()
		n := f.nodeLists
		f.mu.Unlock()
		if n >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the approver listed the nodes %d times in a minute", n)
		}
	}
	cancel()
	<-done

	f.mu.Lock()
	defer f.mu.Unlock()
	want := map[string]string{"csr-a1": "Approved", "cairn-admin-0a1b2c": "Approved", "cairn-admin-agent1": "Denied", "csr-vip": "", "alice": "",
		"csr-s9": "", "csr-s9-late": ""}
	for name, w := range want {
		if f.decisions[name] != w {
			t.Errorf("%s: decided %q, want %q", name, f.decisions[name], w)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	got := strings.Join(lines, "\n")
	if len(lines) != 3 ||
		!strings.Contains(got, "node: denying admin certificate request cairn-admin-agent1: requested by system:bootstrap:abcdef, not with the server token") ||
		!strings.Contains(got, "node: not approving serving certificate request csr-vip: node a1 names 192.168.77.100, the VIP") ||
		!strings.Contains(got, "node: not approving serving certificate request csr-s9-late: node s9 names 192.168.77.19, an apiserver's address, and is not a server") {
		t.Errorf("console after %d passes:\n%s\nwant one line each for the agent's admin request, the VIP and s9's late request", f.nodeLists, got)
	}
}

// TestApproveRequestsWatch: requests made after the approver listed them
// reach it by the watch and are decided, without another list; at rest
// (nothing undecided) it asks nothing at all.
func TestApproveRequestsWatch(t *testing.T) {
	f := &fakeCSRAPI{decisions: map[string]string{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := &server{o: Options{Config: &config.Config{}, Hostname: "s1", Printf: t.Logf},
		k: &config.Kubernetes{VIP: "192.168.77.100", ServiceCIDR: "10.43.0.0/16", ClusterCIDR: "10.42.0.0/16", ClusterDomain: "cluster.local"}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.approveRequests(ctx, kube.New(srv.URL, kube.Options{})); close(done) }()
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
			f.mu.Lock()
			ok := cond()
			f.mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s in a minute", what)
			}
		}
	}
	wait("watch", func() bool { return f.watches == 1 })
	f.add(adminCSR(t, "cairn-admin-0a1b2c", nil))
	f.add(servingCSR(t, "a1", []string{"a1"}, "192.168.77.21"))
	wait("decision", func() bool { return len(f.decisions) == 2 })
	cancel()
	<-done

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.decisions["cairn-admin-0a1b2c"] != "Approved" || f.decisions["csr-a1"] != "Approved" {
		t.Errorf("decisions %v, want both approved", f.decisions)
	}
	if f.lists != 1 || f.selected != 0 || f.nodeLists != 1 {
		t.Errorf("the requests were listed %d times, one signer's %d times, the nodes %d times; want once, never, once", f.lists, f.selected, f.nodeLists)
	}
}

// TestApproveAfterConflict: a request that changed while a pass decided
// it (a label added: the watch brought the new version before the
// decision's answer, a conflict) is decided again from the new version,
// though no other change to it comes; the conflict is no error on the
// console.
func TestApproveAfterConflict(t *testing.T) {
	f := &fakeCSRAPI{decisions: map[string]string{}}
	f.add(adminCSR(t, "cairn-admin-0a1b2c", nil))
	srv := httptest.NewServer(f)
	defer srv.Close()
	var lines []string
	s := &server{o: Options{Config: &config.Config{}, Hostname: "s1", Printf: func(format string, a ...any) {
		lines = append(lines, fmt.Sprintf(format, a...))
	}}, k: &config.Kubernetes{VIP: "192.168.77.100", ServiceCIDR: "10.43.0.0/16", ClusterCIDR: "10.42.0.0/16", ClusterDomain: "cluster.local"}}
	api := kube.New(srv.URL, kube.Options{})
	q := newCSRQueue()
	f.mu.Lock()
	q.replace([]json.RawMessage{f.objectLocked(f.csrs[0])})
	f.beforeDecide = func(name string) {
		f.beforeDecide = nil
		c := f.csrs[0]
		c.Metadata.Annotations = map[string]string{"example.com/seen": "yes"}
		f.changeLocked("MODIFIED", c)
		// The watch hands the change over before the answer comes.
		q.apply(kube.WatchEvent{Type: "MODIFIED", Object: f.events[len(f.events)-1].obj})
	}
	f.mu.Unlock()
	a := &approver{s: s, api: api, policy: s.servingPolicy(), said: map[string]bool{}, looked: map[string]time.Time{}}
	ctx := context.Background()
	again := a.pass(ctx, q)
	f.mu.Lock()
	decided := f.decisions["cairn-admin-0a1b2c"]
	f.mu.Unlock()
	pending := q.pending("")
	if decided != "" || !again || len(pending) != 1 || pending[0].c.Metadata.Annotations["example.com/seen"] != "yes" {
		t.Fatalf("after a conflict: decided %q, again %v, %d undecided; want undecided, looked at again, the new version kept", decided, again, len(pending))
	}
	if again := a.pass(ctx, q); again || len(q.pending("")) != 0 {
		t.Errorf("the next pass: again %v, %d undecided; want none", again, len(q.pending("")))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.decisions["cairn-admin-0a1b2c"] != "Approved" {
		t.Errorf("decided %q, want Approved", f.decisions["cairn-admin-0a1b2c"])
	}
	if len(lines) != 0 {
		t.Errorf("console: %q, want nothing", lines)
	}
}

// TestApproveRequestsListFails: while the requests cannot be listed the
// console says why, once however often it fails so, and says when they
// are listed again; a request made meanwhile is then decided.
func TestApproveRequestsListFails(t *testing.T) {
	f := &fakeCSRAPI{decisions: map[string]string{}, failLists: 2, failWith: "etcdserver: request timed out"}
	f.add(adminCSR(t, "cairn-admin-0a1b2c", nil))
	srv := httptest.NewServer(f)
	defer srv.Close()
	var lines []string
	var mu sync.Mutex
	s := &server{o: Options{Config: &config.Config{}, Hostname: "s1", Printf: func(format string, a ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, a...))
		mu.Unlock()
	}}, k: &config.Kubernetes{VIP: "192.168.77.100", ServiceCIDR: "10.43.0.0/16", ClusterCIDR: "10.42.0.0/16", ClusterDomain: "cluster.local"}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.approveRequests(ctx, kube.New(srv.URL, kube.Options{})); close(done) }()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		f.mu.Lock()
		ok := f.decisions["cairn-admin-0a1b2c"] != ""
		f.mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the request was not decided in a minute")
		}
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"node: watching certificate requests: GET /apis/certificates.k8s.io/v1/certificatesigningrequests: 500 Internal Server Error: etcdserver: request timed out; a request made meanwhile waits to be decided (trying again)",
		"node: watching certificate requests again: they are listed",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("console after two failed lists:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// The console hears each distinct reason once, at most maxWatchReason
// bytes of its first line, and of the recovery once.
func TestWatchSay(t *testing.T) {
	var lines []string
	w := &watchSay{printf: func(format string, a ...any) { lines = append(lines, fmt.Sprintf(format, a...)) }}
	long := errors.New(strings.Repeat("x", 10000) + "\nmore")
	for _, err := range []error{errors.New("a"), errors.New("a"), errors.New("b"), long, long, errors.New("")} {
		w.failed(err)
	}
	w.listed()
	w.listed()
	w.failed(errors.New("b"))
	want := []string{"a", "b", strings.Repeat("x", maxWatchReason) + "…", "an error without a message", "", "b"}
	if len(lines) != len(want) {
		t.Fatalf("console:\n%s\nwant %d lines", strings.Join(lines, "\n"), len(want))
	}
	for i, reason := range want {
		l := "node: watching certificate requests: " + reason + "; a request made meanwhile waits to be decided (trying again)"
		if reason == "" {
			l = "node: watching certificate requests again: they are listed"
		}
		if lines[i] != l {
			t.Errorf("line %d: %q, want %q", i+1, lines[i], l)
		}
	}
}
