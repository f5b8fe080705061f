package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/pki"
)

// A server's own admin credential (publishing, the approver, the VIP,
// servicelb, add-ons, manifests, Secrets at rest, the apiserver's
// readiness): a client certificate of group pki.AdminGroup that each
// server mints for itself from the cluster's client CA, at each boot and
// again in-process before it lapses. It lives in this process's memory
// only: nothing writes it, no other machine gets it.
const (
	// selfAdminLifetime bounds the certificate: one that leaks lapses
	// within a month.
	selfAdminLifetime = 30 * 24 * time.Hour
	// selfAdminRenew is its age when a new one is minted: 20 days before
	// it lapses.
	selfAdminRenew = 10 * 24 * time.Hour
	// selfAdminConnAge is how long a connection made with it is used:
	// the apiserver checks a client certificate at every request, so a
	// connection (a VIP election polls on one for ever) is made again,
	// with the current certificate, at its first request this long after
	// it was made. An hour is far inside the 20 days of margin.
	selfAdminConnAge = time.Hour
)

// selfAdmin is a server's own admin certificate.
type selfAdmin struct {
	c    pki.Cluster // ClientCA signs it; ServerCA is trusted
	leaf pki.Leaf
	now  func() time.Time

	mu     sync.Mutex
	cert   *tls.Certificate
	issued time.Time
}

// newSelfAdmin mints the first certificate of node's server from c.
func newSelfAdmin(c pki.Cluster, node string, now func() time.Time) (*selfAdmin, error) {
	name := "cairn:server"
	if node != "" {
		name += ":" + node
	}
	a := &selfAdmin{c: c, now: now,
		leaf: pki.Leaf{CommonName: name, Organization: []string{pki.AdminGroup}, Client: true, Lifetime: selfAdminLifetime}}
	if _, err := a.current(); err != nil {
		return nil, err
	}
	return a, nil
}

// current is the certificate to present: the one minted last, or a new
// one when that is selfAdminRenew old (or from the future: the clock
// was set back). When minting fails the last one serves while it is
// valid.
func (a *selfAdmin) current() (*tls.Certificate, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if a.cert != nil && !now.Before(a.issued) && now.Sub(a.issued) < selfAdminRenew {
		return a.cert, nil
	}
	p, err := a.c.Issue(pki.ClientCA, a.leaf, now)
	var pair tls.Certificate
	if err == nil {
		pair, err = tls.X509KeyPair(p.Cert, p.Key)
	}
	if err != nil {
		if a.cert != nil && now.Before(a.cert.Leaf.NotAfter) {
			return a.cert, nil
		}
		return nil, fmt.Errorf("minting this server's own admin certificate: %w", err)
	}
	a.cert, a.issued = &pair, now
	return a.cert, nil
}

// tlsConfig trusts the cluster's serving CA and presents the current
// certificate at each handshake.
func (a *selfAdmin) tlsConfig() (*tls.Config, error) {
	cfg, err := kube.Pinned(a.c[pki.ServerCA].Cert)
	if err != nil {
		return nil, fmt.Errorf("the cluster's serving CA: %w", err)
	}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return a.current() }
	return cfg, nil
}

// dial makes a connection that is given up at its first write once
// selfAdminConnAge old (see agedConn).
func (a *selfAdmin) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &agedConn{Conn: c, until: a.now().Add(selfAdminConnAge), now: a.now}, nil
}

// client is a client of this server's apiserver with its own admin
// certificate, on connections that are made again as it is renewed.
func (a *selfAdmin) client(o kube.Options) (*kube.Client, error) {
	cfg, err := a.tlsConfig()
	if err != nil {
		return nil, err
	}
	o.TLS, o.DialContext = cfg, a.dial
	return kube.New(apiserverLocal, o), nil
}

// errConnAged is what a connection past its age says to a write.
var errConnAged = errors.New("the connection outlived this server's admin certificate's renewal period; connecting again")

// agedConn is a connection that closes itself at the first write after
// until, having written nothing: net/http sends a request that wrote
// nothing on a reused connection again on a new one (with a new
// handshake, so the current certificate), which the caller never sees.
// A stream being read (a watch) is left to end by its own timeout.
type agedConn struct {
	net.Conn
	until time.Time
	now   func() time.Time
}

func (c *agedConn) Write(p []byte) (int, error) {
	if c.now().After(c.until) {
		c.Conn.Close()
		return 0, errConnAged
	}
	return c.Conn.Write(p)
}
