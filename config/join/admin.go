package join

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"

	"gopkg.in/yaml.v3"
)

// Admin is a kubeconfig's first cluster and user, as cairn writes them:
// a server, its CA and a client certificate.
type Admin struct {
	Server string
	TLS    *tls.Config
	// DialContext, when set, makes the connections (see Client).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// ParseKubeconfig reads the server, CA and client certificate of a
// kubeconfig with embedded data (what `cairn kubeconfig` writes).
func ParseKubeconfig(data []byte) (*Admin, error) {
	var kc struct {
		Clusters []struct {
			Cluster struct {
				Server string `yaml:"server"`
				CA     string `yaml:"certificate-authority-data"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
		Users []struct {
			User struct {
				Cert string `yaml:"client-certificate-data"`
				Key  string `yaml:"client-key-data"`
			} `yaml:"user"`
		} `yaml:"users"`
	}
	if len(data) > maxReply {
		return nil, fmt.Errorf("the kubeconfig is larger than %d bytes", maxReply)
	}
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return nil, fmt.Errorf("the kubeconfig does not parse: %w", err)
	}
	if len(kc.Clusters) == 0 || len(kc.Users) == 0 {
		return nil, errors.New("the kubeconfig has no cluster or no user")
	}
	dec := func(what, s string) ([]byte, error) {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("the kubeconfig's %s is missing or not base64 (cairn needs embedded data)", what)
		}
		return b, nil
	}
	ca, err := dec("certificate-authority-data", kc.Clusters[0].Cluster.CA)
	if err != nil {
		return nil, err
	}
	cert, err := dec("client-certificate-data", kc.Users[0].User.Cert)
	if err != nil {
		return nil, err
	}
	key, err := dec("client-key-data", kc.Users[0].User.Key)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := Pinned(ca)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("the kubeconfig's client certificate: %w", err)
	}
	tlsCfg.Certificates = []tls.Certificate{pair}
	return &Admin{Server: kc.Clusters[0].Cluster.Server, TLS: tlsCfg}, nil
}

// ReadToken reads the cluster's full token from the cluster with admin
// credentials.
func (a *Admin) ReadToken(ctx context.Context) (string, error) {
	c := &Client{Server: a.Server, DialContext: a.DialContext}
	var sec struct {
		Data map[string]string `json:"data"`
	}
	if err := c.get(ctx, a.TLS, "/api/v1/namespaces/kube-system/secrets/"+TokenSecret, "", &sec); err != nil {
		return "", err
	}
	tok, err := base64.StdEncoding.DecodeString(sec.Data[TokenKey])
	if err != nil || len(tok) == 0 {
		return "", fmt.Errorf("the cluster's %s holds no token", TokenSecret)
	}
	return string(tok), nil
}
