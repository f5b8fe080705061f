// Package pki makes the certificates a cairn cluster runs on: the cluster's
// certificate authorities (created once, by the first server, and shared
// through the datastore) and each server's own leaf certificates, issued
// from them at every boot. Keys are ECDSA P-256: quick to make even under
// emulation, and accepted by every component.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// The cluster's authorities, by the file names every server writes them
// under (see Names).
const (
	// ServerCA signs serving certificates: kube-apiserver's, kubelets'.
	ServerCA = "server-ca"
	// ClientCA signs client certificates: components, kubelets, admins.
	ClientCA = "client-ca"
	// FrontProxyCA signs the apiserver's aggregation-layer client.
	FrontProxyCA = "front-proxy-ca"
	// ServiceAccount is the key pair that signs service-account tokens.
	ServiceAccount = "sa"
	// Admin is a client certificate of group AdminGroup, valid a year
	// from the cluster's creation, that the record keeps for the older
	// cairns that used it. This one uses none: each server mints its own
	// short-lived one from ClientCA (init/node's selfAdmin). People get
	// certificates of their own: `cairn kubeconfig`.
	Admin = "admin"
)

// AdminGroup is the organisation of the servers' own admin certificate.
const AdminGroup = "system:masters"

// Lifetimes: authorities for ten years, leaves for one (they are issued
// again at every boot).
const (
	caLifetime   = 10 * 365 * 24 * time.Hour
	leafLifetime = 365 * 24 * time.Hour
)

// Pair is a certificate (or, for ServiceAccount, a public key) and its
// private key, both PEM.
type Pair struct {
	Cert []byte `json:"cert"`
	Key  []byte `json:"key"`
}

// Cluster is what the first server creates and every server shares: the
// authorities, the service-account key pair and the admin certificate.
type Cluster map[string]Pair

// NewCluster creates the authorities, the service-account key pair and the
// admin certificate of a new cluster.
func NewCluster(now time.Time) (Cluster, error) {
	c := Cluster{}
	for _, name := range []string{ServerCA, ClientCA, FrontProxyCA} {
		p, err := NewCA("cairn-"+name, now)
		if err != nil {
			return nil, err
		}
		c[name] = p
	}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	c[ServiceAccount] = Pair{Cert: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), Key: keyPEM}
	admin, err := c.Issue(ClientCA, Leaf{CommonName: "cairn-admin", Organization: []string{AdminGroup}, Client: true}, now)
	if err != nil {
		return nil, err
	}
	c[Admin] = admin
	return c, nil
}

// Check reports whether c holds everything a server needs, each pair
// parseable.
func (c Cluster) Check() error {
	for _, name := range []string{ServerCA, ClientCA, FrontProxyCA, Admin} {
		if _, _, err := c[name].Parse(); err != nil {
			return fmt.Errorf("cluster certificates: %s: %w", name, err)
		}
	}
	if len(c[ServiceAccount].Key) == 0 {
		return errors.New("cluster certificates: the service-account key is missing")
	}
	return nil
}

// NewCA makes a self-signed certificate authority.
func NewCA(name string, now time.Time) (Pair, error) {
	key, err := newKey()
	if err != nil {
		return Pair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          keyID(key.Public()),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return Pair{}, fmt.Errorf("creating the %s authority: %w", name, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return Pair{}, err
	}
	return Pair{Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Key: keyPEM}, nil
}

// Leaf describes a certificate to issue.
type Leaf struct {
	CommonName   string
	Organization []string
	// Client and Server choose the extended key usages.
	Client, Server bool
	DNSNames       []string
	IPs            []net.IP
	// Lifetime is how long it is valid once issued (and an hour before,
	// for clocks a little behind); a year when zero.
	Lifetime time.Duration
}

// Issue signs a new leaf certificate with the authority named ca.
func (c Cluster) Issue(ca string, l Leaf, now time.Time) (Pair, error) {
	caCert, caKey, err := c[ca].Parse()
	if err != nil {
		return Pair{}, fmt.Errorf("issuing %s: the %s authority: %w", l.CommonName, ca, err)
	}
	key, err := newKey()
	if err != nil {
		return Pair{}, err
	}
	life := l.Lifetime
	if life <= 0 {
		life = leafLifetime
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial(),
		Subject:        pkix.Name{CommonName: l.CommonName, Organization: l.Organization},
		NotBefore:      now.Add(-time.Hour),
		NotAfter:       now.Add(life),
		KeyUsage:       x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		DNSNames:       slices.Compact(slices.Sorted(slices.Values(l.DNSNames))),
		IPAddresses:    uniqueIPs(l.IPs),
		AuthorityKeyId: caCert.SubjectKeyId,
	}
	if l.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	if l.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return Pair{}, fmt.Errorf("issuing %s: %w", l.CommonName, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return Pair{}, err
	}
	return Pair{Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Key: keyPEM}, nil
}

// Parse decodes the pair's certificate and private key.
func (p Pair) Parse() (*x509.Certificate, crypto.Signer, error) {
	cb, _ := pem.Decode(p.Cert)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	kb, _ := pem.Decode(p.Key)
	if kb == nil {
		return nil, nil, errors.New("no PEM private key")
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func newKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating a key: %w", err)
	}
	return k, nil
}

func encodeKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding a key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil || n.Sign() == 0 {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

func keyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(der)
	return sum[:20]
}

func uniqueIPs(ips []net.IP) []net.IP {
	var out []net.IP
	for _, ip := range ips {
		if ip == nil || slices.ContainsFunc(out, ip.Equal) {
			continue
		}
		out = append(out, ip)
	}
	return out
}
