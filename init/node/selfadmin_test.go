package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/pki"
	"github.com/cairn-os/cairn/init/node/render"
)

// clock is a test's time, moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestSelfAdminRenews: a server's own admin certificate is minted from
// the client CA for at most a month, of the admins' group, and minted
// again well before it lapses: over a year and a clock set back, the
// one presented is always valid with 20 days to go.
func TestSelfAdminRenews(t *testing.T) {
	c, err := pki.NewCluster(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	a, err := newSelfAdmin(c, "s1", clk.now)
	if err != nil {
		t.Fatal(err)
	}
	ca, _, _ := c[pki.ClientCA].Parse()
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	first, _ := a.current()
	leaf := first.Leaf
	if leaf.Subject.CommonName != "cairn:server:s1" || strings.Join(leaf.Subject.Organization, ",") != pki.AdminGroup {
		t.Errorf("subject %v, want cairn:server:s1 of %s", leaf.Subject, pki.AdminGroup)
	}
	if life := leaf.NotAfter.Sub(clk.now()); life > selfAdminLifetime || life < selfAdminLifetime-time.Minute {
		t.Errorf("valid %s from now, want %s", life, selfAdminLifetime)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: clk.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("not a client certificate of the client CA: %v", err)
	}
	serials := map[string]bool{}
	for day := 0; day < 400; day++ {
		if day == 200 {
			clk.add(-3 * 24 * time.Hour) // NTP set the clock back
		}
		cur, err := a.current()
		if err != nil {
			t.Fatalf("day %d: %v", day, err)
		}
		now := clk.now()
		if now.Before(cur.Leaf.NotBefore) || cur.Leaf.NotAfter.Sub(now) < selfAdminLifetime-selfAdminRenew {
			t.Fatalf("day %d: the certificate presented is valid %s to %s; want it valid now with 20 days to go", day, cur.Leaf.NotBefore, cur.Leaf.NotAfter)
		}
		serials[cur.Leaf.SerialNumber.String()] = true
		clk.add(24 * time.Hour)
	}
	if n := len(serials); n < 40 || n > 45 {
		t.Errorf("%d certificates over 400 days, want one every 10 days", n)
	}
}

// TestSelfAdminConnections: the apiserver checks a client certificate at
// every request, so a client that polls for a year on one connection
// would present a lapsed certificate: a server's own clients make their
// connections again as they age, and every request of the year is
// answered (with a body too) without the caller seeing a retry.
func TestSelfAdminConnections(t *testing.T) {
	c, err := pki.NewCluster(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	a, err := newSelfAdmin(c, "s1", clk.now)
	if err != nil {
		t.Fatal(err)
	}
	ca, _, _ := c[pki.ClientCA].Parse()
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	serving, err := c.Issue(pki.ServerCA, pki.Leaf{CommonName: "kube-apiserver", Server: true, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(serving.Cert, serving.Key)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := 0
	seen := map[string]bool{}
	// As kube-apiserver: a certificate is asked for at the handshake and
	// checked, at the (test's) time, at every request.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer := r.TLS.PeerCertificates[0]
		if _, err := peer.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: clk.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			http.Error(w, `{"kind":"Status","code":401,"message":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		mu.Lock()
		seen[peer.SerialNumber.String()] = true
		mu.Unlock()
		w.Write([]byte("{}"))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAnyClientCert}
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.StartTLS()
	defer srv.Close()

	cfg, err := a.tlsConfig()
	if err != nil {
		t.Fatal(err)
	}
	api := kube.New(srv.URL, kube.Options{TLS: cfg, DialContext: a.dial})
	ctx := context.Background()
	for day := 0; day < 365; day++ {
		var err error
		if day%2 == 0 {
			err = api.Get(ctx, "/readyz", nil)
		} else {
			err = api.MergePatch(ctx, "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/cairn-vip", map[string]any{"spec": map[string]any{"holderIdentity": "s1"}})
		}
		if err != nil {
			t.Fatalf("day %d: %v", day, err)
		}
		clk.add(24 * time.Hour)
	}
	mu.Lock()
	defer mu.Unlock()
	if conns < 365 || len(seen) < 36 {
		t.Errorf("%d connections and %d certificates over a year; want a connection a request (each a day apart) and a certificate every 10 days", conns, len(seen))
	}
}

// TestWritePKINoAdminFile: the server's own admin certificate is in its
// memory only; the year-long one an older cairn wrote is removed.
func TestWritePKINoAdminFile(t *testing.T) {
	dir := t.TempDir()
	l := render.Layout{DataDir: dir, CertDir: filepath.Join(dir, "pki"), KubeconfigDir: filepath.Join(dir, "kubeconfig")}
	cfg := &config.Config{Kubernetes: config.Kubernetes{ServiceCIDR: "10.43.0.0/16", ClusterDomain: "cluster.local"}}
	s := &server{o: Options{Config: cfg, Hostname: "s1", Printf: t.Logf, Addresses: func() []netip.Addr { return nil }},
		k: &cfg.Kubernetes, l: l, tok: join.Token{Secret: "s3cret"}}
	c, err := pki.NewCluster(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(l.KubeconfigDir, 0o700); err != nil {
		t.Fatal(err)
	}
	old := l.Kubeconfig("admin")
	if err := os.WriteFile(old, []byte("an older cairn's admin kubeconfig"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.writePKI(c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("%s is still there (%v)", old, err)
	}
	cur, err := s.admin.current()
	if err != nil {
		t.Fatal(err)
	}
	der := cur.Leaf.Raw
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, _ := os.ReadFile(p)
		if strings.Contains(string(data), "cairn:server") || strings.Contains(string(data), string(der[:64])) {
			t.Errorf("%s holds this server's own admin certificate", p)
		}
		if admin := c[pki.Admin]; strings.Contains(string(data), string(admin.Key)) {
			t.Errorf("%s holds the record's admin key", p)
		}
		return nil
	})
}
