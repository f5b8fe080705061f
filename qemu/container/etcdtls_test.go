package container

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-os/cairn/config"
)

// The harness's etcd answers a server that shows the client certificate,
// and nobody else: not plain HTTP, not TLS without the certificate. Its
// peer port is on loopback.
func TestEtcdTLS(t *testing.T) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd is not installed (make deps installs etcd-server)")
	}
	addr := netip.MustParseAddr("127.0.0.1")
	for _, port := range []string{"2379", "2380", "2391"} {
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			t.Skipf("port %s is taken on this machine: %v", port, err)
		}
		l.Close()
	}
	certs, err := NewEtcdTLS(addr)
	if err != nil {
		t.Fatal(err)
	}
	args, err := certs.ServerArgs(t.TempDir(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(args, " "), "--listen-peer-urls=http://127.0.0.1:2380") {
		t.Errorf("the peer port is not on loopback: %q", args)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certs.CA)
	pair, err := tls.X509KeyPair(certs.ClientCert, certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := EtcdEndpoint(addr)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cli.Put(c, "k", "v")
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd does not answer the client certificate: %v\n%s", err, out.String())
		}
	}

	hc := &http.Client{Timeout: 5 * time.Second}
	if resp, err := hc.Get("http://127.0.0.1:2379/version"); err == nil {
		resp.Body.Close()
		t.Errorf("plain HTTP answered: %s", resp.Status)
	}
	hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	if resp, err := hc.Get(endpoint + "/v3/kv/range"); err == nil {
		resp.Body.Close()
		t.Errorf("TLS without the client certificate answered: %s", resp.Status)
	}

	// A server's config gets the files and the keys naming them, and
	// validates.
	c := &config.Config{Kubernetes: config.Kubernetes{Role: "server", Token: "K10" + strings.Repeat("ab", 32) + "::server:9047182635904718263590471826359047182635", DatastoreEndpoint: endpoint}}
	certs.Apply(c)
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	loaded, diags := config.Load(config.Source{Name: "s1.yaml", Data: data})
	if len(diags) != 0 {
		t.Fatalf("%v\n%s", diags, data)
	}
	k := loaded.Kubernetes
	if k.DatastoreCAFile != EtcdCAFile || k.DatastoreCertFile != EtcdCertFile || k.DatastoreKeyFile != EtcdKeyFile {
		t.Errorf("datastore files %q %q %q", k.DatastoreCAFile, k.DatastoreCertFile, k.DatastoreKeyFile)
	}
	for _, w := range loaded.WriteFiles {
		if w.Path == EtcdKeyFile && w.Permissions != "0600" {
			t.Errorf("the client key is written %s", w.Permissions)
		}
	}
}
