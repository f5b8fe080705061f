package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxKubeconfig bounds a kubeconfig cairn reads.
const maxKubeconfig = 1 << 20

// Credentials are a kubeconfig's first cluster and user, as cairn
// writes them: a server, its CA and a client certificate.
type Credentials struct {
	Server string
	TLS    *tls.Config
	// DialContext, when set, makes the connections (see Options).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// ParseKubeconfig reads the server, CA and client certificate of a
// kubeconfig with embedded data (what `cairn kubeconfig` writes).
func ParseKubeconfig(data []byte) (*Credentials, error) {
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
	if len(data) > maxKubeconfig {
		return nil, fmt.Errorf("the kubeconfig is larger than %d bytes", maxKubeconfig)
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
	return &Credentials{Server: kc.Clusters[0].Cluster.Server, TLS: tlsCfg}, nil
}

// Client is a client of the apiserver the credentials name, with them.
func (c *Credentials) Client(o Options) *Client {
	o.TLS = c.TLS
	if c.DialContext != nil {
		o.DialContext = c.DialContext
	}
	return New(c.Server, o)
}

// Pinned is a TLS config that trusts only caPEM.
func Pinned(caPEM []byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the CA bundle holds no certificate")
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// serverPlaceholder is the server line of the stored admin kubeconfig.
const serverPlaceholder = "https://127.0.0.1:6443"

// SetServer points a kubeconfig made by Kubeconfig at server.
func SetServer(kc []byte, server string) ([]byte, error) {
	line := "      server: " + serverPlaceholder + "\n"
	if !strings.Contains(string(kc), line) {
		return nil, errors.New("the kubeconfig has no server line to set")
	}
	return []byte(strings.Replace(string(kc), line, "      server: "+server+"\n", 1)), nil
}

// Kubeconfig renders a kubeconfig for one user with a client certificate,
// at server (serverPlaceholder when empty).
func Kubeconfig(server string, caPEM, certPEM, keyPEM []byte, user string) []byte {
	if server == "" {
		server = serverPlaceholder
	}
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
  - name: cairn
    cluster:
      certificate-authority-data: %s
      server: %s
users:
  - name: %s
    user:
      client-certificate-data: %s
      client-key-data: %s
contexts:
  - name: cairn
    context:
      cluster: cairn
      user: %s
current-context: cairn
`, b64(caPEM), server, user, b64(certPEM), b64(keyPEM), user)
}
