package join

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/cairn-os/cairn/config/kube"
)

// What a server publishes through its apiserver for holders of the token.
const (
	// CAConfigMap (namespace kube-public, readable anonymously) holds the
	// serving CA bundle under CAKey and its proof under ProofKey.
	CAConfigMap = "cairn-ca"
	CAKey       = "ca.crt"
	ProofKey    = "proof"
	// ClientCAKey holds the client CA (which signs the apiserver's
	// certificate for kubelets), ClientCAProofKey its proof.
	ClientCAKey      = "client-ca.crt"
	ClientCAProofKey = "client-ca-proof"
	// AdminSecret (namespace kube-system) holds an admin kubeconfig under
	// KubeconfigKey, readable by the bootstrap token's group AdminGroup.
	AdminSecret   = "cairn-admin-kubeconfig"
	KubeconfigKey = "kubeconfig"
	AdminGroup    = "system:bootstrappers:cairn:admin"
	// TokenSecret (namespace kube-system) holds the full token under
	// TokenKey, for `cairn token` with admin credentials.
	TokenSecret = "cairn-token"
	TokenKey    = "token"
)

// maxReply bounds what is read from a server.
const maxReply = 1 << 20

// Client talks to one server with the cluster token.
type Client struct {
	// Server is the apiserver's URL, "https://10.0.0.11:6443".
	Server string
	Token  Token
	// Timeout bounds each request (10 s when zero).
	Timeout time.Duration
	// DialContext, when set, makes the connections (a test's network
	// namespace, for one).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (c *Client) base() (*url.URL, error) {
	u, err := url.Parse(c.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server %q: give the apiserver's address as https://HOST:6443", c.Server)
	}
	return u, nil
}

// get reads path from the server into out, with tlsCfg and, when not
// empty, a bearer token, saying in a user's words what a refusal means.
func (c *Client) get(ctx context.Context, tlsCfg *tls.Config, path, bearer string, out any) error {
	u, err := c.base()
	if err != nil {
		return err
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	api := kube.New(u.String(), kube.Options{TLS: tlsCfg, Timeout: timeout, MaxReply: maxReply, Bearer: bearer, DialContext: c.DialContext})
	defer api.CloseIdleConnections()
	err = api.Get(ctx, path, out)
	var ae *kube.Error
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &ae):
		return fmt.Errorf("reaching %s: %w", u.Host, err)
	case ae.Code == http.StatusUnauthorized:
		return fmt.Errorf("%s refused the token (401 Unauthorized): it is not this cluster's token", u.Host)
	case ae.Code == http.StatusForbidden:
		return fmt.Errorf("%s: the token may not read %s (403 Forbidden)", u.Host, path)
	case ae.Code == http.StatusNotFound:
		return fmt.Errorf("%s has no %s (404): not a cairn server, or it has not finished starting; try again in a minute", u.Host, path)
	default:
		return fmt.Errorf("%s answered %d %s for %s", u.Host, ae.Code, http.StatusText(ae.Code), path)
	}
}

// CA fetches the cluster's serving CA bundle from the server and verifies
// it against the token before anything else is trusted.
func (c *Client) CA(ctx context.Context) ([]byte, error) {
	ca, _, err := c.CAs(ctx)
	return ca, err
}

// CAs fetches the serving CA bundle and the client CA, each verified
// against the token; a node needs both (the kubelet trusts the client CA
// for the apiserver's calls to it). clientCA is nil when the server
// publishes none (an older server).
func (c *Client) CAs(ctx context.Context) (serving, clientCA []byte, err error) {
	var cm struct {
		Data map[string]string `json:"data"`
	}
	// Nothing is trusted yet: the bundles are checked against the token below.
	insecure := &tls.Config{InsecureSkipVerify: true}
	if err := c.get(ctx, insecure, "/api/v1/namespaces/kube-public/configmaps/"+CAConfigMap, "", &cm); err != nil {
		return nil, nil, err
	}
	serving = []byte(cm.Data[CAKey])
	if len(serving) == 0 {
		return nil, nil, fmt.Errorf("the server's %s has no %s", CAConfigMap, CAKey)
	}
	if err := VerifyCA(c.Token, serving, cm.Data[ProofKey]); err != nil {
		return nil, nil, err
	}
	if pem := cm.Data[ClientCAKey]; pem != "" {
		if err := VerifyCA(Token{Secret: c.Token.Secret}, []byte(pem), cm.Data[ClientCAProofKey]); err != nil {
			return nil, nil, fmt.Errorf("the client CA: %w", err)
		}
		clientCA = []byte(pem)
	}
	return serving, clientCA, nil
}

// AdminKubeconfig fetches an admin kubeconfig through a connection that
// trusts only the verified CA, authenticating with the bootstrap token
// derived from the cluster token. Its server is set to c.Server.
func (c *Client) AdminKubeconfig(ctx context.Context) ([]byte, error) {
	ca, err := c.CA(ctx)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := kube.Pinned(ca)
	if err != nil {
		return nil, err
	}
	var sec struct {
		Data map[string]string `json:"data"`
	}
	id, secret := BootstrapToken(c.Token.Secret)
	if err := c.get(ctx, tlsCfg, "/api/v1/namespaces/kube-system/secrets/"+AdminSecret, id+"."+secret, &sec); err != nil {
		return nil, err
	}
	kc, err := base64.StdEncoding.DecodeString(sec.Data[KubeconfigKey])
	if err != nil || len(kc) == 0 {
		return nil, fmt.Errorf("the server's %s holds no kubeconfig", AdminSecret)
	}
	return kube.SetServer(kc, c.Server)
}
