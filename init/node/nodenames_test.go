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
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/nodeclaim"
	"github.com/cairn-os/cairn/init/node/pki"
)

// nodeSecret is a node secret made in a directory of its own.
func nodeSecret(t *testing.T) nodeclaim.Secret {
	t.Helper()
	s, _, err := nodeclaim.Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// clientCSR is a kubelet client request for node n as the agent's init
// makes it with the agent token's bootstrap token, claiming n with secret
// (no proof when secret is nil).
func clientCSR(t *testing.T, n string, secret *nodeclaim.Secret) *csr {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:" + n, Organization: []string{"system:nodes"}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := x509.ParseCertificateRequest(der)
	c := &csr{}
	c.Metadata.Name = "node-csr-" + n
	c.Spec.Request = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	c.Spec.SignerName = nodeclaim.Signer
	c.Spec.Username = "system:bootstrap:a1b2c3"
	c.Spec.Groups = []string{"system:bootstrappers", "system:authenticated"}
	c.Spec.Usages = []string{"digital signature", "client auth"}
	if secret != nil {
		c.Metadata.Annotations = map[string]string{nodeclaim.KeyAnnotation: secret.Public(), nodeclaim.ProofAnnotation: secret.Prove(n, req.RawSubjectPublicKeyInfo)}
	}
	return c
}

// TestNodeNameClaims: the agent token gets a kubelet certificate for a new
// name, and for a name again with the secret that claimed it (a node that
// rebooted with its STATE); never with another secret, never a server's
// name, never without a proof; a node's renewal of its own certificate is
// left to kube-controller-manager. Each refusal says why and how to free
// the name.
func TestNodeNameClaims(t *testing.T) {
	mine, other := nodeSecret(t), nodeSecret(t)
	renewal := clientCSR(t, "a1", nil)
	renewal.Spec.Username, renewal.Spec.Groups = "system:node:a1", []string{"system:nodes", "system:authenticated"}
	otherNode := clientCSR(t, "a2", nil)
	otherNode.Spec.Username, otherNode.Spec.Groups = "system:node:a1", []string{"system:nodes", "system:authenticated"}
	copied := clientCSR(t, "a1", nil)
	copied.Metadata.Annotations = clientCSR(t, "a1", &mine).Metadata.Annotations // a proof read from another request
	renamed := clientCSR(t, "a1", &mine)
	renamed.Metadata.Annotations = clientCSR(t, "a9", &mine).Metadata.Annotations
	serverUse := clientCSR(t, "a1", &mine)
	serverUse.Spec.Usages = []string{"digital signature", "client auth", "server auth"}
	byAdmin := clientCSR(t, "a1", nil)
	byAdmin.Spec.Username = "alice"
	mineRec := &nameRecord{key: mine.Public()}
	for _, tt := range []struct {
		name   string
		c      *csr
		rec    *nameRecord
		server bool
		ours   bool
		first  bool
		want   string // "" approved
	}{
		{"a new name", clientCSR(t, "a1", &mine), nil, false, true, true, ""},
		{"the same name with the same secret (a rebooted node that kept its STATE)", clientCSR(t, "a1", &mine), mineRec, false, true, false, ""},
		{"the same name with another secret", clientCSR(t, "a1", &other), mineRec, false, true, false,
			"the name a1 belongs to another node secret, the one that joined with it first (a machine that lost its STATE, or another machine given the same name): delete the Node a1 (or the Secret kube-system/a1.node-password.cairn) to give the name to this machine"},
		{"a server's name (its Node's label)", clientCSR(t, "s1", &mine), nil, true, true, false, "s1 is a server's name, which the agent token never gets"},
		{"a server's name (its record)", clientCSR(t, "s2", &mine), &nameRecord{server: true}, false, true, false, "s2 is a server's name"},
		{"a node that joined before names were kept", clientCSR(t, "a1", &mine), &nameRecord{reserved: true}, false, true, false,
			"node a1 joined before cairn kept node secrets and keeps its name: delete the Node a1"},
		{"no proof (the kubelet on its own)", clientCSR(t, "a1", nil), nil, false, true, false, "the request for node a1 carries no proof of a node secret"},
		{"a proof of another request", copied, nil, false, true, false, "its proof of the node secret does not verify for this name and key"},
		{"a proof for another name", renamed, nil, false, true, false, "does not verify"},
		{"server use", serverUse, nil, false, true, false, "asks for usages"},
		{"a node renewing its own", renewal, nil, false, false, false, ""},
		{"a node asking for another name", otherNode, nil, false, true, false, `node a1 asks for a certificate of "system:node:a2"`},
		{"someone else's request", byAdmin, nil, false, false, false, ""},
	} {
		claim, ours, err := checkClientCSR(tt.c)
		first := false
		if err == nil && ours {
			first, err = claimVerdict(claim, tt.rec, tt.server)
		}
		switch {
		case ours != tt.ours:
			t.Errorf("%s: ours %v, want %v", tt.name, ours, tt.ours)
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v, want it approved", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.want)
		case first != tt.first:
			t.Errorf("%s: first claim %v, want %v", tt.name, first, tt.first)
		}
	}
}

// fakeNamesAPI is fakeCSRAPI with kube-system's Secrets and ConfigMaps.
type fakeNamesAPI struct {
	*fakeCSRAPI
	objs map[string]map[string]any // path -> object
	rv   int
}

func newFakeNamesAPI(csrs ...*csr) *fakeNamesAPI {
	return &fakeNamesAPI{fakeCSRAPI: &fakeCSRAPI{decisions: map[string]string{}, csrs: csrs}, objs: map[string]map[string]any{}}
}

func (f *fakeNamesAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const ns = "/api/v1/namespaces/kube-system/"
	if !strings.HasPrefix(r.URL.Path, ns+"secrets") && !strings.HasPrefix(r.URL.Path, ns+"configmaps") {
		f.fakeCSRAPI.ServeHTTP(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	status := func(code int, msg string) {
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "message": msg, "code": code})
	}
	var body map[string]any
	if b, _ := io.ReadAll(r.Body); len(b) > 0 {
		json.Unmarshal(b, &body)
	}
	rvOf := func(o map[string]any) string { return o["metadata"].(map[string]any)["resourceVersion"].(string) }
	store := func(path string, o map[string]any) {
		f.rv++
		o["metadata"].(map[string]any)["resourceVersion"] = strconv.Itoa(f.rv)
		f.objs[path] = o
	}
	path := r.URL.Path
	switch r.Method {
	case http.MethodGet:
		if path == ns+"secrets" {
			var items []map[string]any
			for p, o := range f.objs {
				if strings.HasPrefix(p, ns+"secrets/") {
					items = append(items, o)
				}
			}
			json.NewEncoder(w).Encode(map[string]any{"items": items})
			return
		}
		if o, ok := f.objs[path]; ok {
			json.NewEncoder(w).Encode(o)
			return
		}
		status(http.StatusNotFound, "not found")
	case http.MethodPost:
		p := path + "/" + body["metadata"].(map[string]any)["name"].(string)
		if _, ok := f.objs[p]; ok {
			status(http.StatusConflict, "already exists")
			return
		}
		store(p, body)
		w.Write([]byte("{}"))
	case http.MethodPut:
		o, ok := f.objs[path]
		if !ok || rvOf(o) != rvOf(body) {
			status(http.StatusConflict, "the object has been modified")
			return
		}
		store(path, body)
		w.Write([]byte("{}"))
	case http.MethodDelete:
		o, ok := f.objs[path]
		if !ok {
			status(http.StatusNotFound, "not found")
			return
		}
		if pre, _ := body["preconditions"].(map[string]any); pre != nil && pre["resourceVersion"] != rvOf(o) {
			status(http.StatusConflict, "precondition failed")
			return
		}
		delete(f.objs, path)
		w.Write([]byte("{}"))
	}
}

// record reads the record of node from the fake, nil when there is none.
func (f *fakeNamesAPI) record(node string) *nameRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.objs["/api/v1/namespaces/kube-system/secrets/"+node+nodeclaim.RecordSuffix]
	if !ok {
		return nil
	}
	data, _ := json.Marshal(o)
	var r recordJSON
	json.Unmarshal(data, &r)
	return r.record()
}

// seed stores a record as the servers would have written it, claimed at.
func (f *fakeNamesAPI) seed(node string, rec nameRecord, at time.Time) {
	o := nameRecordObject(node, rec)
	data, _ := json.Marshal(o)
	var m map[string]any
	json.Unmarshal(data, &m)
	m["metadata"].(map[string]any)["annotations"].(map[string]any)[claimedAnnotation] = at.UTC().Format(time.RFC3339)
	f.rv++
	m["metadata"].(map[string]any)["resourceVersion"] = strconv.Itoa(f.rv)
	f.objs["/api/v1/namespaces/kube-system/secrets/"+node+nodeclaim.RecordSuffix] = m
}

// namesServer is server s1 of the fake cluster, its console in lines.
func namesServer(lines *[]string, mu *sync.Mutex) *server {
	return &server{o: Options{Config: &config.Config{}, Hostname: "s1", Printf: func(format string, a ...any) {
		mu.Lock()
		*lines = append(*lines, fmt.Sprintf(format, a...))
		mu.Unlock()
	}}, k: &config.Kubernetes{ServiceCIDR: "10.43.0.0/16", ClusterCIDR: "10.42.0.0/16", ClusterDomain: "cluster.local"}}
}

// TestDecideClientRequests: over several passes a server approves a new
// name and records its claim (the public key only), approves the same
// secret again, denies another secret, a server's name and a request
// without a proof with one console line each, and leaves a renewal to
// kube-controller-manager.
func TestDecideClientRequests(t *testing.T) {
	mine, other := nodeSecret(t), nodeSecret(t)
	newName := clientCSR(t, "a2", &mine)
	again := clientCSR(t, "a2", &mine)
	again.Metadata.Name = "node-csr-a2-again"
	stolen := clientCSR(t, "a1", &other)
	server := clientCSR(t, "s1", &other)
	unlabelled := clientCSR(t, "s9", &other) // a server's Node before its label: its record says so
	bare := clientCSR(t, "a3", nil)
	renewal := clientCSR(t, "a1", nil)
	renewal.Metadata.Name = "node-csr-renewal"
	renewal.Spec.Username, renewal.Spec.Groups = "system:node:a1", []string{"system:nodes", "system:authenticated"}
	f := newFakeNamesAPI(newName, stolen, server, unlabelled, bare, renewal)
	f.seed("a1", nameRecord{key: mine.Public()}, time.Now())
	f.seed("s9", nameRecord{server: true}, time.Now())
	srv := httptest.NewServer(f)
	defer srv.Close()
	api := kube.New(srv.URL, kube.Options{})
	var lines []string
	var mu sync.Mutex
	s := namesServer(&lines, &mu)
	said := map[string]bool{}
	for range 3 {
		var view *clusterView
		s.decideClientRequests(context.Background(), api, said, &view)
	}
	f.mu.Lock()
	f.csrs = append(f.csrs, again) // the node rebooted with its STATE and asks again
	f.mu.Unlock()
	var view *clusterView
	s.decideClientRequests(context.Background(), api, said, &view)

	want := map[string]string{"node-csr-a2": "Approved", "node-csr-a2-again": "Approved", "node-csr-a1": "Denied", "node-csr-s1": "Denied",
		"node-csr-s9": "Denied", "node-csr-a3": "Denied", "node-csr-renewal": ""}
	f.mu.Lock()
	for name, w := range want {
		if f.decisions[name] != w {
			t.Errorf("%s: decided %q, want %q", name, f.decisions[name], w)
		}
	}
	f.mu.Unlock()
	if rec := f.record("a2"); rec == nil || rec.key != mine.Public() || rec.server || rec.reserved {
		t.Errorf("the record of a2: %+v, want the claiming secret's public key", rec)
	}
	if rec := f.record("a1"); rec == nil || rec.key != mine.Public() {
		t.Errorf("the record of a1: %+v, want it unchanged", rec)
	}
	mu.Lock()
	defer mu.Unlock()
	got := strings.Join(lines, "\n")
	for _, l := range []string{
		"node: denying kubelet client certificate request node-csr-a1: the name a1 belongs to another node secret",
		"node: denying kubelet client certificate request node-csr-s1: s1 is a server's name, which the agent token never gets",
		"node: denying kubelet client certificate request node-csr-s9: s9 is a server's name",
		"node: denying kubelet client certificate request node-csr-a3: the request for node a3 carries no proof of a node secret",
	} {
		if strings.Count(got, l) != 1 {
			t.Errorf("console says %d times %q; want once:\n%s", strings.Count(got, l), l, got)
		}
	}
	if len(lines) != 4 {
		t.Errorf("console: %d lines, want one per refusal:\n%s", len(lines), got)
	}
}

// TestTendNodeNames: a server makes its own name a server's (taking it
// from a node secret, with a line), reserves once the names of the Nodes
// that were there before claims were kept, and frees the name of a Node
// that is gone, once its record is nameGrace old.
func TestTendNodeNames(t *testing.T) {
	f := newFakeNamesAPI() // Nodes s1 (a server), s9 and a1
	f.seed("s1", nameRecord{key: nodeSecret(t).Public()}, time.Now())
	f.seed("a7", nameRecord{key: nodeSecret(t).Public()}, time.Now().Add(-time.Hour)) // its Node is gone
	f.seed("a8", nameRecord{key: nodeSecret(t).Public()}, time.Now())                 // its Node is not there yet
	srv := httptest.NewServer(f)
	defer srv.Close()
	api := kube.New(srv.URL, kube.Options{})
	var lines []string
	var mu sync.Mutex
	s := namesServer(&lines, &mu)
	for range 2 {
		if err := s.tendNodeNames(context.Background(), api); err != nil {
			t.Fatal(err)
		}
	}
	if rec := f.record("s1"); rec == nil || !rec.server || rec.key != "" {
		t.Errorf("the record of s1: %+v, want a server's", rec)
	}
	for _, n := range []string{"a1", "s9"} {
		if rec := f.record(n); rec == nil || !rec.reserved {
			t.Errorf("the record of %s: %+v, want it reserved", n, rec)
		}
	}
	if rec := f.record("a7"); rec != nil {
		t.Errorf("the record of a7, whose Node is gone: %+v, want it deleted", rec)
	}
	if rec := f.record("a8"); rec == nil {
		t.Errorf("the record of a8, claimed now: deleted, want it kept until its Node registers")
	}
	mu.Lock()
	defer mu.Unlock()
	got := strings.Join(lines, "\n")
	for _, l := range []string{
		"node: this server takes its name s1 from the node secret that claimed it through the agent token",
		"node: 2 nodes joined before cairn kept node secrets (a1, s9): their names stay theirs",
		"node: the name a7 is free again: its Node is gone (deleted Secret kube-system/a7.node-password.cairn)",
	} {
		if strings.Count(got, l) != 1 {
			t.Errorf("console says %d times %q; want once:\n%s", strings.Count(got, l), l, got)
		}
	}
	if len(lines) != 3 {
		t.Errorf("console: %d lines over two passes, want 3:\n%s", len(lines), got)
	}
}

// TestKubeletCertStore: a server's kubelet certificate, minted from the
// client CA, goes into the kubelet's store as the kubelet keeps it (a
// file of mode 0600 and an absolute link to it) and is found valid there
// for its node only, of its CA only.
func TestKubeletCertStore(t *testing.T) {
	c, err := pki.NewCluster(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	data, err := kubeletClientCert(c, "s1")(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "pki")
	for i := range 2 {
		if err := storeKubeletCert(dir, data, time.Now().Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	current := filepath.Join(dir, "kubelet-client-current.pem")
	target, err := os.Readlink(current)
	if err != nil || !filepath.IsAbs(target) || !strings.HasPrefix(filepath.Base(target), "kubelet-client-2") {
		t.Fatalf("kubelet-client-current.pem links to %q (%v); want an absolute link to kubelet-client-TIME.pem", target, err)
	}
	if st, err := os.Stat(target); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, mode %v; want 0600", target, err, st.Mode().Perm())
	}
	if until, ok := validKubeletCert(current, "s1", c[pki.ClientCA].Cert); !ok || time.Until(until) < 300*24*time.Hour {
		t.Errorf("the minted certificate: valid %v until %s; want about a year", ok, until)
	}
	if _, ok := validKubeletCert(current, "a1", c[pki.ClientCA].Cert); ok {
		t.Errorf("s1's certificate is valid for a1")
	}
	other, _ := pki.NewCluster(time.Now())
	if _, ok := validKubeletCert(current, "s1", other[pki.ClientCA].Cert); ok {
		t.Errorf("s1's certificate is valid under another cluster's client CA")
	}
}

// fakeClaimAPI takes kubelet client requests and denies the first
// denials of them, then signs with ca.
type fakeClaimAPI struct {
	mu      sync.Mutex
	ca      pki.Cluster
	denials int
	made    int
	bearer  string
	obj     map[string]any
}

func (f *fakeClaimAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	const base = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
	f.bearer = r.Header.Get("Authorization")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == base:
		f.made++
		json.NewDecoder(r.Body).Decode(&f.obj)
		json.NewEncoder(w).Encode(map[string]any{"metadata": map[string]any{"name": fmt.Sprintf("node-csr-%d", f.made)}})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, base+"/"):
		if f.made <= f.denials {
			json.NewEncoder(w).Encode(map[string]any{"status": map[string]any{"conditions": []map[string]string{
				{"type": "Denied", "reason": "CairnNodeNameDeny", "message": "the name a1 belongs to another node secret"}}}})
			return
		}
		var reqPEM []byte
		data, _ := json.Marshal(f.obj["spec"].(map[string]any)["request"])
		json.Unmarshal(data, &reqPEM)
		block, _ := pem.Decode(reqPEM)
		req, _ := x509.ParseCertificateRequest(block.Bytes)
		caCert, caKey, _ := f.ca[pki.ClientCA].Parse()
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(int64(f.made)), Subject: req.Subject,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, caCert, req.PublicKey, caKey)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"status": map[string]any{"certificate": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}})
	default:
		http.NotFound(w, r)
	}
}

// TestClaimKubeletCert: an agent's init makes its node secret once, asks
// with the agents' bootstrap token, says once that the servers refuse the
// name, asks again, and once approved stores the certificate and the
// kubelet's kubeconfig; at its next start, with the certificate valid, it
// asks nothing.
func TestClaimKubeletCert(t *testing.T) {
	defer func(d time.Duration) { claimDeniedRetry = d }(claimDeniedRetry)
	defer func(p time.Duration) { nodeclaim.PollEvery = p }(nodeclaim.PollEvery)
	claimDeniedRetry, nodeclaim.PollEvery = time.Millisecond, time.Millisecond
	c, err := pki.NewCluster(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeClaimAPI{ca: c, denials: 2}
	srv := httptest.NewTLSServer(f)
	defer srv.Close()
	servingCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	root := t.TempDir()
	var lines []string
	var mu sync.Mutex
	w := &worker{o: Options{Printf: func(format string, a ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, a...))
		mu.Unlock()
	}}, apiserver: srv.URL, servingCA: servingCA, clientCA: c[pki.ClientCA].Cert, secret: "the-agent-token-secret"}
	w.l.DataDir, w.l.KubeletDir, w.l.KubeconfigDir = filepath.Join(root, "cairn"), filepath.Join(root, "kubelet"), filepath.Join(root, "cairn/kubeconfig")
	w.node.Name = "A1"
	if err := w.ensureKubeletCert(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := validKubeletCert(w.kubeletCert(), "a1", c[pki.ClientCA].Cert); !ok {
		t.Errorf("the stored certificate is not a1's")
	}
	kc, err := os.ReadFile(w.l.Kubeconfig("kubelet"))
	if err != nil || !strings.Contains(string(kc), "client-certificate: "+w.kubeletCert()) {
		t.Errorf("the kubelet's kubeconfig: %v\n%s", err, kc)
	}
	if f.made != 3 || !strings.HasPrefix(f.bearer, "Bearer ") || strings.Contains(f.bearer, "the-agent-token-secret") {
		t.Errorf("asked %d times as %q; want 3 times with the derived bootstrap token", f.made, f.bearer)
	}
	ann, _ := f.obj["metadata"].(map[string]any)["annotations"].(map[string]any)
	if ann[nodeclaim.KeyAnnotation] == nil || ann[nodeclaim.ProofAnnotation] == nil {
		t.Errorf("the request carries no claim: %v", f.obj["metadata"])
	}
	if err := w.ensureKubeletCert(context.Background()); err != nil || f.made != 3 {
		t.Errorf("with a valid certificate: %v, asked %d times in all; want no new request", err, f.made)
	}
	mu.Lock()
	defer mu.Unlock()
	got := strings.Join(lines, "\n")
	want := []string{
		"node: made this node's secret (" + filepath.Join(root, "cairn", nodeclaim.SecretFile) + ", mode 0600): it proves to the servers that the name a1 is this machine's",
		"node: the servers refuse this node the name a1: the name a1 belongs to another node secret. The kubelet does not start; asking again every 1ms",
		"node: the servers approved the name a1 for this node's secret",
	}
	for _, l := range want {
		if strings.Count(got, l) != 1 {
			t.Errorf("console says %d times %q; want once:\n%s", strings.Count(got, l), l, got)
		}
	}
	if len(lines) != len(want) {
		t.Errorf("console: %d lines, want %d:\n%s", len(lines), len(want), got)
	}
}
