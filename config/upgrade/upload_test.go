package upgrade

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"
)

// authority is a CA and a client certificate it signed.
func authority(t *testing.T) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client-ca"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "cairn-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// A proof holds for the file, the server and the Upgrade it was made for,
// by a certificate of the authority, and for nothing else.
func TestUploadProof(t *testing.T) {
	pool, admin := authority(t)
	otherPool, stranger := authority(t)
	f := File{Name: SystemFile, SHA256: strings.Repeat("ab", 32), Size: 1234}
	signed := func(cert tls.Certificate, node string, f File) http.Header {
		h := http.Header{}
		if err := SignUpload(h, cert, node, "uid-1", f); err != nil {
			t.Fatal(err)
		}
		return h
	}
	cert, uid, err := VerifyUpload(signed(admin, "s1", f), pool, "s1", f)
	if err != nil || uid != "uid-1" || cert.Subject.CommonName != "cairn-admin" {
		t.Fatalf("the admin's proof: %v, uid %q, %v", err, uid, cert)
	}
	if _, _, err := VerifyUpload(signed(stranger, "s1", f), pool, "s1", f); err == nil {
		t.Error("a proof by a certificate of another authority holds")
	}
	if _, _, err := VerifyUpload(signed(stranger, "s1", f), otherPool, "s1", f); err != nil {
		t.Errorf("a proof checked against its own authority: %v", err)
	}
	if _, _, err := VerifyUpload(signed(admin, "s2", f), pool, "s1", f); err == nil {
		t.Error("a proof for server s2 holds at s1")
	}
	bigger := f
	bigger.Size++
	if _, _, err := VerifyUpload(signed(admin, "s1", f), pool, "s1", bigger); err == nil {
		t.Error("a proof holds for another size")
	}
	moved := signed(admin, "s1", f)
	moved.Set(UploadUpgradeHeader, "uid-2")
	if _, _, err := VerifyUpload(moved, pool, "s1", f); err == nil {
		t.Error("a proof holds for another upgrade")
	}
	if _, _, err := VerifyUpload(http.Header{}, pool, "s1", f); err == nil {
		t.Error("no proof holds")
	}
	if err := SignUpload(http.Header{}, tls.Certificate{}, "s1", "uid-1", f); err == nil {
		t.Error("a kubeconfig without a client certificate signs")
	}
}
