package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/config/kube"
)

// servingCSR is a kubelet-serving request from node n naming dns and ips.
func servingCSR(t *testing.T, n string, dns []string, ips ...string) *csr {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:" + n, Organization: []string{"system:nodes"}}, DNSNames: dns}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	c := &csr{}
	c.Spec.Request = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	c.Spec.Username = "system:node:" + n
	c.Spec.Groups = []string{"system:nodes", "system:authenticated"}
	c.Spec.Usages = []string{"digital signature", "server auth"}
	return c
}

// TestCheckServingCSR: only the node's own name and the addresses its Node
// object reports are approved.
func TestCheckServingCSR(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/nodes/a1" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"status":{"addresses":[{"type":"InternalIP","address":"192.168.77.21"},{"type":"Hostname","address":"a1"}]}}`))
	}))
	defer srv.Close()
	api := kube.New(srv.URL, kube.Options{})
	ctx := context.Background()
	if err := checkServingCSR(ctx, api, servingCSR(t, "a1", []string{"a1"}, "192.168.77.21")); err != nil {
		t.Errorf("the node's own names: %v", err)
	}
	other := servingCSR(t, "a1", []string{"a1"}, "192.168.77.11")
	impostor := servingCSR(t, "a1", []string{"kubernetes.default"})
	notNode := servingCSR(t, "a1", []string{"a1"})
	notNode.Spec.Groups = []string{"system:authenticated"}
	clientUsage := servingCSR(t, "a1", []string{"a1"})
	clientUsage.Spec.Usages = append(clientUsage.Spec.Usages, "client auth")
	for name, tt := range map[string]struct {
		c    *csr
		want string
	}{
		"another node's address": {other, "not an address of node a1"},
		"another name":           {impostor, `names "kubernetes.default"`},
		"not from a node":        {notNode, "not a node"},
		"client usage":           {clientUsage, `usage "client auth"`},
		"unknown node":           {servingCSR(t, "a2", []string{"a2"}, "192.168.77.22"), "reading node a2"},
	} {
		if err := checkServingCSR(ctx, api, tt.c); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tt.want)
		}
	}
}
