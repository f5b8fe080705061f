package node

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/join/jointest"
	"github.com/cairn-os/cairn/init/node/members"
	"github.com/cairn-os/cairn/init/node/pki"
	"github.com/cairn-os/cairn/init/node/render"
)

// Embedded etcd's peer port takes TLS with a certificate of the etcd CA
// both ways: the member's own certificate serves and presents for
// 127.0.0.1, and its key is 0600.
func TestEtcdPeerCertificate(t *testing.T) {
	dir := t.TempDir()
	l := render.Layout{DataDir: dir, CertDir: filepath.Join(dir, "pki")}
	cfg := &config.Config{}
	s := &server{o: Options{Config: cfg, Printf: t.Logf}, k: &cfg.Kubernetes, l: l}
	if err := s.etcdCerts(); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(l.Cert("etcd/ca.crt"))
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no etcd CA")
	}
	data, err := os.ReadFile(l.Cert("etcd/peer.crt"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("the peer certificate for %v: %v", usage, err)
		}
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("the peer certificate: %v", err)
	}
	if info, err := os.Stat(l.Cert("etcd/peer.key")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("etcd/peer.key: %v %v, want mode 0600", info, err)
	}
	if got := render.EtcdPeerURL(s.renderNode()); got != "https://"+net.JoinHostPort("127.0.0.1", "2380") {
		t.Errorf("the peer URL of a node with no address is %s", got)
	}
}

// tlsServer is a server of a test whose certificates etcdCerts made in a
// directory of its own, named name, at the address ip (loopback).
func tlsServer(t *testing.T, name, ip string, printf func(string, ...any)) *server {
	t.Helper()
	dir := t.TempDir()
	ports := freePorts(t, 1)
	l := render.Layout{DataDir: dir, CertDir: filepath.Join(dir, "pki"), EtcdDir: filepath.Join(dir, "etcd"),
		DatastoreListen: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	cfg := &config.Config{Kubernetes: config.Kubernetes{Role: "server", NodeName: name, NodeIP: ip}}
	s := &server{o: Options{Config: cfg, Printf: printf}, k: &cfg.Kubernetes, l: l, tok: join.Token{Secret: "s3cret"}}
	if err := s.etcdCerts(); err != nil {
		t.Fatal(err)
	}
	return s
}

// startTLSEtcd runs Debian's etcd as s's member, with the certificates
// etcdCerts made (clients and peers on TLS with certificates of the etcd
// CA), and returns the init's client config for it.
func startTLSEtcd(t *testing.T, s *server) clientv3.Config {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd is not installed (make deps installs etcd-server)")
	}
	peer := fmt.Sprintf("https://127.0.0.1:%d", freePorts(t, 1)[0])
	client := "https://" + s.l.DatastoreListen
	name := nodeName(s.o)
	cmd := exec.Command(bin, "--name="+name, "--data-dir="+s.l.EtcdDir,
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer, "--initial-cluster="+name+"="+peer,
		"--client-cert-auth", "--trusted-ca-file="+s.l.Cert("etcd/ca.crt"),
		"--cert-file="+s.l.Cert("etcd/server.crt"), "--key-file="+s.l.Cert("etcd/server.key"),
		"--peer-client-cert-auth", "--peer-trusted-ca-file="+s.l.Cert("etcd/ca.crt"),
		"--peer-cert-file="+s.l.Cert("etcd/peer.crt"), "--peer-key-file="+s.l.Cert("etcd/peer.key"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	tlsCfg, err := s.etcdClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientv3.Config{Endpoints: []string{client}, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(c, "probe")
		cancel()
		if err == nil {
			return cfg
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd did not answer on TLS: %v\n%s", err, out.String())
		}
	}
}

// The CA migration: a single server whose etcd CA an older cairn kept on
// the node moves it into the cluster record once, under the record's
// compare-and-swap, with everything else the record holds, and says so;
// the record then opens with the token and holds it (a token rotation
// keeps it); a server whose CA differs from the record's takes the
// record's. A member advertising an older peer URL is moved to the node's.
func TestEtcdCAMigration(t *testing.T) {
	ctx := context.Background()
	var out lines
	s := tlsServer(t, "s1", "127.0.0.1", out.printf)
	cfg := startTLSEtcd(t, s)
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	res, err := claim(ctx, cli, "s3cret", testSettings) // a record with no etcd CA, as an older cairn made it
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.PKI[etcdCAEntry]; ok {
		t.Fatal("a new record holds an etcd CA before the server put it there")
	}
	s.rest = &atRest{ds: cfg, secret: "s3cret", key: res.Key, salt: res.Salt, ring: res.Ring}
	local, _ := os.ReadFile(s.l.Cert("etcd/ca.crt"))
	if _, err := s.etcdAfterClaim(ctx, cfg, res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.all(), "etcd: this server's etcd CA is in the cluster record now") {
		t.Errorf("no line says the CA moved into the record:\n%s", out.all())
	}
	if !strings.Contains(out.all(), "etcd: this server's member s1 now advertises its peer port at https://127.0.0.1:2380") {
		t.Errorf("no line says the member's peer URL moved:\n%s", out.all())
	}
	r, _, err := readRecord(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.open("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if string(c[etcdCAEntry].Cert) != string(local) || string(c[pki.ServerCA].Cert) != string(res.PKI[pki.ServerCA].Cert) || c[ringEntry].Key == nil {
		t.Errorf("the record after the move does not hold the node's etcd CA and everything it held")
	}
	// Two servers racing to put different CAs end with one.
	other, _ := pki.NewCA("another", time.Now())
	var wg sync.WaitGroup
	got := make([]pki.Pair, 2)
	for i := range 2 {
		wg.Go(func() {
			a := &atRest{secret: "s3cret", key: res.Key, salt: res.Salt}
			got[i], _, _ = a.setEtcdCA(ctx, cli, other)
		})
	}
	wg.Wait()
	if string(got[0].Cert) != string(local) || string(got[1].Cert) != string(local) {
		t.Errorf("a record holding an etcd CA took another")
	}
	// A token rotation re-seals the record with the CA in it.
	if _, err := s.rest.reseal(ctx, cli, "n3w-s3cret"); err != nil {
		t.Fatal(err)
	}
	r, _, _ = readRecord(ctx, cli)
	if c, err := r.open("n3w-s3cret"); err != nil || string(c[etcdCAEntry].Cert) != string(local) {
		t.Errorf("after a token rotation the record lost the etcd CA: %v", err)
	}

	// A second server whose node-local CA is another takes the record's.
	s2 := tlsServer(t, "s2", "127.0.0.2", out.printf)
	s2.rest = s.rest
	s2.l.DatastoreListen = s.l.DatastoreListen
	res2 := &claimResult{PKI: pki.Cluster{}}
	cfg2, err := s2.etcdAfterClaim(ctx, cfg, res2)
	if err != nil {
		t.Fatal(err)
	}
	if mine, _ := os.ReadFile(s2.l.Cert("etcd/ca.crt")); string(mine) != string(local) {
		t.Errorf("the server whose etcd CA differed did not take the record's")
	}
	if !strings.Contains(out.all(), "it took the record's and restarted etcd with it") {
		t.Errorf("no line says the record's CA was taken:\n%s", out.all())
	}
	if cfg2.TLS == cfg.TLS {
		t.Errorf("the client config still trusts the old CA")
	}
}

// A server given server: joins through a running server: with the
// token it reads the record, takes the etcd CA, makes its certificates
// with it, and a voting member adds it as a learner over TLS; it says so.
// A server whose must-match settings differ is refused before it joins;
// a wrong token is told so.
func TestEtcdJoinThrough(t *testing.T) {
	ctx := context.Background()
	var out lines
	first := tlsServer(t, "s1", "127.0.0.1", out.printf)
	cfg := startTLSEtcd(t, first)
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	res, err := claim(ctx, cli, "s3cret", mustMatch(first.k))
	if err != nil {
		t.Fatal(err)
	}
	first.rest = &atRest{ds: cfg, secret: "s3cret", key: res.Key, salt: res.Salt, ring: res.Ring}
	if _, err := first.etcdAfterClaim(ctx, cfg, res); err != nil {
		t.Fatal(err)
	}
	raw, err := cli.Get(ctx, bootstrapKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := jointest.New(t, "s3cret", "")
	srv.SetRecord(raw.Kvs[0].Value, cfg.Endpoints[0])

	joiner := tlsServer(t, "s2", "127.0.0.2", out.printf)
	var key, salt []byte
	j, err := joiner.joinThrough(ctx, srv.URL, joiner.renderNode(), &key, &salt)
	if err != nil {
		t.Fatal(err)
	}
	firstCA, _ := os.ReadFile(first.l.Cert("etcd/ca.crt"))
	if mine, _ := os.ReadFile(joiner.l.Cert("etcd/ca.crt")); string(mine) != string(firstCA) {
		t.Error("the joiner does not hold the cluster's etcd CA")
	}
	if got := strings.Split(j.InitialCluster, ","); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"s1=https://127.0.0.1:2380", "s2=https://127.0.0.2:2380"}) {
		t.Errorf("the initial cluster is %q", j.InitialCluster)
	}
	ms, _ := members.List(ctx, cli, false)
	if len(ms) != 2 || !ms[1].Learner && !ms[0].Learner {
		t.Errorf("members after the join: %+v; want s1 and a learner", ms)
	}
	if !strings.Contains(out.all(), "etcd: joining embedded etcd through "+srv.URL+" as a learner (1 voting members); peer URL https://127.0.0.2:2380") {
		t.Errorf("no line says the server joins:\n%s", out.all())
	}

	differs := tlsServer(t, "s3", "127.0.0.3", out.printf)
	differs.k.ServiceCIDR = "10.99.0.0/16"
	if _, err := differs.joinThrough(ctx, srv.URL, differs.renderNode(), &key, &salt); !errors.Is(err, errMustMatch) {
		t.Errorf("a server with another service-cidr: %v; want it refused before joining", err)
	}
	wrong := tlsServer(t, "s4", "127.0.0.4", out.printf)
	wrong.tok = join.Token{Secret: "guess"}
	var k2, s2 []byte
	_, err = wrong.joinThrough(ctx, srv.URL, wrong.renderNode(), &k2, &s2)
	if reason := joinReason(err); !strings.HasPrefix(reason, "wrong token: ") {
		t.Errorf("a wrong token: %q; want it told", reason)
	}
	if ms, _ := members.List(ctx, cli, false); len(ms) != 2 {
		t.Errorf("refused servers changed the membership: %+v", ms)
	}
}

// lines collects console lines.
type lines struct {
	mu sync.Mutex
	l  []string
}

func (c *lines) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.l = append(c.l, fmt.Sprintf(format, args...))
}

func (c *lines) all() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.l, "\n")
}

// A server that had data keeps it while the cluster it reaches has its
// member (by name, whatever its address now), wipes it (one line) when
// the cluster has none, or when its member was marked removed while it
// ran (then without asking), and keeps it when no member answers.
func TestEtcdRemovedMemberWipes(t *testing.T) {
	ctx := context.Background()
	var out lines
	first := tlsServer(t, "s1", "127.0.0.1", out.printf)
	cfg := startTLSEtcd(t, first)
	peers := []string{cfg.Endpoints[0]}
	ca, _ := os.ReadFile(first.l.Cert("etcd/ca.crt"))
	caKey, _ := os.ReadFile(first.l.Cert("etcd/ca.key"))
	withData := func(name, ip string) *server {
		s := tlsServer(t, name, ip, out.printf)
		s.writePair("etcd/ca", pki.Pair{Cert: ca, Key: caKey})
		os.MkdirAll(filepath.Join(s.l.EtcdDir, "member"), 0o700)
		return s
	}
	for _, tt := range []struct {
		name, node string
		mark       bool
		peers      []string
		keep       bool
		line       string
	}{
		{"still a member, its address changed", "s1", false, peers, true, ""},
		{"not a member", "s9", false, peers, false, "the cluster at " + cfg.Endpoints[0] + " has no member of this server's"},
		{"marked removed", "s1", true, peers, false, "its member was removed from the cluster; it joins the cluster as a new member"},
		{"no member answers", "s9", false, []string{"https://127.0.0.1:1"}, true, ""},
	} {
		s := withData(tt.node, "127.0.0.9")
		if tt.mark {
			os.WriteFile(s.etcdRemovedFile(), []byte("removed\n"), 0o600)
		}
		before := len(out.all())
		data, err := s.keepEtcdData(ctx, s.renderNode(), tt.peers, true)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		said := out.all()[before:]
		if data != tt.keep || exists(filepath.Join(s.l.EtcdDir, "member")) != tt.keep {
			t.Errorf("%s: keeps its data: %v; want %v", tt.name, data, tt.keep)
		}
		if tt.line != "" && !strings.Contains(said, "etcd: wiped this server's etcd data ("+s.l.EtcdDir+"): "+tt.line) {
			t.Errorf("%s: the console says %q; want the wipe and why", tt.name, said)
		}
		if tt.line == "" && strings.Contains(said, "wiped") {
			t.Errorf("%s: wiped: %q", tt.name, said)
		}
		if exists(s.etcdRemovedFile()) {
			t.Errorf("%s: the removal mark is left", tt.name)
		}
	}
	// Marked removed with no server to join through: told, nothing wiped.
	s := withData("s1", "127.0.0.9")
	os.WriteFile(s.etcdRemovedFile(), []byte("removed\n"), 0o600)
	if _, err := s.keepEtcdData(ctx, s.renderNode(), nil, false); err == nil || !strings.Contains(err.Error(), "set kubernetes.server") {
		t.Errorf("removed with no server to rejoin through: %v", err)
	}
	if !exists(filepath.Join(s.l.EtcdDir, "member")) {
		t.Error("removed with no server to rejoin through: its data was wiped")
	}
}

// TestJoinReasonSaysWhatIsMissing: a server not ready to be joined
// through says what it lacks, not only that it has not finished starting.
func TestJoinReasonSaysWhatIsMissing(t *testing.T) {
	err := fmt.Errorf("%w: 192.168.1.11:6443 does not let the server token read the cluster record yet (403): it is still publishing its join objects", join.ErrNotReady)
	if got, want := joinReason(err), "192.168.1.11:6443 does not let the server token read the cluster record yet (403): it is still publishing its join objects"; got != want {
		t.Errorf("joinReason = %q; want %q", got, want)
	}
}
