package nodeclaim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/kube"
)

// TestLoad: the secret is made once, 0600, and read back the same; a file
// that is not one is an error naming it, and is left as it was.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	s, created, err := Load(dir)
	if err != nil || !created {
		t.Fatalf("first Load: created %v, %v", created, err)
	}
	st, err := os.Stat(filepath.Join(dir, SecretFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v; want 0600", SecretFile, err, st.Mode().Perm())
	}
	again, created, err := Load(dir)
	if err != nil || created || again.Public() != s.Public() {
		t.Fatalf("second Load: created %v, same key %v, %v", created, again.Public() == s.Public(), err)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, SecretFile), []byte("hunter2\n"), 0o600)
	if _, _, err := Load(bad); err == nil || !strings.Contains(err.Error(), filepath.Join(bad, SecretFile)+" is not a node secret") {
		t.Errorf("Load of a file that is no secret: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(bad, SecretFile)); string(data) != "hunter2\n" {
		t.Errorf("the file that is no secret was rewritten: %q", data)
	}
}

// TestProof: a proof holds for its name and its request's key only, and
// only under the public key of the secret that made it.
func TestProof(t *testing.T) {
	s, _, _ := Load(t.TempDir())
	o, _, _ := Load(t.TempDir())
	spki, other := []byte("the request's key"), []byte("another key")
	p := s.Prove("a1", spki)
	if err := Verify(s.Public(), "a1", spki, p); err != nil {
		t.Fatalf("the proof: %v", err)
	}
	for _, tt := range []struct {
		name, pub, node string
		spki            []byte
		proof           string
	}{
		{"another name", s.Public(), "a2", spki, p},
		{"another key", s.Public(), "a1", other, p},
		{"another secret's public key", o.Public(), "a1", spki, p},
		{"no proof", s.Public(), "a1", spki, ""},
		{"not a key", "bm90IGEga2V5", "a1", spki, p},
	} {
		if err := Verify(tt.pub, tt.node, tt.spki, tt.proof); err == nil {
			t.Errorf("%s: verified", tt.name)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a1", "node-1.example.com"} {
		if err := ValidName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "A1", "a_1", "-a", "a..b", "a/b", strings.Repeat("a", 240)} {
		if err := ValidName(bad); err == nil {
			t.Errorf("%q: valid", bad)
		}
	}
}

// fakeCSRs is an apiserver that takes one request and decides it as
// decide says, after a poll.
type fakeCSRs struct {
	mu     sync.Mutex
	decide func(obj map[string]any) (cond string, cert []byte)
	obj    map[string]any
	polls  int
	bearer string
}

func (f *fakeCSRs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bearer = r.Header.Get("Authorization")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == csrPath:
		json.NewDecoder(r.Body).Decode(&f.obj)
		json.NewEncoder(w).Encode(map[string]any{"metadata": map[string]any{"name": "node-csr-x1"}})
	case r.Method == http.MethodGet && r.URL.Path == csrPath+"/node-csr-x1":
		f.polls++
		st := map[string]any{}
		if f.polls > 1 {
			cond, cert := f.decide(f.obj)
			if cond != "" {
				st["conditions"] = []map[string]string{{"type": cond, "reason": "Test", "message": "the name a1 belongs to another node secret"}}
			}
			if cert != nil {
				st["certificate"] = cert
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"status": st})
	default:
		http.NotFound(w, r)
	}
}

// TestRequest: the request carries the claim (verified as the servers
// do), and its certificate comes back with its key; a denial is a
// *DeniedError with the servers' message.
func TestRequest(t *testing.T) {
	defer func(p time.Duration) { PollEvery = p }(PollEvery)
	PollEvery = time.Millisecond
	s, _, _ := Load(t.TempDir())
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	var verr error
	f := &fakeCSRs{decide: func(obj map[string]any) (string, []byte) {
		meta := obj["metadata"].(map[string]any)
		ann := meta["annotations"].(map[string]any)
		spec := obj["spec"].(map[string]any)
		var pemReq []byte
		data, _ := json.Marshal(spec["request"])
		json.Unmarshal(data, &pemReq)
		block, _ := pem.Decode(pemReq)
		req, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			verr = err
			return "Failed", nil
		}
		if verr = Verify(ann[KeyAnnotation].(string), "a1", req.RawSubjectPublicKeyInfo, ann[ProofAnnotation].(string)); verr != nil {
			return "Denied", nil
		}
		if spec["signerName"] != Signer || req.Subject.CommonName != "system:node:a1" || meta["generateName"] != "node-csr-" {
			verr = errors.New("not a kubelet client request")
			return "Denied", nil
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: req.Subject, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, req.PublicKey, caKey)
		return "Approved", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	api := kube.New(srv.URL, kube.Options{Bearer: "abcdef.0123456789abcdef"})
	data, err := Request(context.Background(), api, "a1", s)
	if err != nil || verr != nil {
		t.Fatalf("Request: %v (the servers' check: %v)", err, verr)
	}
	if _, err := tls.X509KeyPair(data, data); err != nil {
		t.Errorf("the certificate and key: %v", err)
	}
	if f.bearer != "Bearer abcdef.0123456789abcdef" {
		t.Errorf("asked as %q, want the bootstrap token", f.bearer)
	}

	f.decide = func(map[string]any) (string, []byte) { return "Denied", nil }
	f.polls = 0
	_, err = Request(context.Background(), api, "a1", s)
	var denied *DeniedError
	if !errors.As(err, &denied) || denied.Message != "the name a1 belongs to another node secret" || denied.Request != "node-csr-x1" {
		t.Errorf("a denied request: %v, want a *DeniedError with the servers' message", err)
	}
}
