package upgrader

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairn-os/cairn/config/kube"
)

// adminWriteTimeout bounds the answer of an admin route: its handler
// bounds its own work below it.
const adminWriteTimeout = 4 * time.Minute

// withAdmin serves routes (http.ServeMux patterns, "POST /cairn/v1/token")
// beside files, to admins only: a client certificate of the cluster's
// client CA in the admins' group on the connection itself. A proof
// through the apiserver's node proxy, which the file service takes for an
// upload, is not one: the proxy presents the apiserver's own certificate
// or none. Each request is read within blobRequestTimeout and answered
// within adminWriteTimeout.
func withAdmin(files http.Handler, access blobAccess, routes map[string]http.Handler) http.Handler {
	if len(routes) == 0 {
		return files
	}
	mux := http.NewServeMux()
	mux.Handle("/", files)
	for pattern, h := range routes {
		mux.Handle(pattern, access.adminOnly(h))
	}
	return mux
}

// adminOnly lets only an admin's certificate through to h.
func (a blobAccess) adminOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.SetReadDeadline(time.Now().Add(blobRequestTimeout))
		rc.SetWriteDeadline(time.Now().Add(adminWriteTimeout))
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "only an admin may do this: present the client certificate of an admin kubeconfig (cairn kubeconfig)", http.StatusForbidden)
			return
		}
		if leaf := r.TLS.VerifiedChains[0][0]; !slices.Contains(leaf.Subject.Organization, a.adminGroup) {
			http.Error(w, "only an admin may do this: the client certificate ("+leaf.Subject.CommonName+") is not in "+a.adminGroup, http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// adminCacheFor is how long the apiserver's yes for an admin's
// certificate stands: a certificate whose binding was deleted uploads for
// at most this long after (a no is never kept: the next request asks
// again). An upload sends a file in several requests; one question each
// would be one review per file.
const adminCacheFor = 30 * time.Second

// adminCacheSize bounds what the cache holds (it starts afresh when full).
const adminCacheSize = 64

// adminCache keeps the apiserver's yes for a certificate adminCacheFor.
type adminCache struct {
	ask func(ctx context.Context, cert *x509.Certificate) error
	now func() time.Time // time.Now when nil

	mu  sync.Mutex
	yes map[[32]byte]time.Time
}

// check is ask for cert, answered from the cache while a yes is fresh.
func (c *adminCache) check(ctx context.Context, cert *x509.Certificate) error {
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	key := sha256.Sum256(cert.Raw)
	c.mu.Lock()
	at, ok := c.yes[key]
	c.mu.Unlock()
	if ok && now().Sub(at) < adminCacheFor && !now().Before(at) {
		return nil
	}
	if err := c.ask(ctx, cert); err != nil {
		c.mu.Lock()
		delete(c.yes, key)
		c.mu.Unlock()
		return err
	}
	c.mu.Lock()
	if c.yes == nil || len(c.yes) >= adminCacheSize {
		c.yes = map[[32]byte]time.Time{}
	}
	c.yes[key] = now()
	c.mu.Unlock()
	return nil
}

// errCannotAsk: the apiserver did not answer who is an admin (the upload
// may be tried again).
var errCannotAsk = errors.New("asking the apiserver")

// mayAdmin asks the apiserver, with api (a node's credentials may ask),
// whether cert's holder may still delete Secrets in kube-system, what
// only an admin may do (the question the token rotation asks): a
// certificate of the admins' group whose ClusterRoleBinding was deleted
// is refused here as it is by the apiserver.
func mayAdmin(ctx context.Context, api *kube.Client, cert *x509.Certificate) error {
	review := map[string]any{
		"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
		"spec": map[string]any{
			"user":   cert.Subject.CommonName,
			"groups": append(append([]string(nil), cert.Subject.Organization...), "system:authenticated"),
			"resourceAttributes": map[string]string{
				"namespace": "kube-system", "verb": "delete", "resource": "secrets",
			},
		},
	}
	var out struct {
		Status struct {
			Allowed bool `json:"allowed"`
		} `json:"status"`
	}
	if err := api.Do(ctx, http.MethodPost, "/apis/authorization.k8s.io/v1/subjectaccessreviews", review, &out); err != nil {
		return fmt.Errorf("%w whether %s is still an admin: %w", errCannotAsk, cert.Subject.CommonName, err)
	}
	if !out.Status.Allowed {
		return fmt.Errorf("%s (%s) may not delete Secrets in kube-system: not an admin the cluster names (its ClusterRoleBinding deleted?)",
			cert.Subject.CommonName, strings.Join(cert.Subject.Organization, ","))
	}
	return nil
}
