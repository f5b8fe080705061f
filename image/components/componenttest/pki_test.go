package componenttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// pki is a throwaway cluster CA with the certificates kube-apiserver needs:
// a serving certificate for 127.0.0.1, an admin client certificate, and the
// service-account signing key. Files are written 0600.
type pki struct {
	dir                              string
	ca                               *x509.Certificate
	caKey                            *ecdsa.PrivateKey
	caFile, serverCert, serverKey    string
	adminCert, adminKey              string
	serviceAccountKey, serviceAccPub string
}

func newPKI(t *testing.T, dir string) *pki {
	t.Helper()
	p := &pki{dir: dir}
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cairn-test-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p.caFile = p.writePEM(t, "ca.crt", "CERTIFICATE", caDER)
	p.ca, p.caKey = ca, caKey
	issue := func(name string, tmpl *x509.Certificate) (string, string) { return p.issue(t, name, tmpl) }
	p.serverCert, p.serverKey = issue("apiserver", &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 43, 0, 1)},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	})
	p.adminCert, p.adminKey = issue("admin", &x509.Certificate{
		Subject:     pkix.Name{CommonName: "cairn-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	sa := newKey(t)
	p.serviceAccountKey = p.writeKey(t, "sa.key", sa)
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	p.serviceAccPub = p.writePEM(t, "sa.pub", "PUBLIC KEY", pub)
	return p
}

// issue signs a certificate from tmpl with the CA and writes it and its
// key as NAME.crt and NAME.key.
func (p *pki) issue(t *testing.T, name string, tmpl *x509.Certificate) (cert, key string) {
	t.Helper()
	k := newKey(t)
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &k.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return p.writePEM(t, name+".crt", "CERTIFICATE", der), p.writeKey(t, name+".key", k)
}

// kubeconfig writes a kubeconfig for server with a client certificate for
// the user cn in the groups orgs, and returns its path.
func (p *pki) kubeconfig(t *testing.T, name, server, cn string, orgs ...string) string {
	t.Helper()
	cert, key := p.issue(t, name, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: orgs},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	path := filepath.Join(p.dir, name+".kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\n" +
		"clusters:\n- name: c\n  cluster:\n    server: " + server + "\n    certificate-authority: " + p.caFile + "\n" +
		"users:\n- name: u\n  user:\n    client-certificate: " + cert + "\n    client-key: " + key + "\n" +
		"contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n" +
		"current-context: x\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (p *pki) writeKey(t *testing.T, name string, k *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return p.writePEM(t, name, "EC PRIVATE KEY", der)
}

func (p *pki) writePEM(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// adminTLS is a client configuration that trusts the CA and presents the
// admin certificate.
func (p *pki) adminTLS(t *testing.T) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.adminCert, p.adminKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}
