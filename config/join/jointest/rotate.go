package jointest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
)

// Cluster is a cluster as `cairn token rotate` reaches it: an apiserver
// that lists its servers' Nodes (with the control-plane label and an
// InternalIP) and its apiservers' identity Leases to an admin's
// certificate, and each server's admin port, which takes a rotation from
// an admin's certificate only and answers as cairn's servers do: the
// first to get a token seals the record with it, the others find it
// sealed; a weak token is refused.
type Cluster struct {
	// API is the apiserver.
	API *httptest.Server
	// Kubeconfig is an admin's (organisation join.AdminsGroup), Stranger
	// a kubeconfig of the same CAs whose certificate is not an admin's.
	Kubeconfig, Stranger []byte
	// Port is every server's admin port (on its own loopback address).
	Port int
	// Apiservers is how many apiservers the Leases say run (the number
	// of servers when zero).
	Apiservers int

	names   []string
	addrs   map[string]string // by name
	lns     map[string]net.Listener
	servers []*http.Server

	mu     sync.Mutex
	sealed map[join.Role]string
	asked  int
}

// NewCluster starts a cluster of servers named names, each on its own
// loopback address (127.0.0.1, 127.0.0.2, …) and one admin port.
func NewCluster(t testing.TB, names ...string) *Cluster {
	t.Helper()
	now := time.Now()
	caKey, ca, caPEM := newCA(t, "test serving CA", now)
	clientKey, clientCA, clientCAPEM := newCA(t, "test client CA", now)
	var ips []net.IP
	for i := range names {
		ips = append(ips, net.IPv4(127, 0, 0, byte(i+1)))
	}
	serving := leaf(t, ca, caKey, &x509.Certificate{Subject: pkix.Name{CommonName: "kube-apiserver"},
		DNSNames: []string{"kubernetes"}, IPAddresses: ips, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, now)
	c := &Cluster{addrs: map[string]string{}, lns: map[string]net.Listener{}, sealed: map[join.Role]string{}, names: names}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(clientCAPEM)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{serving}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}

	c.API = httptest.NewUnstartedServer(http.HandlerFunc(c.serveAPI))
	c.API.TLS = tlsCfg
	c.API.Config.ErrorLog = log.New(io.Discard, "", 0)
	c.API.StartTLS()
	t.Cleanup(c.API.Close)
	kubeconfig := func(org string) []byte {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		cert := leaf(t, clientCA, clientKey, &x509.Certificate{Subject: pkix.Name{CommonName: join.AdminPrefix + "test", Organization: []string{org}},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, PublicKey: &key.PublicKey}, now)
		der, _ := x509.MarshalECPrivateKey(key)
		return kube.Kubeconfig(c.API.URL, caPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), "test")
	}
	c.Kubeconfig, c.Stranger = kubeconfig(join.AdminsGroup), kubeconfig("system:nodes")

	for try := 0; ; try++ {
		if c.listen(ips) == nil {
			break
		}
		if try == 20 {
			t.Fatal("no port free on every loopback address")
		}
	}
	for i, name := range names {
		srv := &http.Server{Handler: c.serveAdmin(name), TLSConfig: tlsCfg, ErrorLog: log.New(io.Discard, "", 0)}
		c.servers = append(c.servers, srv)
		c.addrs[name] = ips[i].String()
		go srv.ServeTLS(c.lns[name], "", "")
		t.Cleanup(func() { srv.Close() })
	}
	return c
}

// listen opens one port on every address.
func (c *Cluster) listen(ips []net.IP) error {
	c.Port = 0
	for i, ip := range ips {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), fmt.Sprint(c.Port)))
		if err != nil {
			for _, l := range c.lns {
				l.Close()
			}
			clear(c.lns)
			return err
		}
		c.lns[c.names[i]] = ln
		c.Port = ln.Addr().(*net.TCPAddr).Port
	}
	return nil
}

// Down takes a server's admin port away.
func (c *Cluster) Down(name string) {
	for i, n := range c.names {
		if n == name {
			c.servers[i].Close()
		}
	}
}

// Sealed is the token the record is sealed with (RoleServer) or names
// (RoleAgent), "" before any rotation.
func (c *Cluster) Sealed(role join.Role) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sealed[role]
}

func admin(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && slices.Contains(r.TLS.VerifiedChains[0][0].Subject.Organization, join.AdminsGroup)
}

func (c *Cluster) serveAPI(w http.ResponseWriter, r *http.Request) {
	if !admin(r) {
		status(w, http.StatusForbidden, "forbidden")
		return
	}
	switch r.URL.Path {
	case "/api/v1/nodes":
		if r.URL.Query().Get("labelSelector") != upgrade.ServerLabel {
			status(w, http.StatusBadRequest, "this fake lists servers only")
			return
		}
		var items []map[string]any
		for _, n := range slices.Backward(c.names) {
			items = append(items, map[string]any{"metadata": map[string]any{"name": n},
				"status": map[string]any{"addresses": []map[string]string{{"type": "Hostname", "address": n}, {"type": "InternalIP", "address": c.addrs[n]}}}})
		}
		json.NewEncoder(w).Encode(map[string]any{"items": items})
	case "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases":
		n := c.Apiservers
		if n == 0 {
			n = len(c.names)
		}
		var items []map[string]any
		for range n {
			items = append(items, map[string]any{"spec": map[string]any{"renewTime": time.Now().UTC().Format(time.RFC3339Nano)}})
		}
		// One long dead: not counted.
		items = append(items, map[string]any{"spec": map[string]any{"renewTime": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)}})
		json.NewEncoder(w).Encode(map[string]any{"items": items})
	default:
		status(w, http.StatusNotFound, "not found")
	}
}

// serveAdmin is server name's admin port.
func (c *Cluster) serveAdmin(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+join.RotatePath, func(w http.ResponseWriter, r *http.Request) {
		if !admin(r) {
			http.Error(w, "only an admin may do this", http.StatusForbidden)
			return
		}
		var req join.RotateRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, join.MaxRotateRequest)).Decode(&req); err != nil {
			http.Error(w, "not JSON", http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.asked++
		tok, err := join.CheckNew(req.Token)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		reply := join.RotateReply{Node: name, Sealed: c.sealed[req.Role] != tok.Secret}
		c.sealed[req.Role] = tok.Secret
		if req.Role == join.RoleAgent {
			reply.Bootstrap, _ = join.AgentBootstrapToken(tok.Secret)
		} else {
			reply.Bootstrap, _ = join.ServerBootstrapToken(tok.Secret)
		}
		if reply.Sealed {
			reply.Removed = []string{"old001"}
		}
		json.NewEncoder(w).Encode(reply)
	})
	return mux
}

func newCA(t testing.TB, name string, now time.Time) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// leaf issues tmpl (for tmpl.PublicKey, or a new key) from ca.
func leaf(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate, now time.Time) tls.Certificate {
	t.Helper()
	pub := tmpl.PublicKey
	var key *ecdsa.PrivateKey
	if pub == nil {
		key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pub = &key.PublicKey
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Asked is how many rotation requests reached a server's handler.
func (c *Cluster) Asked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.asked
}
