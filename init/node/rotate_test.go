package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/join/jointest"
	"github.com/cairn-os/cairn/init/node/pki"
	"github.com/cairn-os/cairn/init/node/render"
)

func newToken(t *testing.T) string {
	t.Helper()
	tok, err := join.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestReseal, on etcd and on kine: two servers told of a new server token
// at once re-seal the record once between them (compare-and-swap), the
// other finds it re-sealed; the record holds what it held, every clear
// field kept but its salt, and opens with the new token only. Told again,
// nothing changes; a server of another token is refused; a server not
// told finds the record no longer opens with its token.
func TestReseal(t *testing.T) {
	for _, ds := range []struct {
		name  string
		start func(*testing.T) *clientv3.Client
	}{{"etcd", startEtcd}, {"kine", startKine}} {
		t.Run(ds.name, func(t *testing.T) {
			cli := ds.start(t)
			ctx := context.Background()
			old, nw := newToken(t), newToken(t)
			res, err := claim(ctx, cli, old, testSettings)
			if err != nil || !res.Created {
				t.Fatalf("claim: %v", err)
			}
			before := rawRecord(t, cli)
			res2, err := claim(ctx, cli, old, testSettings)
			if err != nil {
				t.Fatal(err)
			}
			servers := []*atRest{
				{secret: old, key: res.Key, salt: res.Salt, ring: res.Ring},
				{secret: old, key: res2.Key, salt: res2.Salt, ring: res2.Ring},
			}
			var wg sync.WaitGroup
			sealed := make([]bool, 2)
			errs := make([]error, 2)
			for i, a := range servers {
				wg.Go(func() { sealed[i], errs[i] = a.reseal(ctx, cli, nw) })
			}
			wg.Wait()
			if errs[0] != nil || errs[1] != nil {
				t.Fatalf("reseal: %v, %v", errs[0], errs[1])
			}
			if sealed[0] == sealed[1] {
				t.Errorf("sealed = %v; exactly one server re-seals", sealed)
			}
			after := rawRecord(t, cli)
			if after.Version != before.Version || !maps.Equal(after.Settings, before.Settings) || after.KDF != before.KDF ||
				after.Time != before.Time || after.Memory != before.Memory || after.Threads != before.Threads {
				t.Errorf("the record's clear fields changed: %+v, was %+v", after, before)
			}
			if bytes.Equal(after.Salt, before.Salt) || bytes.Equal(after.Nonce, before.Nonce) {
				t.Error("re-sealed under the old salt or nonce")
			}
			opened, err := after.open(nw)
			if err != nil {
				t.Fatalf("the re-sealed record with the new token: %v", err)
			}
			if len(opened) != len(res.PKI) {
				t.Errorf("the record holds %d entries, held %d", len(opened), len(res.PKI))
			}
			for name, p := range res.PKI {
				if !bytes.Equal(opened[name].Cert, p.Cert) || !bytes.Equal(opened[name].Key, p.Key) {
					t.Errorf("%s changed when the record was re-sealed", name)
				}
			}
			if _, err := after.open(old); !errors.Is(err, errWrongToken) {
				t.Errorf("the old token opens the re-sealed record: %v", err)
			}
			for i, a := range servers {
				if a.secret != nw || !bytes.Equal(a.salt, after.Salt) {
					t.Errorf("server %d does not open the record with the new token now", i)
				}
			}

			// Again: nothing to do, nothing written.
			if sealed, err := servers[0].reseal(ctx, cli, nw); sealed || err != nil {
				t.Errorf("told again: sealed %v, %v", sealed, err)
			}
			if again := rawRecord(t, cli); !bytes.Equal(again.Sealed, after.Sealed) {
				t.Error("told again, the record was written")
			}
			// A keyring step still works, with the new token.
			if _, err := servers[1].update(ctx, cli, func(r *keyring) bool { r.Rotation = "test"; return true }); err != nil {
				t.Errorf("a keyring step after the rotation: %v", err)
			}
			// Another token: neither opens it.
			stray := &atRest{secret: newToken(t)}
			if _, err := stray.reseal(ctx, cli, newToken(t)); !errors.Is(err, errNeitherToken) {
				t.Errorf("a server of a third token: %v; want errNeitherToken", err)
			}
			// A server not told: its next keyring step says so.
			late := &atRest{secret: old, key: res.Key, salt: res.Salt}
			if err := late.refresh(ctx, cli); !errors.Is(err, errTokenRotated) || !strings.Contains(err.Error(), "cairn token rotate") {
				t.Errorf("a server not told: %v; want errTokenRotated", err)
			}
		})
	}
}

// fakeAdminAPI is a server's own apiserver as a rotation uses it: it
// applies objects, lists and deletes bootstrap token Secrets, and answers
// access reviews (denied for the user "denied").
type fakeAdminAPI struct {
	mu      sync.Mutex
	objects map[string][]byte // by path
}

func (f *fakeAdminAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	const secrets = "/api/v1/namespaces/kube-system/secrets"
	switch {
	case r.Method == http.MethodPatch:
		body, _ := io.ReadAll(r.Body)
		f.objects[r.URL.Path] = body
		w.Write(body)
	case r.Method == http.MethodGet && r.URL.Path == secrets:
		var items []map[string]any
		for p := range f.objects {
			if n, ok := strings.CutPrefix(p, secrets+"/"); ok && strings.HasPrefix(n, bootstrapPrefix) {
				items = append(items, map[string]any{"metadata": map[string]string{"name": n}})
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"items": items})
	case r.Method == http.MethodDelete && f.objects[r.URL.Path] != nil:
		delete(f.objects, r.URL.Path)
		w.Write([]byte("{}"))
	case r.Method == http.MethodPost && r.URL.Path == "/apis/authorization.k8s.io/v1/subjectaccessreviews":
		var review struct {
			Spec struct {
				User   string
				Groups []string
			}
		}
		json.NewDecoder(r.Body).Decode(&review)
		allowed := review.Spec.User != "denied"
		json.NewEncoder(w).Encode(map[string]any{"status": map[string]any{"allowed": allowed}})
	default:
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"kind":"Status","code":404}`))
	}
}

func (f *fakeAdminAPI) has(path string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.objects[path] != nil
}

func (f *fakeAdminAPI) object(path string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.objects[path]
}

// rotateBed is a cluster on etcd made with the tokens old and agentOld,
// its own apiserver a fake, and a server of it to be made with newServer.
type rotateBed struct {
	cli           *clientv3.Client
	res           *claimResult
	api           *fakeAdminAPI
	base          config.Kubernetes
	old, agentOld string
	lines         map[string]*[]string
}

func newRotateBed(t *testing.T) *rotateBed {
	t.Helper()
	b := &rotateBed{cli: startEtcd(t), old: newToken(t), agentOld: newToken(t), lines: map[string]*[]string{},
		base: config.Kubernetes{Role: "server", ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local"}}
	k := b.base
	k.AgentToken = b.agentOld
	var err error
	if b.res, err = claim(context.Background(), b.cli, b.old, mustMatch(&k)); err != nil {
		t.Fatal(err)
	}
	c := b.res.PKI
	serving, err := c.Issue(pki.ServerCA, pki.Leaf{CommonName: "kube-apiserver", Server: true, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(serving.Cert, serving.Key)
	if err != nil {
		t.Fatal(err)
	}
	b.api = &fakeAdminAPI{objects: map[string][]byte{}}
	for _, o := range published(b.old, b.agentOld, testKDF, c[pki.ServerCA].Cert, c[pki.ClientCA].Cert) {
		if o["type"] == bootstrapType {
			data, _ := json.Marshal(o)
			b.api.objects["/api/v1/namespaces/kube-system/secrets/"+o["metadata"].(map[string]any)["name"].(string)] = data
		}
	}
	srv := httptest.NewUnstartedServer(b.api)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	was := apiserverLocal
	apiserverLocal = srv.URL
	t.Cleanup(func() { apiserverLocal = was })
	return b
}

// newServer is a server named name of the cluster whose config names
// token and agent and whose STATE is dir; it read the record at boot.
func (b *rotateBed) newServer(t *testing.T, name, token, agent, dir string) *server {
	t.Helper()
	k := b.base
	k.Token, k.AgentToken = token, agent
	cfg := &config.Config{Kubernetes: k}
	lines := &[]string{}
	b.lines[name] = lines
	l := render.Layout{DataDir: dir, CertDir: filepath.Join(dir, "pki"), KubeconfigDir: filepath.Join(dir, "kubeconfig")}
	s := &server{o: Options{Config: cfg, Hostname: name, Layout: l, Printf: func(f string, a ...any) {
		*lines = append(*lines, fmt.Sprintf(f, a...))
		t.Logf("%s: "+f, append([]any{name}, a...)...)
	}}, k: &cfg.Kubernetes, l: l, tok: join.Token{Secret: token}, agentSecret: agent}
	s.rest = &atRest{ds: clientv3.Config{Endpoints: b.cli.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()},
		secret: token, key: b.res.Key, salt: b.res.Salt, ring: b.res.Ring}
	var err error
	if s.admin, err = newSelfAdmin(b.res.PKI, name, time.Now); err != nil {
		t.Fatal(err)
	}
	return s
}

// adminCert is a certificate of the admins' group named cn.
func (b *rotateBed) adminCert(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	p, err := b.res.PKI.Issue(pki.ClientCA, pki.Leaf{CommonName: cn, Organization: []string{join.AdminsGroup}, Client: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pair, _ := tls.X509KeyPair(p.Cert, p.Key)
	cert, _ := x509.ParseCertificate(pair.Certificate[0])
	return cert
}

// TestRotateOnServers: a rotation of the server token and of the agent
// token as two servers take it, then the boots that follow: the first
// server re-seals (or records), the second finds it done, each keeps the
// token 0600, publishes the new bootstrap token and proof and the old
// bootstrap token is gone; each says one line, naming no token. A server
// whose config names the old tokens boots with the ones its STATE kept
// and says the config is stale; without them it is refused; one whose
// config names the new ones just boots.
func TestRotateOnServers(t *testing.T) {
	b := newRotateBed(t)
	ctx := context.Background()
	c := b.res.PKI
	ca := c[pki.ServerCA].Cert
	admin := b.adminCert(t, "cairn-admin-0123abcd")
	d1, d2 := t.TempDir(), t.TempDir()
	s1 := b.newServer(t, "s1", b.old, b.agentOld, d1)
	s2 := b.newServer(t, "s2", b.old, b.agentOld, d2)
	nw, agentNew := newToken(t), newToken(t)
	secrets := "/api/v1/namespaces/kube-system/secrets/" + bootstrapPrefix
	oldID, _ := join.ServerBootstrapToken(b.old)
	newID, _ := join.ServerBootstrapToken(nw)
	agentOldID, _ := join.AgentBootstrapToken(b.agentOld)
	agentNewID, _ := join.AgentBootstrapToken(agentNew)

	// The server token.
	reply, line, err := s1.rotate(ctx, c, admin, join.RotateRequest{Role: join.RoleServer, Token: nw})
	if err != nil {
		t.Fatal(err)
	}
	if reply.Node != "s1" || !reply.Sealed || reply.Bootstrap != newID || len(reply.Removed) != 1 || reply.Removed[0] != oldID {
		t.Errorf("s1 answered %+v; want sealed, bootstrap token %s, %s removed", reply, newID, oldID)
	}
	want := fmt.Sprintf("node: the server token was rotated (cairn token rotate, by cairn-admin-0123abcd): this server re-sealed the cluster record with it; bootstrap token %s replaces %s; the CA proof is published under it; kept in %s/token", newID, oldID, d1)
	if line != want {
		t.Errorf("s1's line:\n%s\nwant:\n%s", line, want)
	}
	if b.api.has(secrets+oldID) || !b.api.has(secrets+newID) || !b.api.has(secrets+agentOldID) {
		t.Errorf("bootstrap tokens: old %v, new %v, agents' %v; want the old one gone, the others there", b.api.has(secrets+oldID), b.api.has(secrets+newID), b.api.has(secrets+agentOldID))
	}
	var cm struct{ Data map[string]string }
	json.Unmarshal(b.api.object("/api/v1/namespaces/kube-public/configmaps/"+join.CAConfigMap), &cm)
	kdf, _ := join.ParseKDF(cm.Data[join.KDFKey])
	if cm.Data[join.ServerProofKey] != join.Proof(kdf.Key(nw), ca, c[pki.ClientCA].Cert) {
		t.Error("the CA proof is not published under the new server token")
	}
	kept, err := os.ReadFile(filepath.Join(d1, "token"))
	fi, _ := os.Stat(filepath.Join(d1, "token"))
	if err != nil || string(kept) != join.Full(nw, ca)+"\n" || fi.Mode().Perm() != 0o600 {
		t.Errorf("s1's token file: %v, mode %v; want the new token, 0600", err, fi.Mode().Perm())
	}
	if s1.secret() != nw || s1.rest.secret != nw {
		t.Error("s1 does not hold the new token")
	}
	reply, line, err = s2.rotate(ctx, c, admin, join.RotateRequest{Role: join.RoleServer, Token: nw})
	if err != nil || reply.Sealed || len(reply.Removed) != 0 || !strings.Contains(line, "the cluster record, re-sealed already, opens with it here") {
		t.Errorf("s2: %+v, %q, %v; want it to find the record re-sealed", reply, line, err)
	}
	if reply, _, err = s1.rotate(ctx, c, admin, join.RotateRequest{Role: join.RoleServer, Token: nw}); err != nil || reply.Sealed {
		t.Errorf("s1 told again: %+v, %v; want nothing done", reply, err)
	}

	// Refused, each before anything changes.
	denied := b.adminCert(t, "denied")
	for _, tt := range []struct {
		name string
		req  join.RotateRequest
		who  *x509.Certificate
		code int
		want string
	}{
		{"a weak token", join.RotateRequest{Role: join.RoleServer, Token: "Winter2026!"}, admin, 400, "too weak"},
		{"no role", join.RotateRequest{Token: newToken(t)}, admin, 400, "names no token"},
		{"the agent token as server token", join.RotateRequest{Role: join.RoleServer, Token: b.agentOld}, admin, 400, "is the cluster's agent token"},
		{"the server token as agent token", join.RotateRequest{Role: join.RoleAgent, Token: nw}, admin, 400, "is the server token"},
		{"a K10 token of another CA", join.RotateRequest{Role: join.RoleServer, Token: join.Full(newToken(t), []byte("another CA"))}, admin, 400, "pins another CA"},
		{"an admin whose binding is gone", join.RotateRequest{Role: join.RoleServer, Token: newToken(t)}, denied, 403, "may not delete Secrets in kube-system"},
	} {
		_, _, err := s1.rotate(ctx, c, tt.who, tt.req)
		var re *rotateError
		if !errors.As(err, &re) || re.code != tt.code || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want %d saying %q", tt.name, err, tt.code, tt.want)
		}
	}
	if _, err := rawRecord(t, b.cli).open(nw); err != nil || s1.secret() != nw {
		t.Errorf("after the refusals the record does not open with the new token: %v", err)
	}

	// The agent token.
	reply, line, err = s1.rotate(ctx, c, admin, join.RotateRequest{Role: join.RoleAgent, Token: agentNew})
	if err != nil || !reply.Sealed || reply.Bootstrap != agentNewID || len(reply.Removed) != 1 || reply.Removed[0] != agentOldID {
		t.Fatalf("s1, agent token: %+v, %v; want recorded, %s in place of %s", reply, err, agentNewID, agentOldID)
	}
	if !strings.Contains(line, "node: the agent token was rotated (cairn token rotate --agent, by cairn-admin-0123abcd): this server recorded it in the cluster record") {
		t.Errorf("s1's line: %s", line)
	}
	if got := rawRecord(t, b.cli).Settings["agent-token"]; got != bootstrapPrefix+agentNewID {
		t.Errorf("the record's agent-token setting is %q; want %q", got, bootstrapPrefix+agentNewID)
	}
	if b.api.has(secrets+agentOldID) || !b.api.has(secrets+agentNewID) || !b.api.has(secrets+newID) {
		t.Error("the agents' old bootstrap token is still there, or a new one is missing")
	}
	bootstrapConf, _ := os.ReadFile(filepath.Join(d1, "kubeconfig", "bootstrap-kubelet.conf"))
	if !strings.Contains(string(bootstrapConf), "token: "+agentNewID+".") {
		t.Errorf("s1's kubelet bootstrap kubeconfig does not ask with the new agents' bootstrap token:\n%s", bootstrapConf)
	}
	if reply, _, err = s2.rotate(ctx, c, admin, join.RotateRequest{Role: join.RoleAgent, Token: agentNew}); err != nil || reply.Sealed {
		t.Errorf("s2, agent token: %+v, %v; want it found recorded", reply, err)
	}

	// Boots that follow. A config naming the old tokens, STATE keeping
	// the rotated ones: stale, said once each.
	d3 := t.TempDir()
	for _, f := range []string{"token", "agent-token"} {
		data, _ := os.ReadFile(filepath.Join(d1, f))
		os.WriteFile(filepath.Join(d3, f), data, 0o600)
	}
	s3 := b.newServer(t, "s3", b.old, b.agentOld, d3)
	res, err := s3.claimRotated(ctx, b.cli)
	if err != nil {
		t.Fatalf("a boot with the old tokens in the config and the new ones kept: %v", err)
	}
	s3.useRotatedTokens(res)
	if s3.secret() != nw || s3.agentToken() != agentNew {
		t.Error("s3 does not use the rotated tokens")
	}
	if diffs := settingsDiffer(s3.mustMatch(), res.Settings); len(diffs) > 0 {
		t.Errorf("s3 differs from the cluster: %v", diffs)
	}
	for _, want := range []string{
		"node: the token in kubernetes.token is stale: the server token was rotated (cairn token rotate); this server opened the cluster with the rotated one it keeps in " + d3 + "/token. Put that one in the config",
		"node: the agent token in kubernetes.agent-token is stale: the agent token was rotated (cairn token rotate --agent); this server uses the rotated one it keeps in " + d3 + "/agent-token. Put that one in the config",
	} {
		if n := countOf(*b.lines["s3"], want); n != 1 {
			t.Errorf("s3 says %d times %q; want once. It said:\n%s", n, want, strings.Join(*b.lines["s3"], "\n"))
		}
	}
	// Without them: the old token opens nothing.
	s4 := b.newServer(t, "s4", b.old, b.agentOld, t.TempDir())
	if _, err := s4.claimRotated(ctx, b.cli); !errors.Is(err, errWrongToken) {
		t.Errorf("a boot with the old token and nothing kept: %v; want errWrongToken", err)
	}
	// A config naming the new tokens: nothing to say.
	s5 := b.newServer(t, "s5", nw, agentNew, t.TempDir())
	res, err = s5.claimRotated(ctx, b.cli)
	if err != nil {
		t.Fatal(err)
	}
	s5.useRotatedTokens(res)
	if diffs := settingsDiffer(s5.mustMatch(), res.Settings); len(diffs) > 0 || len(*b.lines["s5"]) != 0 {
		t.Errorf("a config with the new tokens: differs %v, said %v", diffs, *b.lines["s5"])
	}
	// A config naming the old agent token and nothing kept: refused by
	// the must-match check, naming the setting.
	s6 := b.newServer(t, "s6", nw, b.agentOld, t.TempDir())
	res, err = s6.claimRotated(ctx, b.cli)
	if err != nil {
		t.Fatal(err)
	}
	s6.useRotatedTokens(res)
	if diffs := settingsDiffer(s6.mustMatch(), res.Settings); len(diffs) != 1 || !strings.Contains(diffs[0], "kubernetes.agent-token") {
		t.Errorf("the old agent token, nothing kept: %v; want agent-token to differ", diffs)
	}

	for name, lines := range b.lines {
		for _, l := range *lines {
			for _, secret := range []string{b.old, b.agentOld, nw, agentNew} {
				if strings.Contains(l, secret) {
					t.Errorf("%s's console shows a token: %s", name, l)
				}
			}
		}
	}
}

func countOf(lines []string, want string) int {
	n := 0
	for _, l := range lines {
		if l == want {
			n++
		}
	}
	return n
}

// An agent that kept its kubelet's certificate and the CAs it verified
// rejoins with them: not when the certificate is another node's, another
// CA's, about to end, or missing.
func TestAgentKeptCredentials(t *testing.T) {
	now := time.Now()
	c, err := pki.NewCluster(now)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := pki.NewCluster(now)
	issue := func(c pki.Cluster, cn string, at time.Time, life time.Duration) []byte {
		p, err := c.Issue(pki.ClientCA, pki.Leaf{CommonName: cn, Organization: []string{"system:nodes"}, Client: true, Lifetime: life}, at)
		if err != nil {
			t.Fatal(err)
		}
		return append(p.Cert, p.Key...)
	}
	for _, tt := range []struct {
		name string
		cert []byte
		ok   bool
	}{
		{"its own, valid", issue(c, "system:node:a1", now, 0), true},
		{"another node's", issue(c, "system:node:a2", now, 0), false},
		{"another cluster's", issue(other, "system:node:a1", now, 0), false},
		{"ending in five minutes", issue(c, "system:node:a1", now, 5*time.Minute), false},
		{"none", nil, false},
	} {
		dir := t.TempDir()
		l := render.Layout{DataDir: dir, CertDir: filepath.Join(dir, "pki"), KubeletDir: filepath.Join(dir, "kubelet")}
		os.MkdirAll(filepath.Join(l.KubeletDir, "pki"), 0o700)
		os.MkdirAll(l.CertDir, 0o700)
		os.WriteFile(l.Cert("server-ca.crt"), c[pki.ServerCA].Cert, 0o644)
		os.WriteFile(l.Cert("client-ca.crt"), c[pki.ClientCA].Cert, 0o644)
		if tt.cert != nil {
			os.WriteFile(filepath.Join(l.KubeletDir, "pki", "kubelet-client-current.pem"), tt.cert, 0o600)
		}
		a := &agent{l: l}
		serving, clientCA, until, ok := a.keptCredentials("a1")
		if ok != tt.ok {
			t.Errorf("%s: rejoins with it: %v; want %v", tt.name, ok, tt.ok)
		}
		if ok && (!bytes.Equal(serving, c[pki.ServerCA].Cert) || !bytes.Equal(clientCA, c[pki.ClientCA].Cert) || until.Before(now.Add(300*24*time.Hour))) {
			t.Errorf("%s: the kept CAs or the certificate's end (%s) are not what was kept", tt.name, until)
		}
	}
}

// An agent whose certificate is gone and whose token the servers no
// longer prove (rotated since) starts nothing and says so in one line,
// however often it tries again, without the token.
func TestAgentStaleTokenOneLine(t *testing.T) {
	srv := jointest.New(t, "server-s3cret", "agent-rotated")
	was := wrongTokenRetry
	wrongTokenRetry = 10 * time.Millisecond
	t.Cleanup(func() { wrongTokenRetry = was })
	dir := t.TempDir()
	l := render.Layout{DataDir: dir, CertDir: filepath.Join(dir, "pki"), KubeletDir: filepath.Join(dir, "kubelet")}
	var mu sync.Mutex
	var lines []string
	cfg := &config.Config{Kubernetes: config.Kubernetes{Role: "agent", AgentToken: "agent-before-rotation", Server: srv.URL}}
	a := &agent{o: Options{Config: cfg, Hostname: "a1", Layout: l, Printf: func(f string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(f, args...))
	}}, k: &cfg.Kubernetes}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := a.run(ctx); !errors.Is(err, errStopped) {
		t.Errorf("run: %v; want it stopped, never past the join", err)
	}
	mu.Lock()
	defer mu.Unlock()
	var said []string
	for _, l := range lines {
		if strings.HasPrefix(l, "node: not joining: ") {
			said = append(said, l)
		}
		if strings.Contains(l, "agent-before-rotation") {
			t.Errorf("a line shows the token: %s", l)
		}
	}
	if len(said) != 1 || !strings.Contains(said[0], "the server's CA does not match the token") || !strings.Contains(said[0], "cairn token rotate") || !strings.Contains(said[0], "starts no kubelet") {
		t.Errorf("the agent said:\n%s\nwant one line naming the token, cairn token rotate and that no kubelet starts", strings.Join(lines, "\n"))
	}
}

// The admin port's handler: a request that is not a rotation's, a weak
// token, one while another runs are answered with what is wrong and one
// console line each, naming who asked; a rotation answers its reply.
func TestServeRotate(t *testing.T) {
	b := newRotateBed(t)
	s1 := b.newServer(t, "s1", b.old, b.agentOld, t.TempDir())
	admin := b.adminCert(t, "cairn-admin-0123abcd")
	serve := func(body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, join.RotatePath, strings.NewReader(body))
		r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{admin}}}
		w := httptest.NewRecorder()
		s1.serveRotate(w, r, b.res.PKI)
		return w
	}
	if w := serve("{"); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "not a token rotation's JSON") {
		t.Errorf("a body that is not JSON: %d %q", w.Code, w.Body)
	}
	if w := serve(`{"role":"server","token":"` + strings.Repeat("x", join.MaxRotateRequest) + `"}`); w.Code != http.StatusBadRequest {
		t.Errorf("a body over the bound: %d %q", w.Code, w.Body)
	}
	if w := serve(`{"role":"server","token":"Winter2026!"}`); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "too weak") {
		t.Errorf("a weak token: %d %q", w.Code, w.Body)
	}
	s1.rot.running.Lock()
	if w := serve(`{"role":"server","token":"` + newToken(t) + `"}`); w.Code != http.StatusConflict {
		t.Errorf("while another rotation runs: %d %q", w.Code, w.Body)
	}
	s1.rot.running.Unlock()
	nw := newToken(t)
	w := serve(`{"role":"server","token":"` + nw + `"}`)
	var reply join.RotateReply
	if err := json.Unmarshal(w.Body.Bytes(), &reply); w.Code != http.StatusOK || err != nil || !reply.Sealed || reply.Node != "s1" {
		t.Errorf("a rotation: %d %q", w.Code, w.Body)
	}
	lines := *b.lines["s1"]
	want := []string{
		"node: refused a rotation of the server token asked by cairn-admin-0123abcd: the new token is too weak",
		"node: the server token was rotated (cairn token rotate, by cairn-admin-0123abcd): this server re-sealed the cluster record with it",
	}
	if len(lines) != len(want) {
		t.Fatalf("s1 said:\n%s\nwant %d lines", strings.Join(lines, "\n"), len(want))
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]) || strings.Contains(l, nw) {
			t.Errorf("line %d: %s\nwant it to start %q, without the token", i, l, want[i])
		}
	}
}
