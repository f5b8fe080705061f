package container

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-os/cairn/config"
)

// EtcdTLS is the certificates of an etcd datastore: its own authority, a
// serving certificate for its address, and the client certificate servers
// present. etcd serves clients with TLS only and asks for that client
// certificate, so a pod that reaches the address reads nothing; its peer
// port listens on the loopback of the datastore's namespace, where no
// node reaches.
type EtcdTLS struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey []byte
}

// Where a server keeps the etcd client files (written by its config's
// write_files).
const (
	EtcdCAFile   = "/etc/cairn/datastore/etcd-ca.crt"
	EtcdCertFile = "/etc/cairn/datastore/etcd-client.crt"
	EtcdKeyFile  = "/etc/cairn/datastore/etcd-client.key"
)

// etcdTLSLifetime covers a test cluster's life.
const etcdTLSLifetime = 2 * 365 * 24 * time.Hour

// NewEtcdTLS makes an authority and the two certificates for an etcd
// listening on addr (ECDSA P-256).
func NewEtcdTLS(addr netip.Addr) (*EtcdTLS, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cairn-harness-etcd-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(etcdTLSLifetime),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("the etcd datastore's authority: %w", err)
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return nil, err
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (certPEM, keyPEM []byte, err error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(etcdTLSLifetime),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
		if err != nil {
			return nil, nil, fmt.Errorf("the etcd datastore's %s certificate: %w", cn, err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
	}
	t := &EtcdTLS{CA: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})}
	if t.ServerCert, t.ServerKey, err = leaf(2, "etcd", x509.ExtKeyUsageServerAuth, []net.IP{addr.AsSlice()}); err != nil {
		return nil, err
	}
	if t.ClientCert, t.ClientKey, err = leaf(3, "cairn-server", x509.ExtKeyUsageClientAuth, nil); err != nil {
		return nil, err
	}
	return t, nil
}

// EtcdEndpoint is the datastore-endpoint of the etcd on addr.
func EtcdEndpoint(addr netip.Addr) string {
	return "https://" + netip.AddrPortFrom(addr, 2379).String()
}

// ServerArgs writes etcd's own files into dir/tls (the key 0600) and
// returns etcd's flags for a one-member datastore on addr, its data in
// dir/data.
func (t *EtcdTLS) ServerArgs(dir string, addr netip.Addr) ([]string, error) {
	tdir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{"ca.crt", t.CA, 0o644}, {"server.crt", t.ServerCert, 0o644}, {"server.key", t.ServerKey, 0o600}} {
		if err := os.WriteFile(filepath.Join(tdir, f.name), f.data, f.mode); err != nil {
			return nil, err
		}
	}
	client, peer := EtcdEndpoint(addr), "http://127.0.0.1:2380"
	return []string{"--name=ds", "--data-dir=" + filepath.Join(dir, "data"),
		"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
		"--client-cert-auth", "--trusted-ca-file=" + filepath.Join(tdir, "ca.crt"),
		"--cert-file=" + filepath.Join(tdir, "server.crt"), "--key-file=" + filepath.Join(tdir, "server.key"),
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer, "--initial-cluster=ds=" + peer,
		"--listen-metrics-urls=http://127.0.0.1:2391", "--log-level=warn"}, nil
}

// Apply gives a server's config the client files (write_files, the key
// 0600) and the datastore-cafile, -certfile and -keyfile that name them.
func (t *EtcdTLS) Apply(c *config.Config) {
	c.WriteFiles = append(c.WriteFiles,
		config.WriteFile{Path: EtcdCAFile, Content: string(t.CA), Permissions: "0644"},
		config.WriteFile{Path: EtcdCertFile, Content: string(t.ClientCert), Permissions: "0644"},
		config.WriteFile{Path: EtcdKeyFile, Content: string(t.ClientKey), Permissions: "0600"})
	k := &c.Kubernetes
	k.DatastoreCAFile, k.DatastoreCertFile, k.DatastoreKeyFile = EtcdCAFile, EtcdCertFile, EtcdKeyFile
}
