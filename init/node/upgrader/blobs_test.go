package upgrader

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/init/node/pki"
)

// blobBed is a server's file service on its own TLS listener, with the
// cluster's client CA, an admin's certificate and a node's.
type blobBed struct {
	srv         *httptest.Server
	store       *blobStore
	f           upgrade.File
	admin, node tls.Certificate
	// asked counts the reads of the upgrades: a stranger costs none.
	asked atomic.Int32
	// revoked makes the apiserver say the admin is no longer one;
	// reviews counts its answers.
	revoked atomic.Bool
	reviews atomic.Int32
}

const (
	blobNode = "s1"
	blobUID  = "0b1c5e6a-uid-of-the-upgrade"
)

func newBlobBed(t *testing.T) *blobBed {
	t.Helper()
	now := time.Now()
	c, err := pki.NewCluster(now)
	if err != nil {
		t.Fatal(err)
	}
	nodePair, err := c.Issue(pki.ClientCA, pki.Leaf{CommonName: "system:node:a1", Organization: []string{"system:nodes"}, Client: true}, now)
	if err != nil {
		t.Fatal(err)
	}
	pair := func(p pki.Pair) tls.Certificate {
		cert, err := tls.X509KeyPair(p.Cert, p.Key)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c[pki.ClientCA].Cert)
	b := &blobBed{store: newBlobStore(t.TempDir()), f: blob("system image bytes"), admin: pair(c[pki.Admin]), node: pair(nodePair)}
	want := func(_ context.Context, sum string) (upgrade.File, []string, error) {
		b.asked.Add(1)
		if sum != b.f.SHA256 {
			return upgrade.File{}, nil, nil
		}
		return b.f, []string{blobUID}, nil
	}
	access := blobAccess{clientCAs: pool, adminGroup: pki.AdminGroup, node: blobNode,
		stillAdmin: func(_ context.Context, cert *x509.Certificate) error {
			b.reviews.Add(1)
			if b.revoked.Load() {
				return fmt.Errorf("%s (%s) may not delete Secrets in kube-system", cert.Subject.CommonName, cert.Subject.Organization[0])
			}
			return nil
		}}
	b.srv = httptest.NewUnstartedServer(blobHandler(b.store, access, want, func(string, ...any) {}))
	b.srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	b.srv.StartTLS()
	t.Cleanup(b.srv.Close)
	return b
}

// client presents certs (none: a stranger).
func (b *blobBed) client(certs ...tls.Certificate) *http.Client {
	tr := b.srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = certs
	return &http.Client{Transport: tr}
}

// put uploads body as sum with c, after sign (nil: no proof) sets the
// request's headers; it returns the answer's code.
func (b *blobBed) put(t *testing.T, c *http.Client, sum, body string, sign func(http.Header)) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, b.srv.URL+upgrade.BlobPath(sum), strings.NewReader(body))
	if sign != nil {
		sign(req.Header)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// proof signs the upload of f to node for uid with cert, as the CLI does
// through the apiserver's node proxy.
func proof(t *testing.T, cert tls.Certificate, node, uid string, f upgrade.File) func(http.Header) {
	return func(h http.Header) {
		if err := upgrade.SignUpload(h, cert, node, uid, f); err != nil {
			t.Fatal(err)
		}
	}
}

// Only an admin uploads: with the admin's client certificate (straight
// to the port) or with its proof of this very upload (through the
// apiserver's node proxy, which presents no certificate). A stranger and
// a node are refused before the upgrades are even read.
func TestBlobHandlerUploads(t *testing.T) {
	b := newBlobBed(t)
	f := b.f
	body := "system image bytes"
	for _, tc := range []struct {
		name  string
		c     *http.Client
		sign  func(http.Header)
		want  int
		asked bool
	}{
		{"a stranger", b.client(), nil, http.StatusForbidden, false},
		{"a node's certificate", b.client(b.node), nil, http.StatusForbidden, false},
		{"a node's proof", b.client(), proof(t, b.node, blobNode, blobUID, f), http.StatusForbidden, false},
		{"an admin's proof for another server", b.client(), proof(t, b.admin, "s2", blobUID, f), http.StatusForbidden, false},
		{"an admin's proof of another size", b.client(), proof(t, b.admin, blobNode, blobUID, upgrade.File{SHA256: f.SHA256, Size: f.Size + 1}), http.StatusForbidden, false},
		{"an admin's proof for an upgrade that does not name the file", b.client(), proof(t, b.admin, blobNode, "another-uid", f), http.StatusForbidden, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.asked.Load()
			if code := b.put(t, tc.c, f.SHA256, body, tc.sign); code != tc.want || b.store.has(f) {
				t.Errorf("PUT: %d, kept %v; want %d, nothing kept", code, b.store.has(f), tc.want)
			}
			if asked := b.asked.Load() != before; asked != tc.asked {
				t.Errorf("the upgrades were read: %v, want %v", asked, tc.asked)
			}
		})
	}

	admin := b.client(b.admin)
	other := blob("something else")
	if code := b.put(t, admin, other.SHA256, "something else", nil); code != http.StatusForbidden {
		t.Errorf("a file no upgrade names: %d, want 403", code)
	}
	if code := b.put(t, admin, f.SHA256, "system image byteZ", nil); code != http.StatusBadRequest || b.store.has(f) {
		t.Errorf("wrong bytes of the right size: %d, kept %v", code, b.store.has(f))
	}
	if code := b.put(t, b.client(), f.SHA256, body, proof(t, b.admin, blobNode, blobUID, f)); code != http.StatusCreated || !b.store.has(f) {
		t.Errorf("the named file with the admin's proof: %d, kept %v", code, b.store.has(f))
	}
	if code := b.put(t, admin, f.SHA256, body, nil); code != http.StatusOK {
		t.Errorf("the named file again with the admin's certificate: %d, want 200 (held)", code)
	}

	get := func(c *http.Client) int {
		resp, err := c.Get(b.srv.URL + upgrade.BlobPath(f.SHA256))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(b.client()); code != http.StatusForbidden {
		t.Errorf("GET without a client certificate: %d, want 403", code)
	}
	if code := get(b.client(b.node)); code != http.StatusOK {
		t.Errorf("GET with a node's certificate: %d, want 200", code)
	}
}

// An upload that stalls gives its file back: the admin's next try is
// stored, not refused as one in progress (409) for as long as the
// stalled one keeps its connection open.
func TestBlobHandlerStalledUpload(t *testing.T) {
	old := blobRequestTimeout
	blobRequestTimeout = 200 * time.Millisecond
	t.Cleanup(func() { blobRequestTimeout = old })
	b := newBlobBed(t)
	f := b.f

	cfg := b.srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.Certificates = []tls.Certificate{b.admin}
	conn, err := tls.Dial("tcp", b.srv.Listener.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: blobs\r\nContent-Length: %d\r\n\r\ns", upgrade.BlobPath(f.SHA256), f.Size)

	admin := b.client(b.admin)
	var codes []int
	for range 100 {
		code := b.put(t, admin, f.SHA256, "system image bytes", nil)
		codes = append(codes, code)
		if code != http.StatusConflict {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if last := codes[len(codes)-1]; last != http.StatusCreated || !b.store.has(f) {
		t.Errorf("the upload after a stalled one: %d tries, the last %d, kept %v; want 201 once the stalled one is cut off", len(codes), last, b.store.has(f))
	}
	// The stalled upload was answered and its connection closed.
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("the stalled upload: %d", resp.StatusCode)
		}
	}
}

// An admin certificate the apiserver no longer takes as an admin's (its
// binding deleted) uploads nothing, with its certificate or its proof,
// and the upgrades are not even read for it.
func TestBlobHandlerRevokedAdmin(t *testing.T) {
	b := newBlobBed(t)
	b.revoked.Store(true)
	for _, tc := range []struct {
		name string
		c    *http.Client
		sign func(http.Header)
	}{
		{"its certificate", b.client(b.admin), nil},
		{"its proof", b.client(), proof(t, b.admin, blobNode, blobUID, b.f)},
	} {
		before := b.reviews.Load()
		if code := b.put(t, tc.c, b.f.SHA256, "system image bytes", tc.sign); code != http.StatusForbidden || b.store.has(b.f) {
			t.Errorf("a revoked admin with %s: %d, kept %v; want 403, nothing kept", tc.name, code, b.store.has(b.f))
		}
		if b.reviews.Load() == before {
			t.Errorf("a revoked admin with %s: the apiserver was not asked", tc.name)
		}
	}
	if b.asked.Load() != 0 {
		t.Errorf("the upgrades were read %d times for a revoked admin", b.asked.Load())
	}
	b.revoked.Store(false)
	if code := b.put(t, b.client(b.admin), b.f.SHA256, "system image bytes", nil); code != http.StatusCreated {
		t.Errorf("the admin once the apiserver takes it again: %d, want 201", code)
	}
}

// The apiserver's yes stands adminCacheFor, its no not at all.
func TestAdminCache(t *testing.T) {
	now := time.Now()
	asked, allowed := 0, true
	c := &adminCache{now: func() time.Time { return now }, ask: func(context.Context, *x509.Certificate) error {
		asked++
		if !allowed {
			return errors.New("not an admin")
		}
		return nil
	}}
	cert := &x509.Certificate{Raw: []byte("an admin's certificate")}
	check := func(want error) {
		t.Helper()
		if err := c.check(context.Background(), cert); (err == nil) != (want == nil) {
			t.Errorf("check: %v, want %v", err, want)
		}
	}
	check(nil)
	check(nil)
	if asked != 1 {
		t.Errorf("asked %d times within %s, want once", asked, adminCacheFor)
	}
	allowed = false
	now = now.Add(adminCacheFor)
	check(errors.New("not an admin"))
	check(errors.New("not an admin"))
	if asked != 3 {
		t.Errorf("asked %d times, want a no asked again each time (3)", asked)
	}
}
