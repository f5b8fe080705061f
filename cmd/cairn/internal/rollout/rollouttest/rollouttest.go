// Package rollouttest is a fake apiserver for the tests of package rollout
// and of `cairn upgrade`, with the update bundles and the admin
// kubeconfig they are given.
package rollouttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/upgrade"
)

// API is an apiserver with the objects `cairn upgrade` uses: Nodes,
// Deployments, Upgrades (with the status subresource) and the servers'
// blob port behind the node proxy, which accepts only files a not-Done
// Upgrade names, checked as they arrive, from an admin (the proof of
// the kubeconfig's client certificate, which must be of the group the
// servers' blob port takes, join.AdminsGroup, as `cairn kubeconfig`
// mints it). A test sets its fields before the client runs and reads
// them after.
type API struct {
	mu          sync.Mutex
	Nodes       []Node
	Deployments []string
	Upgrades    map[string]*upgrade.Upgrade
	// Blobs are the files servers hold, by "NODE/SHA256".
	Blobs map[string][]byte
	// requests are "METHOD PATH", in order.
	requests []string
	// Script is what the nodes write into a Running upgrade's status, one
	// step per read of it; the last stays.
	Script []upgrade.Status
	// FailBlobs makes every upload fail.
	FailBlobs bool
	// LoseStart applies a write of the status and answers 500, as a
	// reply lost on its way.
	LoseStart bool
	// Busy answers this many lists of upgrades with 429, as an apiserver
	// whose storage of the resource is starting.
	Busy int
	// Down fails this many reads of a Running upgrade (503), as an
	// apiserver whose server reboots.
	Down int
	rv   int
	// admins are the authority of the admin kubeconfig's certificate.
	admins *x509.CertPool
}

// Node is a Node object of the fake: a server carries the control-plane
// label.
type Node struct {
	Name, Arch string
	Server     bool
}

// ThreeNodes is a cluster of two servers and an agent, listed out of
// order.
var ThreeNodes = []Node{{"a1", "amd64", false}, {"s2", "amd64", true}, {"s1", "amd64", true}}

// New starts a fake apiserver holding nodes, for as long as the test
// runs, and returns it with the path of an admin kubeconfig for it (a
// client certificate of join.AdminsGroup, as `cairn kubeconfig` gives).
func New(t *testing.T, nodes ...Node) (*API, string) {
	return NewAs(t, []string{join.AdminsGroup}, nodes...)
}

// NewAs is New with a kubeconfig whose client certificate is of groups
// (system:masters, say, as k3s's admin kubeconfig is).
func NewAs(t *testing.T, groups []string, nodes ...Node) (*API, string) {
	f := &API{Nodes: nodes, Upgrades: map[string]*upgrade.Upgrade{}, Blobs: map[string][]byte{}}
	srv := httptest.NewTLSServer(f)
	t.Cleanup(srv.Close)
	path, admins := writeKubeconfig(t, srv, groups)
	f.admins = admins
	return f, path
}

// ServeHTTP answers as an apiserver would.
func (f *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	status := func(code int, msg string) {
		reply(code, map[string]any{"kind": "Status", "status": "Failure", "message": msg, "code": code})
	}
	ups := upgrade.Path("")
	p := r.URL.Path
	switch {
	case r.Method == "GET" && p == "/api/v1/nodes":
		var items []any
		for _, n := range f.Nodes {
			labels := map[string]string{"kubernetes.io/arch": n.Arch}
			if n.Server {
				labels[upgrade.ServerLabel] = ""
			}
			items = append(items, map[string]any{"metadata": map[string]any{"name": n.Name, "labels": labels,
				"annotations": map[string]string{upgrade.VersionAnnotation: "v1"}}})
		}
		reply(200, map[string]any{"kind": "NodeList", "items": items})
	case r.Method == "GET" && strings.HasPrefix(p, "/apis/apps/v1/namespaces/"):
		ns, name, _ := strings.Cut(strings.TrimPrefix(p, "/apis/apps/v1/namespaces/"), "/deployments/")
		if !slices.Contains(f.Deployments, ns+"/"+name) {
			status(404, fmt.Sprintf("deployments.apps %q not found", name))
			return
		}
		reply(200, map[string]any{"kind": "Deployment"})
	case r.Method == "GET" && p == ups && f.Busy > 0:
		f.Busy--
		w.Header().Set("Retry-After", "1")
		status(429, "storage is (re)initializing")
	case r.Method == "GET" && p == ups:
		var items []*upgrade.Upgrade
		for _, u := range f.Upgrades {
			items = append(items, u)
		}
		reply(200, map[string]any{"kind": upgrade.Kind + "List", "items": items})
	case r.Method == "POST" && p == ups:
		var u upgrade.Upgrade
		if err := json.NewDecoder(r.Body).Decode(&u); err != nil {
			status(400, err.Error())
			return
		}
		if _, ok := f.Upgrades[u.Metadata.Name]; ok {
			status(409, "already exists")
			return
		}
		f.rv++
		u.Status = upgrade.Status{} // the status subresource: not set on create
		u.Metadata.ResourceVersion = strconv.Itoa(f.rv)
		u.Metadata.CreationTimestamp = "2026-11-30T10:00:00Z"
		u.Metadata.UID = "uid-" + u.Metadata.Name
		f.Upgrades[u.Metadata.Name] = &u
		reply(201, u)
	case strings.HasPrefix(p, ups+"/"):
		name, sub, _ := strings.Cut(strings.TrimPrefix(p, ups+"/"), "/")
		u, ok := f.Upgrades[name]
		if !ok {
			status(404, fmt.Sprintf("upgrades.cairn.dev %q not found", name))
			return
		}
		switch {
		case r.Method == "GET" && sub == "":
			if u.Status.Phase == upgrade.Running && f.Down > 0 {
				f.Down--
				status(503, "the server is shutting down")
				return
			}
			if u.Status.Phase == upgrade.Running && len(f.Script) > 0 {
				u.Status = f.Script[0]
				if len(f.Script) > 1 {
					f.Script = f.Script[1:]
				}
			}
			reply(200, u)
		case r.Method == "PUT" && sub == "status":
			var nu upgrade.Upgrade
			if err := json.NewDecoder(r.Body).Decode(&nu); err != nil {
				status(400, err.Error())
				return
			}
			if nu.Metadata.ResourceVersion != u.Metadata.ResourceVersion {
				status(409, "the object has been modified")
				return
			}
			f.rv++
			u.Status = nu.Status
			u.Metadata.ResourceVersion = strconv.Itoa(f.rv)
			if f.LoseStart {
				status(500, "etcdserver: request timed out")
				return
			}
			reply(200, u)
		case r.Method == "DELETE" && sub == "":
			delete(f.Upgrades, name)
			reply(200, map[string]any{"kind": "Status", "status": "Success"})
		default:
			status(405, "method not allowed")
		}
	case r.Method == "PUT" && strings.HasPrefix(p, "/api/v1/nodes/https:"):
		rest := strings.TrimPrefix(p, "/api/v1/nodes/https:")
		node, rest, _ := strings.Cut(rest, ":")
		sha, ok := strings.CutPrefix(rest, strconv.Itoa(upgrade.BlobPort)+"/proxy"+upgrade.BlobPath(""))
		if !ok || !slices.ContainsFunc(f.Nodes, func(n Node) bool { return n.Name == node && n.Server }) {
			status(404, "no such server or path: "+p)
			return
		}
		if f.FailBlobs {
			status(503, "error trying to reach service: dial tcp 10.0.0.1:6446: connect: connection refused")
			return
		}
		cert, uid, err := upgrade.VerifyUpload(r.Header, f.admins, node, upgrade.File{SHA256: sha, Size: r.ContentLength})
		// The servers' rule (init/node/upgrader): a certificate of the
		// admins' group, not system:masters.
		if err == nil && !slices.Contains(cert.Subject.Organization, join.AdminsGroup) {
			err = fmt.Errorf("the upload's certificate (%s) is not an admin's (%s)", cert.Subject.CommonName, join.AdminsGroup)
		}
		if err != nil {
			status(403, fmt.Sprintf("only an admin uploads upgrade files: %v", err))
			return
		}
		var want *upgrade.File
		for _, u := range f.Upgrades {
			for _, im := range u.Spec.Images {
				for _, bf := range im.Files {
					if bf.SHA256 == sha && !upgrade.Done(u.Status.Phase) && u.Metadata.UID == uid {
						want = &bf
					}
				}
			}
		}
		if want == nil || r.ContentLength != want.Size {
			status(403, "no upgrade names this file and size")
			return
		}
		data, _ := io.ReadAll(r.Body)
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != sha {
			status(400, "sha256 mismatch")
			return
		}
		f.Blobs[node+"/"+sha] = data
		w.WriteHeader(201)
	default:
		status(404, "the fake has no "+r.Method+" "+p)
	}
}

// Did lists the requests whose "METHOD PATH" starts with prefix.
func (f *API) Did(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.requests {
		if strings.HasPrefix(r, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// Only is the one Upgrade the cluster holds; the test fails when it holds
// none or more.
func (f *API) Only(t *testing.T) *upgrade.Upgrade {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.Upgrades) != 1 {
		t.Fatalf("the cluster holds %d upgrades, want 1", len(f.Upgrades))
	}
	for _, u := range f.Upgrades {
		return u
	}
	return nil
}

// writeKubeconfig writes a kubeconfig for srv: its certificate as the CA,
// and a client certificate of its own, of groups, which it returns as an
// authority.
func writeKubeconfig(t *testing.T, srv *httptest.Server, groups []string) (string, *x509.CertPool) {
	t.Helper()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "admin", Organization: groups},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	b64 := func(typ string, der []byte) string {
		return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: cairn
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: admin@cairn
  context: {cluster: cairn, user: admin}
current-context: admin@cairn
`, srv.URL, base64.StdEncoding.EncodeToString(ca), b64("CERTIFICATE", der), b64("EC PRIVATE KEY", kder))
	path := filepath.Join(t.TempDir(), "kubeconfig")
	must(t, os.WriteFile(path, []byte(kc), 0o600))
	cert, err := x509.ParseCertificate(der)
	must(t, err)
	admins := x509.NewCertPool()
	admins.AddCert(cert)
	return path, admins
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// WriteBundle writes an update bundle for board into DIR/update/ (a
// build output directory) and returns DIR.
func WriteBundle(t *testing.T, board, arch, version string) string {
	t.Helper()
	dir := t.TempDir()
	must(t, os.Mkdir(filepath.Join(dir, upgrade.BundleDir), 0o755))
	b := upgrade.Bundle{Board: board, Arch: arch, Version: version, Epoch: 1700000000, Cmdline: "console=ttyS0 cairn.system=disk"}
	for _, name := range upgrade.BundleFiles {
		data := []byte(strings.Repeat(name+" of "+board+" "+version+"\n", 1000))
		must(t, os.WriteFile(filepath.Join(dir, upgrade.BundleDir, name), data, 0o644))
		sum := sha256.Sum256(data)
		b.Files = append(b.Files, upgrade.File{Name: name, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))})
	}
	js, err := json.Marshal(b)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, upgrade.BundleDir, upgrade.BundleFile), js, 0o644))
	return dir
}

// NodeStatus is the status of a node going from v1 to v2 at a step; times
// ("MM:SS" within 10 o'clock on 2026-11-30, when the fake creates every
// Upgrade) are its Started, Drained, Written, Rebooted and Finished.
func NodeStatus(name, phase string, times ...string) upgrade.NodeStatus {
	n := upgrade.NodeStatus{Name: name, Phase: phase, FromVersion: "v1", ToVersion: "v2"}
	for i, p := range []*string{&n.Started, &n.Drained, &n.Written, &n.Rebooted, &n.Finished} {
		if i < len(times) {
			*p = "2026-11-30T10:" + times[i] + "Z"
		}
	}
	return n
}
