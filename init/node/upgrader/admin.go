package upgrader

import (
	"net/http"
	"slices"
	"time"
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
