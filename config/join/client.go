package join

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cairn-os/cairn/config/kube"
)

// What a server publishes through its apiserver for holders of a token.
const (
	// CAConfigMap (namespace kube-public, readable anonymously) holds the
	// serving CA bundle under CAKey, the client CA (which signs the
	// apiserver's certificate for kubelets) under ClientCAKey, the proof
	// key's derivation under KDFKey (a KDF's String), and the proofs of
	// both bundles under the server token (ServerProofKey) and, when the
	// cluster has one, the agent token (AgentProofKey).
	CAConfigMap    = "cairn-ca"
	CAKey          = "ca.crt"
	ClientCAKey    = "client-ca.crt"
	KDFKey         = "proof-kdf"
	ServerProofKey = "server-proof"
	AgentProofKey  = "agent-proof"
	// oldProofKey is where servers before agent tokens published their
	// proof.
	oldProofKey = "proof"
)

// Who may do what with a token's bootstrap token.
const (
	// ServersGroup is the extra group of the server token's bootstrap
	// token: the servers approve an admin certificate request from it,
	// and from no one else.
	ServersGroup = "system:bootstrappers:cairn:servers"
	// AdminsGroup is the organisation of the client certificates
	// `cairn kubeconfig` gets; the ClusterRoleBinding AdminsGroup binds it
	// to cluster-admin, so deleting the binding takes their rights away.
	AdminsGroup = "cairn:cluster-admins"
	// AdminPrefix begins the name of an admin certificate request and the
	// certificate's common name (the user audit logs name).
	AdminPrefix = "cairn-admin-"
	// AdminSigner signs admin certificates: kube-controller-manager, with
	// the client CA the apiserver trusts.
	AdminSigner = "kubernetes.io/kube-apiserver-client"
)

// The lifetime of an admin certificate: DefaultExpiry unless the client
// asks for another, within [MinExpiry, MaxExpiry] (Kubernetes signs
// nothing shorter than 10 minutes; the servers approve nothing longer
// than MaxExpiry).
const (
	DefaultExpiry = 24 * time.Hour
	MinExpiry     = 10 * time.Minute
	MaxExpiry     = 30 * 24 * time.Hour
)

// maxReply bounds what is read from a server.
const maxReply = 1 << 20

// ErrNotReady says the server is up but has not published (or its
// apiserver not yet learnt) what a token's holder needs: try again soon.
var ErrNotReady = errors.New("the server has not finished starting")

// NotReadyDetail is what an ErrNotReady error says the server lacks (no
// cluster record yet, its RBAC not published, a request not signed), without
// ErrNotReady's own words; other errors' text whole.
func NotReadyDetail(err error) string {
	return strings.TrimPrefix(err.Error(), ErrNotReady.Error()+": ")
}

// Client talks to one server with a cluster token.
type Client struct {
	// Server is the apiserver's URL, "https://10.0.0.11:6443".
	Server string
	Token  Token
	// Timeout bounds each request (10 s when zero).
	Timeout time.Duration
	// Expiry is the lifetime of the admin certificate AdminKubeconfig
	// asks for (DefaultExpiry when zero).
	Expiry time.Duration
	// DialContext, when set, makes the connections (a test's network
	// namespace, for one).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// The proof key of Token under the KDF last published, kept: one
	// Argon2id run per client, not per attempt.
	mu      sync.Mutex
	keyKDF  string
	keyHash []byte
}

// Role is which of the cluster's tokens a client holds.
type Role string

// The roles of a token.
const (
	RoleServer Role = "server"
	RoleAgent  Role = "agent"
)

// serverAPI checks the cluster's CA and that the token is the server
// token, and returns the cluster and a client of its apiserver that trusts
// only that CA and authenticates as the server token's bootstrap token.
// needs says what the agent token cannot do.
func (c *Client) serverAPI(ctx context.Context, needs string) (*Cluster, *kube.Client, *url.URL, error) {
	v, err := c.Cluster(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	if v.Role != RoleServer {
		return nil, nil, nil, errors.New("this is the cluster's agent token: it joins agents and nothing more; " + needs)
	}
	tlsCfg, err := kube.Pinned(v.Serving)
	if err != nil {
		return nil, nil, nil, err
	}
	id, secret := ServerBootstrapToken(c.Token.Secret)
	api, u, err := c.api(tlsCfg, id+"."+secret)
	if err != nil {
		return nil, nil, nil, err
	}
	return v, api, u, nil
}

// Cluster is what a client learnt and verified from a server.
type Cluster struct {
	// Serving and ClientCA are the cluster's CA bundles (PEM).
	Serving, ClientCA []byte
	// Role is what the token is to this cluster.
	Role Role
}

func (c *Client) base() (*url.URL, error) {
	u, err := url.Parse(c.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server %q: give the apiserver's address as https://HOST:6443", c.Server)
	}
	return u, nil
}

// api is a client of the server with tlsCfg and, when not empty, a
// bearer token.
func (c *Client) api(tlsCfg *tls.Config, bearer string) (*kube.Client, *url.URL, error) {
	u, err := c.base()
	if err != nil {
		return nil, nil, err
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return kube.New(u.String(), kube.Options{TLS: tlsCfg, Timeout: timeout, MaxReply: maxReply, Bearer: bearer, DialContext: c.DialContext}), u, nil
}

// explain says in a user's words what a failed request to host means.
func explain(host, what string, err error) error {
	var ae *kube.Error
	switch {
	case !errors.As(err, &ae):
		return fmt.Errorf("reaching %s: %w", host, err)
	case ae.Code == http.StatusUnauthorized:
		return fmt.Errorf("%s refused the token (401 Unauthorized): it is not this cluster's token", host)
	case ae.Code == http.StatusForbidden:
		return fmt.Errorf("%s: the token may not %s (403 Forbidden)", host, what)
	case ae.Code == http.StatusNotFound:
		return fmt.Errorf("%w: %s has nothing at %s (404): not a cairn server, or it has not finished starting; try again in a minute", ErrNotReady, host, ae.Path)
	default:
		return fmt.Errorf("%s answered %d %s to %s", host, ae.Code, http.StatusText(ae.Code), what)
	}
}

// CA fetches the cluster's serving CA bundle from the server and verifies
// it against the token before anything else is trusted.
func (c *Client) CA(ctx context.Context) ([]byte, error) {
	v, err := c.Cluster(ctx)
	if err != nil {
		return nil, err
	}
	return v.Serving, nil
}

// CAs fetches the serving CA bundle and the client CA, both verified
// against the token; a node needs both (the kubelet trusts the client CA
// for the apiserver's calls to it).
func (c *Client) CAs(ctx context.Context) (serving, clientCA []byte, err error) {
	v, err := c.Cluster(ctx)
	if err != nil {
		return nil, nil, err
	}
	return v.Serving, v.ClientCA, nil
}

// Cluster fetches the cluster's CA bundles and verifies them, and learns
// which of the cluster's tokens the client holds: a K10 token's pin must
// match the serving bundle, and one of the published proofs must be the
// token's. The proof costs one Argon2id run (tens to hundreds of
// milliseconds and ProofMemory natively), kept for the client's next call.
func (c *Client) Cluster(ctx context.Context) (*Cluster, error) {
	var cm struct {
		Data map[string]string `json:"data"`
	}
	// Nothing is trusted yet: the bundles are checked against the token below.
	api, u, err := c.api(&tls.Config{InsecureSkipVerify: true}, "")
	if err != nil {
		return nil, err
	}
	defer api.CloseIdleConnections()
	if err := api.Get(ctx, "/api/v1/namespaces/kube-public/configmaps/"+CAConfigMap, &cm); err != nil {
		if kube.IsStatus(err, http.StatusForbidden) {
			return nil, fmt.Errorf("%w: %s lets no one read the cluster's CA yet (403): it has not published it; try again in a minute", ErrNotReady, u.Host)
		}
		return nil, explain(u.Host, "read the cluster's CA", err)
	}
	v := &Cluster{Serving: []byte(cm.Data[CAKey]), ClientCA: []byte(cm.Data[ClientCAKey])}
	if len(v.Serving) == 0 || len(v.ClientCA) == 0 {
		return nil, fmt.Errorf("the server's %s lacks %s or %s", CAConfigMap, CAKey, ClientCAKey)
	}
	if err := CheckPin(c.Token, v.Serving); err != nil {
		return nil, err
	}
	if cm.Data[KDFKey] == "" {
		if cm.Data[oldProofKey] != "" {
			return nil, fmt.Errorf("%s runs an older cairn, whose proof of the token this one no longer trusts: upgrade the servers first", u.Host)
		}
		return nil, fmt.Errorf("the server's %s has no %s", CAConfigMap, KDFKey)
	}
	kdf, err := ParseKDF(cm.Data[KDFKey])
	if err != nil {
		return nil, err
	}
	key := c.proofKey(kdf)
	switch {
	case proofMatches(key, v.Serving, v.ClientCA, cm.Data[ServerProofKey]):
		v.Role = RoleServer
	case proofMatches(key, v.Serving, v.ClientCA, cm.Data[AgentProofKey]):
		v.Role = RoleAgent
	default:
		return nil, fmt.Errorf("%w: the server cannot prove it knows the token; a wrong token, or a man in the middle", ErrCAMismatch)
	}
	return v, nil
}

// proofKey is the token's proof key under kdf, derived once per KDF.
func (c *Client) proofKey(kdf KDF) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := kdf.String(); s != c.keyKDF {
		c.keyHash, c.keyKDF = kdf.Key(c.Token.Secret), s
	}
	return c.keyHash
}

// FullToken is the token in k3s's secure form, K10<CA hash>::server:<secret>,
// pinning the CA the server proved it holds with the token.
func (c *Client) FullToken(ctx context.Context) (string, error) {
	v, err := c.Cluster(ctx)
	if err != nil {
		return "", err
	}
	return Full(c.Token.Secret, v.Serving), nil
}

// expiry is the admin certificate's lifetime the client asks for.
func (c *Client) expiry() (time.Duration, error) {
	e := c.Expiry
	if e == 0 {
		e = DefaultExpiry
	}
	if e < MinExpiry || e > MaxExpiry {
		return 0, fmt.Errorf("an admin certificate's lifetime is between %s and %s, not %s", MinExpiry, MaxExpiry, e)
	}
	return e, nil
}

// csrObject is the part of a CertificateSigningRequest the client reads.
type csrObject struct {
	Status struct {
		Certificate []byte `json:"certificate"`
		Conditions  []struct {
			Type    string `json:"type"`
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"conditions"`
	} `json:"status"`
}

// Polling the admin request: how often, and how long at most when the
// context has no deadline of its own.
var (
	csrPollEvery = time.Second
	csrWaitMax   = 2 * time.Minute
)

// AdminKubeconfig gets a kubeconfig with a newly minted admin client
// certificate, proving knowledge of the server token: it makes a key and a
// certificate request (organisation AdminsGroup, lifetime c.Expiry) as the
// server token's bootstrap token, through a connection that trusts only
// the verified CA; the servers approve it, kube-controller-manager signs
// it with the client CA. Its server is c.Server. The key never leaves
// this process but in the kubeconfig returned.
func (c *Client) AdminKubeconfig(ctx context.Context) ([]byte, error) {
	expiry, err := c.expiry()
	if err != nil {
		return nil, err
	}
	v, api, u, err := c.serverAPI(ctx, "an admin kubeconfig needs the server token (kubernetes.token of the servers)")
	if err != nil {
		return nil, err
	}
	defer api.CloseIdleConnections()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	var nonce [6]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	name := AdminPrefix + hex.EncodeToString(nonce[:])
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: name, Organization: []string{AdminsGroup}}}, key)
	if err != nil {
		return nil, err
	}
	obj := map[string]any{
		"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"request":           pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			"signerName":        AdminSigner,
			"expirationSeconds": int64(expiry / time.Second),
			"usages":            []string{"digital signature", "client auth"},
		},
	}
	const path = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
	if err := api.Do(ctx, http.MethodPost, path, obj, nil); err != nil {
		if kube.IsStatus(err, http.StatusUnauthorized) {
			// The proof says the token is right: the servers have not
			// installed its bootstrap token yet.
			return nil, fmt.Errorf("%w: %s does not know the token's bootstrap credential yet (401); try again in a minute", ErrNotReady, u.Host)
		}
		return nil, explain(u.Host, "ask for a certificate", err)
	}
	certPEM, err := c.waitIssued(ctx, api, u.Host, path+"/"+name, name)
	if err != nil {
		return nil, err
	}
	if err := checkIssued(certPEM, key, name); err != nil {
		return nil, fmt.Errorf("the certificate %s issued: %w", u.Host, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return kube.Kubeconfig(c.Server, v.Serving, certPEM, keyPEM, "cairn-admin"), nil
}

// waitIssued polls the request until it is issued, denied or failed, or
// the context (else csrWaitMax) ends.
func (c *Client) waitIssued(ctx context.Context, api *kube.Client, host, path, name string) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, csrWaitMax)
		defer cancel()
	}
	t := time.NewTicker(csrPollEvery)
	defer t.Stop()
	approved := false
	for {
		var o csrObject
		err := api.Get(ctx, path, &o)
		if err == nil {
			for _, cond := range o.Status.Conditions {
				if (cond.Type == "Denied" || cond.Type == "Failed") && cond.Status != "False" {
					return nil, fmt.Errorf("%s: certificate request %s %s: %s", host, name, cond.Type, cond.Message)
				}
				approved = approved || cond.Type == "Approved" && cond.Status != "False"
			}
			if len(o.Status.Certificate) > 0 {
				return o.Status.Certificate, nil
			}
		} else if ctx.Err() == nil && !kube.IsStatus(err, http.StatusNotFound) {
			return nil, explain(host, "read its certificate request", err)
		}
		select {
		case <-ctx.Done():
			if approved {
				return nil, fmt.Errorf("%w: %s approved certificate request %s but kube-controller-manager did not sign it in time: see the servers' consoles", ErrNotReady, host, name)
			}
			return nil, fmt.Errorf("%w: %s did not approve certificate request %s in time: the servers approve it within seconds once they run; see their consoles", ErrNotReady, host, name)
		case <-t.C:
		}
	}
}

// checkIssued checks that the issued certificate is for key, of the
// admins' group, named as asked.
func checkIssued(certPEM []byte, key *ecdsa.PrivateKey, name string) error {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return errors.New("is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return errors.New("is not for the key this client made")
	}
	if cert.Subject.CommonName != name || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != AdminsGroup {
		return fmt.Errorf("names %s, not %s in %s", cert.Subject, name, AdminsGroup)
	}
	return nil
}
