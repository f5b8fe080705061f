package node

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/init/node/render"
)

// Embedded etcd's peer port takes TLS with a certificate of the etcd CA
// both ways: the member's own certificate serves and presents for
// 127.0.0.1, and its key is 0600.
func TestEtcdPeerCertificate(t *testing.T) {
	dir := t.TempDir()
	l := render.Layout{DataDir: dir, CertDir: filepath.Join(dir, "pki")}
	s := &server{o: Options{Config: &config.Config{}, Printf: t.Logf}, l: l}
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
	if got := render.EtcdPeerURL(l); got != "https://"+net.JoinHostPort("127.0.0.1", "2380") {
		t.Errorf("the peer URL is %s", got)
	}
}
