package main

import (
	"context"
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

	"github.com/cairn-os/cairn/config/upgrade"
)

// fakeAPI is an apiserver with the objects `cairn upgrade` uses: Nodes,
// Deployments, Upgrades (with the status subresource) and the servers'
// blob port behind the node proxy, which accepts only files a not-Done
// Upgrade names, checked as they arrive.
type fakeAPI struct {
	mu          sync.Mutex
	nodes       []fakeNode
	deployments []string
	upgrades    map[string]*upgrade.Upgrade
	// blobs are the files servers hold, by "NODE/SHA256".
	blobs map[string][]byte
	// requests are "METHOD PATH", in order.
	requests []string
	// script is what the nodes write into a Running upgrade's status, one
	// step per read of it; the last stays.
	script []upgrade.Status
	// failBlobs makes every upload fail.
	failBlobs bool
	// loseStart applies a write of the status and answers 500, as a
	// reply lost on its way.
	loseStart bool
	// busy answers this many lists of upgrades with 429, as an apiserver
	// whose storage of the resource is starting.
	busy int
	// down fails this many reads of a Running upgrade (503), as an
	// apiserver whose server reboots.
	down int
	rv   int
}

type fakeNode struct {
	name, arch string
	server     bool
}

func newFakeAPI(t *testing.T, nodes ...fakeNode) (*fakeAPI, string) {
	f := &fakeAPI{nodes: nodes, upgrades: map[string]*upgrade.Upgrade{}, blobs: map[string][]byte{}}
	srv := httptest.NewTLSServer(f)
	t.Cleanup(srv.Close)
	return f, writeKubeconfig(t, srv)
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
		for _, n := range f.nodes {
			labels := map[string]string{"kubernetes.io/arch": n.arch}
			if n.server {
				labels[controlPlaneLabel] = ""
			}
			items = append(items, map[string]any{"metadata": map[string]any{"name": n.name, "labels": labels,
				"annotations": map[string]string{upgrade.VersionAnnotation: "v1"}}})
		}
		reply(200, map[string]any{"kind": "NodeList", "items": items})
	case r.Method == "GET" && strings.HasPrefix(p, "/apis/apps/v1/namespaces/"):
		ns, name, _ := strings.Cut(strings.TrimPrefix(p, "/apis/apps/v1/namespaces/"), "/deployments/")
		if !slices.Contains(f.deployments, ns+"/"+name) {
			status(404, fmt.Sprintf("deployments.apps %q not found", name))
			return
		}
		reply(200, map[string]any{"kind": "Deployment"})
	case r.Method == "GET" && p == ups && f.busy > 0:
		f.busy--
		w.Header().Set("Retry-After", "1")
		status(429, "storage is (re)initializing")
	case r.Method == "GET" && p == ups:
		var items []*upgrade.Upgrade
		for _, u := range f.upgrades {
			items = append(items, u)
		}
		reply(200, map[string]any{"kind": upgrade.Kind + "List", "items": items})
	case r.Method == "POST" && p == ups:
		var u upgrade.Upgrade
		if err := json.NewDecoder(r.Body).Decode(&u); err != nil {
			status(400, err.Error())
			return
		}
		if _, ok := f.upgrades[u.Metadata.Name]; ok {
			status(409, "already exists")
			return
		}
		f.rv++
		u.Status = upgrade.Status{} // the status subresource: not set on create
		u.Metadata.ResourceVersion = strconv.Itoa(f.rv)
		u.Metadata.CreationTimestamp = "2026-11-30T10:00:00Z"
		f.upgrades[u.Metadata.Name] = &u
		reply(201, u)
	case strings.HasPrefix(p, ups+"/"):
		name, sub, _ := strings.Cut(strings.TrimPrefix(p, ups+"/"), "/")
		u, ok := f.upgrades[name]
		if !ok {
			status(404, fmt.Sprintf("upgrades.cairn.dev %q not found", name))
			return
		}
		switch {
		case r.Method == "GET" && sub == "":
			if u.Status.Phase == upgrade.Running && f.down > 0 {
				f.down--
				status(503, "the server is shutting down")
				return
			}
			if u.Status.Phase == upgrade.Running && len(f.script) > 0 {
				u.Status = f.script[0]
				if len(f.script) > 1 {
					f.script = f.script[1:]
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
			if f.loseStart {
				status(500, "etcdserver: request timed out")
				return
			}
			reply(200, u)
		case r.Method == "DELETE" && sub == "":
			delete(f.upgrades, name)
			reply(200, map[string]any{"kind": "Status", "status": "Success"})
		default:
			status(405, "method not allowed")
		}
	case r.Method == "PUT" && strings.HasPrefix(p, "/api/v1/nodes/https:"):
		rest := strings.TrimPrefix(p, "/api/v1/nodes/https:")
		node, rest, _ := strings.Cut(rest, ":")
		sha, ok := strings.CutPrefix(rest, strconv.Itoa(upgrade.BlobPort)+"/proxy"+upgrade.BlobPath(""))
		if !ok || !slices.ContainsFunc(f.nodes, func(n fakeNode) bool { return n.name == node && n.server }) {
			status(404, "no such server or path: "+p)
			return
		}
		if f.failBlobs {
			status(503, "error trying to reach service: dial tcp 10.0.0.1:6446: connect: connection refused")
			return
		}
		var want *upgrade.File
		for _, u := range f.upgrades {
			for _, im := range u.Spec.Images {
				for _, bf := range im.Files {
					if bf.SHA256 == sha && !upgrade.Done(u.Status.Phase) {
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
		f.blobs[node+"/"+sha] = data
		w.WriteHeader(201)
	default:
		status(404, "the fake has no "+r.Method+" "+p)
	}
}

// did lists the requests whose "METHOD PATH" starts with prefix.
func (f *fakeAPI) did(prefix string) []string {
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

func (f *fakeAPI) only(t *testing.T) *upgrade.Upgrade {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.upgrades) != 1 {
		t.Fatalf("the cluster holds %d upgrades, want 1", len(f.upgrades))
	}
	for _, u := range f.upgrades {
		return u
	}
	return nil
}

// writeKubeconfig writes an admin kubeconfig for srv: its certificate as
// the CA, and a client certificate of its own.
func writeKubeconfig(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "admin"},
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
	return path
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeBundle writes an update bundle for board into DIR/update/ and
// returns DIR.
func writeBundle(t *testing.T, board, arch, version string) string {
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

// quick makes following fast and names upgrades after a fixed time.
func quick(t *testing.T) {
	oldPoll, oldNow := pollInterval, now
	pollInterval = time.Millisecond
	now = func() time.Time { return time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC) }
	t.Cleanup(func() { pollInterval, now = oldPoll, oldNow })
}

var threeNodes = []fakeNode{{"a1", "amd64", false}, {"s2", "amd64", true}, {"s1", "amd64", true}}

// node is the status of a node at a step.
func node(name, phase string, times ...string) upgrade.NodeStatus {
	n := upgrade.NodeStatus{Name: name, Phase: phase, FromVersion: "v1", ToVersion: "v2"}
	for i, p := range []*string{&n.Started, &n.Drained, &n.Written, &n.Rebooted, &n.Finished} {
		if i < len(times) {
			*p = "2026-11-30T10:" + times[i] + "Z"
		}
	}
	return n
}

// TestUpgradeFromDirectory runs `cairn upgrade --image DIR` against the
// fake: the Upgrade asked for, the files on every server before it
// starts, and the lines while it runs.
func TestUpgradeFromDirectory(t *testing.T) {
	quick(t)
	f, kc := newFakeAPI(t, threeNodes...)
	f.deployments = []string{"default/web"}
	f.busy = 1
	f.down = 3
	done := node("s1", upgrade.Succeeded, "01:00", "01:12", "01:21", "03:00", "08:32")
	f.script = []upgrade.Status{
		{Phase: upgrade.Running, Nodes: []upgrade.NodeStatus{node("s1", upgrade.Draining, "01:00")}},
		{Phase: upgrade.Running, Nodes: []upgrade.NodeStatus{node("s1", upgrade.Draining, "01:00")}},
		{Phase: upgrade.Running, Nodes: []upgrade.NodeStatus{node("s1", upgrade.Writing, "01:00", "01:12")}},
		{Phase: upgrade.Running, Nodes: []upgrade.NodeStatus{done, node("s2", upgrade.Draining, "08:33")}},
		{Phase: upgrade.Succeeded, Nodes: []upgrade.NodeStatus{done,
			node("s2", upgrade.Succeeded, "08:33", "08:40", "08:50", "09:30", "14:00"),
			node("a1", upgrade.Succeeded, "14:01", "14:02", "14:10", "15:00", "21:03")}},
	}
	dir := writeBundle(t, "qemu-x86_64", "amd64", "v2")
	code, stdout, stderr := runCairn(t, "", "upgrade", "--kubeconfig", kc, "--image", dir, "--drain-timeout", "5m", "--check-deployment", "default/web")
	if code != 0 {
		t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	want := `upgrade: s1: Draining
upgrade: s1: Writing
upgrade: s1: Succeeded (drain 12s, write 9s, reboot+healthy 431s)
upgrade: s2: Draining
upgrade: s2: Succeeded (drain 7s, write 10s, reboot+healthy 310s)
upgrade: a1: Succeeded (drain 1s, write 8s, reboot+healthy 413s)
upgrade upgrade-20261130-100000: Succeeded in 21m3s
`
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	for _, line := range []string{"cairn upgrade: qemu-x86_64 v2 (amd64) from " + filepath.Join(dir, "update") + ", 3 files",
		"cairn upgrade: created upgrade-20261130-100000 for s1 (at v1), s2 (at v1), a1 (at v1)",
		"cairn upgrade: qemu-x86_64 system.sqfs (29.3 KiB) stored on s2",
		"cairn upgrade: cannot read upgrade-20261130-100000 (the server is shutting down); asking again every 1ms\ncairn upgrade: the apiserver answers again\n"} {
		if !strings.Contains(stderr, line) {
			t.Errorf("stderr lacks %q:\n%s", line, stderr)
		}
	}

	u := f.only(t)
	s := u.Spec
	if strings.Join(s.Nodes, ",") != "s1,s2,a1" || s.MaxUnavailable != 1 || s.DrainTimeout != "5m0s" || s.HealthTimeout != "15m0s" ||
		len(s.Checks) != 1 || s.Checks[0].Deployment != "default/web" || len(s.Images) != 1 || s.Images[0].Source != "" || s.Images[0].Version != "v2" {
		t.Errorf("the Upgrade's spec is %+v", s)
	}
	for _, server := range []string{"s1", "s2"} {
		for _, bf := range s.Images[0].Files {
			data, err := os.ReadFile(filepath.Join(dir, "update", bf.Name))
			must(t, err)
			if got := f.blobs[server+"/"+bf.SHA256]; string(got) != string(data) {
				t.Errorf("%s holds %d bytes of %s, want %d", server, len(got), bf.Name, len(data))
			}
		}
	}
	// Created, then uploaded, then started; the agent gets no file.
	var order []string
	for _, r := range f.did("") {
		if strings.HasPrefix(r, "POST ") || strings.HasPrefix(r, "PUT ") {
			order = append(order, r)
		}
	}
	sys := s.Images[0].Files[0].SHA256
	if len(order) != 8 || order[0] != "POST "+upgrade.Path("") || order[1] != "PUT /api/v1/nodes/https:s1:6446/proxy/cairn/v1/blobs/"+sys ||
		order[7] != "PUT "+upgrade.Path("upgrade-20261130-100000")+"/status" {
		t.Errorf("requests that write, in order:\n%s", strings.Join(order, "\n"))
	}
}

func TestUpgradeFailed(t *testing.T) {
	quick(t)
	f, kc := newFakeAPI(t, threeNodes...)
	bad := node("s1", upgrade.Failed, "01:00", "01:12", "01:21")
	bad.Reason = "kubelet not Ready within 15m0s; booted v1 again"
	f.script = []upgrade.Status{
		{Phase: upgrade.Running, Nodes: []upgrade.NodeStatus{node("s1", upgrade.Verifying, "01:00", "01:12", "01:21")}},
		{Phase: upgrade.Running, Nodes: []upgrade.NodeStatus{func() upgrade.NodeStatus {
			n := node("s1", upgrade.RollingBack, "01:00", "01:12", "01:21")
			n.Reason = bad.Reason
			return n
		}()}},
		{Phase: upgrade.Failed, Message: "node s1: " + bad.Reason, Nodes: []upgrade.NodeStatus{bad}},
	}
	code, stdout, _ := runCairn(t, "", "upgrade", "--kubeconfig", kc, "--image", writeBundle(t, "qemu-x86_64", "amd64", "v2"), "--nodes", "s1,a1")
	want := `upgrade: s1: Verifying
upgrade: s1: RollingBack: kubelet not Ready within 15m0s; booted v1 again
upgrade: s1: Failed: kubelet not Ready within 15m0s; booted v1 again
upgrade upgrade-20261130-100000: Failed: node s1: kubelet not Ready within 15m0s; booted v1 again
`
	if code != 1 || stdout != want {
		t.Errorf("exit status %d, stdout:\n%s\nwant 1 and:\n%s", code, stdout, want)
	}
	if n := f.only(t).Spec.Nodes; strings.Join(n, ",") != "s1,a1" {
		t.Errorf("nodes %q, want s1,a1 as given", n)
	}
}

// TestUpgradeRefusals: what is refused before anything is written to the
// cluster, each with a line that says why.
func TestUpgradeRefusals(t *testing.T) {
	quick(t)
	x86 := writeBundle(t, "qemu-x86_64", "amd64", "v2")
	damaged := writeBundle(t, "qemu-x86_64", "amd64", "v2")
	must(t, os.WriteFile(filepath.Join(damaged, "update", upgrade.KernelFile), []byte("half"), 0o644))
	for _, c := range []struct {
		name    string
		running *upgrade.Upgrade
		nodes   []fakeNode
		args    []string
		want    string
	}{
		{name: "one is running", running: &upgrade.Upgrade{Metadata: upgrade.Metadata{Name: "upgrade-20261129-090000"}, Status: upgrade.Status{Phase: upgrade.Running}},
			args: []string{"--image", x86}, want: "upgrade upgrade-20261129-090000 is Running; one upgrade at a time"},
		{name: "one never started", running: &upgrade.Upgrade{Metadata: upgrade.Metadata{Name: "upgrade-20261129-090000"}},
			args: []string{"--image", x86}, want: "upgrade upgrade-20261129-090000 was never started"},
		{name: "unknown node", args: []string{"--image", x86, "--nodes", "s1,s9"}, want: "--nodes: the cluster has no node s9 (it has s1, s2, a1)"},
		{name: "two bundles for a board", args: []string{"--image", x86, "--image", writeBundle(t, "qemu-x86_64", "amd64", "v3")}, want: "two bundles for board qemu-x86_64"},
		{name: "no bundle for an arch", nodes: []fakeNode{{"s1", "amd64", true}, {"a1", "arm64", false}}, args: []string{"--image", x86}, want: "node a1 is arm64 and no --image is for arm64"},
		{name: "missing deployment", args: []string{"--image", x86, "--check-deployment", "default/web"}, want: "--check-deployment default/web: there is no such Deployment"},
		{name: "damaged bundle", args: []string{"--image", damaged}, want: "vmlinuz is 4 bytes with sha256"},
		{name: "not a bundle", args: []string{"--image", t.TempDir()}, want: "no update.json in it or in its update/"},
	} {
		t.Run(c.name, func(t *testing.T) {
			nodes := c.nodes
			if nodes == nil {
				nodes = threeNodes
			}
			f, kc := newFakeAPI(t, nodes...)
			if c.running != nil {
				c.running.Metadata.CreationTimestamp = "2026-11-29T09:00:00Z"
				f.upgrades[c.running.Metadata.Name] = c.running
			}
			code, _, stderr := runCairn(t, "", append([]string{"upgrade", "--kubeconfig", kc}, c.args...)...)
			if code != 1 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit status %d, stderr %q; want 1 and %q", code, stderr, c.want)
			}
			if w := f.did("POST"); len(w) != 0 {
				t.Errorf("wrote %q", w)
			}
		})
	}
}

// TestUpgradeUploadFails: a server that cannot take the files fails the
// upgrade before it starts, and the Upgrade is removed so the next one may
// run.
func TestUpgradeUploadFails(t *testing.T) {
	quick(t)
	f, kc := newFakeAPI(t, threeNodes...)
	f.failBlobs = true
	code, _, stderr := runCairn(t, "", "upgrade", "--kubeconfig", kc, "--image", writeBundle(t, "qemu-x86_64", "amd64", "v2"))
	if code != 1 || !strings.Contains(stderr, "connection refused; upgrade upgrade-20261130-100000 removed, no node was touched") {
		t.Errorf("exit status %d, stderr %q", code, stderr)
	}
	if len(f.upgrades) != 0 {
		t.Errorf("%d upgrades left", len(f.upgrades))
	}
}

// TestUpgradeStartLost: when the reply to the start is lost but the
// Upgrade runs, it is left running (nodes may be acting on it).
func TestUpgradeStartLost(t *testing.T) {
	quick(t)
	f, kc := newFakeAPI(t, threeNodes...)
	f.loseStart = true
	code, _, stderr := runCairn(t, "", "upgrade", "--kubeconfig", kc, "--image", writeBundle(t, "qemu-x86_64", "amd64", "v2"))
	if code != 1 || !strings.Contains(stderr, "request timed out; upgrade upgrade-20261130-100000 was started all the same and goes on: follow it with cairn upgrade status") {
		t.Errorf("exit status %d, stderr %q", code, stderr)
	}
	if u := f.only(t); u.Status.Phase != upgrade.Running {
		t.Errorf("phase %q, want Running", u.Status.Phase)
	}
}

// TestUpgradeFromURL: a bundle served over HTTP is named by its URL in
// the Upgrade and nothing is uploaded; --detach returns once it runs.
func TestUpgradeFromURL(t *testing.T) {
	quick(t)
	f, kc := newFakeAPI(t, threeNodes...)
	dir := writeBundle(t, "qemu-x86_64", "amd64", "v2")
	web := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer web.Close()
	code, stdout, stderr := runCairn(t, "", "upgrade", "--kubeconfig", kc, "--image", web.URL, "--detach")
	if code != 0 || stdout != "" || !strings.Contains(stderr, "follow it with: cairn upgrade status --kubeconfig "+kc+" --follow upgrade-20261130-100000") {
		t.Fatalf("exit status %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	u := f.only(t)
	if src := u.Spec.Images[0].Source; src != web.URL+"/update/" || u.Status.Phase != upgrade.Running {
		t.Errorf("source %q, phase %q; want %s/update/ and Running", src, u.Status.Phase, web.URL)
	}
	if w := f.did("PUT /api/v1/nodes/"); len(w) != 0 {
		t.Errorf("uploaded %q", w)
	}
}

func TestUpgradeStatus(t *testing.T) {
	quick(t)
	f, kc := newFakeAPI(t, threeNodes...)
	if code, stdout, _ := runCairn(t, "", "upgrade", "status", "--kubeconfig", kc); code != 0 || stdout != "no upgrade in the cluster (namespace cairn-system)\n" {
		t.Errorf("no upgrade: exit status %d, stdout %q", code, stdout)
	}
	old := &upgrade.Upgrade{Metadata: upgrade.Metadata{Name: "upgrade-20261129-090000", CreationTimestamp: "2026-11-29T09:00:00Z"}, Status: upgrade.Status{Phase: upgrade.Succeeded}}
	bad := node("s2", upgrade.Failed, "08:33", "08:40", "08:50", "09:30", "24:00")
	bad.Reason = "Deployment default/web not available within 15m0s"
	u := &upgrade.Upgrade{
		Metadata: upgrade.Metadata{Name: "upgrade-20261130-100000", CreationTimestamp: "2026-11-30T10:00:00Z"},
		Spec: upgrade.Spec{Nodes: []string{"s1", "s2", "a1"}, MaxUnavailable: 1, Checks: []upgrade.Check{{Deployment: "default/web"}},
			Images: []upgrade.Image{{Bundle: upgrade.Bundle{Board: "qemu-x86_64", Arch: "amd64", Version: "v2"}}}},
		Status: upgrade.Status{Phase: upgrade.Failed, Message: "node s2: " + bad.Reason, Nodes: []upgrade.NodeStatus{
			node("s1", upgrade.Succeeded, "01:00", "01:12", "01:21", "03:00", "08:32"), bad}},
	}
	f.upgrades[old.Metadata.Name], f.upgrades[u.Metadata.Name] = old, u
	code, stdout, stderr := runCairn(t, "", "upgrade", "status", "--kubeconfig", kc)
	want := `upgrade-20261130-100000: Failed: node s2: Deployment default/web not available within 15m0s
created 2026-11-30T10:00:00Z; max unavailable 1, drain timeout 10m0s, health timeout 15m0s
image: qemu-x86_64 v2 (amd64), files from the servers
check: deployment default/web available
NODE  PHASE      VERSION  DRAIN  WRITE  REBOOT+HEALTHY  REASON
s1    Succeeded  v1 → v2  12s    9s     431s
s2    Failed     v1 → v2  7s     10s    910s            Deployment default/web not available within 15m0s
a1    Pending
`
	if code != 0 || stdout != want {
		t.Errorf("exit status %d, stderr %q, stdout:\n%s\nwant:\n%s", code, stderr, stdout, want)
	}
	code, stdout, _ = runCairn(t, "", "upgrade", "status", "--kubeconfig", kc, old.Metadata.Name)
	if code != 0 || !strings.HasPrefix(stdout, "upgrade-20261129-090000: Succeeded\n") {
		t.Errorf("status NAME: exit status %d, stdout %q", code, stdout)
	}
	code, _, stderr = runCairn(t, "", "upgrade", "status", "--kubeconfig", kc, "upgrade-nope")
	if code != 1 || !strings.Contains(stderr, "no upgrade upgrade-nope in namespace cairn-system") {
		t.Errorf("status of a missing upgrade: exit status %d, stderr %q", code, stderr)
	}
}

// TestUpgradeFollowInterrupted: Ctrl-C stops following, says the upgrade
// goes on and how to follow it again.
func TestUpgradeFollowInterrupted(t *testing.T) {
	quick(t)
	f, kc := newFakeAPI(t, threeNodes...)
	f.upgrades["upgrade-20261130-100000"] = &upgrade.Upgrade{Metadata: upgrade.Metadata{Name: "upgrade-20261130-100000"}, Status: upgrade.Status{Phase: upgrade.Running}}
	k, err := openKube(kc)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr strings.Builder
	err = followUpgrade(ctx, &stdout, &stderr, k, "upgrade-20261130-100000", "cairn upgrade status --kubeconfig KC --follow upgrade-20261130-100000")
	want := "cairn upgrade: stopped following; upgrade upgrade-20261130-100000 goes on in the cluster. Follow it with: cairn upgrade status --kubeconfig KC --follow upgrade-20261130-100000\n"
	if err != errReported || stderr.String() != want {
		t.Errorf("error %v, stderr %q; want errReported and %q", err, stderr.String(), want)
	}
}
