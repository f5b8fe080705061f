package join

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/config/kube"
)

// fakeServer stands in for a server's apiserver (a real one runs in the
// end-to-end tests): it publishes caPEM with proof and serves the admin
// kubeconfig to the bootstrap token derived from secret.
func fakeServer(t *testing.T, secret, proof string) (*httptest.Server, []byte) {
	var caPEM []byte
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/namespaces/kube-public/configmaps/" + CAConfigMap:
			p := proof
			if p == "" {
				p = CAProof(secret, caPEM)
			}
			json.NewEncoder(w).Encode(map[string]any{"data": map[string]string{CAKey: string(caPEM), ProofKey: p}})
		case "/api/v1/namespaces/kube-system/secrets/" + AdminSecret:
			id, s := BootstrapToken(secret)
			if r.Header.Get("Authorization") != "Bearer "+id+"."+s {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			kc := kube.Kubeconfig("", caPEM, []byte("cert"), []byte("key"), "cairn-admin")
			json.NewEncoder(w).Encode(map[string]any{"data": map[string]string{KubeconfigKey: base64.StdEncoding.EncodeToString(kc)}})
		default:
			http.NotFound(w, r)
		}
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return srv, caPEM
}

func TestAdminKubeconfig(t *testing.T) {
	srv, caPEM := fakeServer(t, "s3cret", "")
	for _, raw := range []string{"s3cret", Full("s3cret", caPEM)} {
		tok, _ := ParseToken(raw)
		kc, err := (&Client{Server: srv.URL, Token: tok}).AdminKubeconfig(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", tok, err)
		}
		if !strings.Contains(string(kc), "server: "+srv.URL+"\n") {
			t.Errorf("%s: the kubeconfig does not point at the server:\n%s", tok, kc)
		}
	}
}

func TestAdminKubeconfigRefused(t *testing.T) {
	// A man in the middle who does not know the token cannot prove it.
	mitm, _ := fakeServer(t, "his own", "")
	tok, _ := ParseToken("s3cret")
	_, err := (&Client{Server: mitm.URL, Token: tok}).AdminKubeconfig(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot prove it knows the token") {
		t.Errorf("a server without the token: err = %v", err)
	}
	// A K10 token pins the CA: another server's is refused.
	other, _ := fakeServer(t, "s3cret", "")
	pinned, _ := ParseToken(Full("s3cret", []byte("another CA")))
	_, err = (&Client{Server: other.URL, Token: pinned}).AdminKubeconfig(context.Background())
	if err == nil || !strings.Contains(err.Error(), "the token pins") {
		t.Errorf("a K10 token against another CA: err = %v", err)
	}
	// No TLS, no cairn.
	_, err = (&Client{Server: "http://127.0.0.1:1", Token: tok}).AdminKubeconfig(context.Background())
	if err == nil || !strings.Contains(err.Error(), "https://HOST:6443") {
		t.Errorf("an http:// server: err = %v", err)
	}
}
