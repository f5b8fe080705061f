package upgrader

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/init/node/pki"
)

// An admin route of the port answers an admin's certificate only: not a
// stranger, not a node's certificate, not an admin's upload proof (what
// the node proxy would carry); the file service beside it is unchanged.
func TestAdminRoutes(t *testing.T) {
	now := time.Now()
	c, err := pki.NewCluster(now)
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
	nodePair, err := c.Issue(pki.ClientCA, pki.Leaf{CommonName: "system:node:a1", Organization: []string{"system:nodes"}, Client: true}, now)
	if err != nil {
		t.Fatal(err)
	}
	admin, node := pair(c[pki.Admin]), pair(nodePair)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c[pki.ClientCA].Cert)
	access := blobAccess{clientCAs: pool, adminGroup: pki.AdminGroup, node: blobNode}
	f := blob("system image bytes")
	files := blobHandler(newBlobStore(t.TempDir()), access, nil, func(string, ...any) {})
	called := 0
	routes := map[string]http.Handler{"POST /admin/thing": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called++
		io.WriteString(w, "done")
	})}
	srv := httptest.NewUnstartedServer(withAdmin(files, access, routes))
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()
	client := func(certs ...tls.Certificate) *http.Client {
		tr := srv.Client().Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.Certificates = certs
		return &http.Client{Transport: tr}
	}
	post := func(c *http.Client, sign func(http.Header)) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/admin/thing", strings.NewReader("{}"))
		if sign != nil {
			sign(req.Header)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name string
		c    *http.Client
		sign func(http.Header)
		want string
	}{
		{"a stranger", client(), nil, "present the client certificate of an admin kubeconfig"},
		{"a node's certificate", client(node), nil, "(system:node:a1) is not in system:masters"},
		{"an admin's upload proof without a certificate", client(), proof(t, admin, blobNode, blobUID, f), "present the client certificate"},
	} {
		if code, body := post(tc.c, tc.sign); code != http.StatusForbidden || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q; want 403 saying %q", tc.name, code, body, tc.want)
		}
	}
	if called != 0 {
		t.Fatalf("the route ran %d times for those who may not", called)
	}
	if code, body := post(client(admin), nil); code != http.StatusOK || body != "done" || called != 1 {
		t.Errorf("an admin: %d %q, ran %d times; want 200 done, once", code, body, called)
	}
	// The files are where they were: a GET without a certificate is 403.
	resp, err := client().Get(srv.URL + upgrade.BlobPath(f.SHA256))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET of a file without a certificate: %d, want 403", resp.StatusCode)
	}
}

// mayAdmin asks the apiserver as the rotation does (delete Secrets in
// kube-system, as the certificate's user and groups) and says no for a
// certificate whose binding is gone, naming it.
func TestMayAdmin(t *testing.T) {
	var review struct {
		Spec struct {
			User               string            `json:"user"`
			Groups             []string          `json:"groups"`
			ResourceAttributes map[string]string `json:"resourceAttributes"`
		} `json:"spec"`
	}
	allowed := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/apis/authorization.k8s.io/v1/subjectaccessreviews" {
			http.NotFound(w, r)
			return
		}
		json.NewDecoder(r.Body).Decode(&review)
		json.NewEncoder(w).Encode(map[string]any{"status": map[string]any{"allowed": allowed}})
	}))
	defer srv.Close()
	api := kube.New(srv.URL, kube.Options{})
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "cairn-admin-1a2b", Organization: []string{"cairn:cluster-admins"}}}
	err := mayAdmin(context.Background(), api, cert)
	if err == nil || !strings.Contains(err.Error(), "cairn-admin-1a2b (cairn:cluster-admins) may not delete Secrets in kube-system") {
		t.Errorf("a revoked admin: %v", err)
	}
	if review.Spec.User != "cairn-admin-1a2b" || !slices.Equal(review.Spec.Groups, []string{"cairn:cluster-admins", "system:authenticated"}) ||
		review.Spec.ResourceAttributes["verb"] != "delete" || review.Spec.ResourceAttributes["resource"] != "secrets" || review.Spec.ResourceAttributes["namespace"] != "kube-system" {
		t.Errorf("the review asked: %+v", review.Spec)
	}
	allowed = true
	if err := mayAdmin(context.Background(), api, cert); err != nil {
		t.Errorf("an admin: %v", err)
	}
	srv.Close()
	if err := mayAdmin(context.Background(), api, cert); !errors.Is(err, errCannotAsk) {
		t.Errorf("no apiserver: %v, want errCannotAsk (503)", err)
	}
}
