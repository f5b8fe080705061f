package node

import (
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/init/node/pki"
	"github.com/cairn-os/cairn/init/node/render"
)

// A server's files: every private key, kubeconfig and the token are 0600
// in 0700 directories; the apiserver's certificate names every address a
// client may use.
func TestWritePKI(t *testing.T) {
	dir := t.TempDir()
	l := render.Layout{DataDir: dir, CertDir: filepath.Join(dir, "pki"), KubeconfigDir: filepath.Join(dir, "kubeconfig")}
	cfg := &config.Config{Kubernetes: config.Kubernetes{ServiceCIDR: "10.43.0.0/16", ClusterDomain: "cluster.local", VIP: "192.168.1.100", TLSSAN: []string{"k8s.example.com", "10.9.9.9"}}}
	k := &cfg.Kubernetes
	s := &server{
		o: Options{Config: cfg, Hostname: "s1", Printf: t.Logf, Addresses: func() []netip.Addr {
			return []netip.Addr{netip.MustParseAddr("192.168.1.11"), netip.MustParseAddr("fe80::1")}
		}},
		k: k, l: l, tok: join.Token{Secret: "s3cret"},
	}
	c, err := pki.NewCluster(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.writePKI(c); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, _ := d.Info()
		mode := info.Mode().Perm()
		secret := strings.HasSuffix(p, ".key") || strings.HasSuffix(p, ".conf") || filepath.Base(p) == "token"
		switch {
		case d.IsDir() && p != dir && mode != 0o700:
			t.Errorf("%s: mode %v, want 0700", p, mode)
		case !d.IsDir() && secret && mode != 0o600:
			t.Errorf("%s holds a secret with mode %v, want 0600", p, mode)
		case !d.IsDir() && !secret && mode&0o022 != 0:
			t.Errorf("%s: mode %v is writable by others", p, mode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(l.Cert("apiserver.crt"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, ip := range cert.IPAddresses {
		ips = append(ips, ip.String())
	}
	for _, want := range []string{"127.0.0.1", "10.43.0.1", "192.168.1.11", "192.168.1.100", "10.9.9.9"} {
		if !slices.Contains(ips, want) {
			t.Errorf("the apiserver certificate lacks IP %s: %v", want, ips)
		}
	}
	for _, want := range []string{"s1", "kubernetes.default.svc.cluster.local", "k8s.example.com", "localhost"} {
		if !slices.Contains(cert.DNSNames, want) {
			t.Errorf("the apiserver certificate lacks name %s: %v", want, cert.DNSNames)
		}
	}
	tok, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	if parsed, err := join.ParseToken(string(tok)); err != nil || parsed.Secret != "s3cret" || join.CheckPin(parsed, c[pki.ServerCA].Cert) != nil {
		t.Errorf("the token file holds %v (%v); want the K10 token pinning the serving CA", parsed, err)
	}
}
