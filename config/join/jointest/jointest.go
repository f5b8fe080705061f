// Package jointest is a cairn server's apiserver as far as the join client
// goes, for unit tests: it publishes its CAs with their proofs, knows the
// bootstrap tokens of the server and agent tokens, and issues an admin
// certificate to the server token's, as the servers' approver and
// kube-controller-manager do together (the end-to-end tests run the real
// ones).
package jointest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/join"
)

// KDF is a cheap proof derivation for tests (a real server publishes
// join.NewKDF's).
var KDF = join.KDF{Time: 1, Memory: 8, Threads: 1, Salt: []byte("0123456789abcdef")}

// Server is a fake server's apiserver over TLS (its certificate holds
// 127.0.0.1 and is the serving CA it publishes).
type Server struct {
	*httptest.Server
	// Serving is the serving CA bundle it publishes (its own certificate).
	Serving []byte
	// ClientCA signs the admin certificates it issues.
	ClientCA []byte
	clientCA *x509.Certificate
	caKey    *ecdsa.PrivateKey

	// tokens are the bootstrap tokens it knows ("Bearer id.secret"), true
	// for the server token's.
	tokens map[string]bool

	mu     sync.Mutex
	proofs map[string]string // by ConfigMap key
	csrs   map[string]map[string]any
	record recordSecret // record.go
}

// New starts a fake server of the cluster whose server token's secret is
// secret and agent token's agent ("" when the cluster has none).
func New(t testing.TB, secret, agent string) *Server {
	t.Helper()
	s := &Server{csrs: map[string]map[string]any{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	s.StartTLS()
	t.Cleanup(s.Close)
	s.Serving = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	var err error
	if s.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test client CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &s.caKey.PublicKey, s.caKey)
	if err != nil {
		t.Fatal(err)
	}
	s.clientCA, _ = x509.ParseCertificate(der)
	s.ClientCA = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	s.proofs = map[string]string{join.ServerProofKey: join.Proof(KDF.Key(secret), s.Serving, s.ClientCA)}
	if agent != "" {
		s.proofs[join.AgentProofKey] = join.Proof(KDF.Key(agent), s.Serving, s.ClientCA)
	}
	id, sec := join.ServerBootstrapToken(secret)
	server := "Bearer " + id + "." + sec
	agentID, agentSec := join.AgentBootstrapToken(secret)
	if agent != "" {
		agentID, agentSec = join.AgentBootstrapToken(agent)
	}
	s.tokens = map[string]bool{server: true, "Bearer " + agentID + "." + agentSec: false}
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	const csrs = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
	switch {
	case r.URL.Path == "/api/v1/namespaces/kube-public/configmaps/"+join.CAConfigMap:
		s.mu.Lock()
		data := map[string]string{join.CAKey: string(s.Serving), join.ClientCAKey: string(s.ClientCA), join.KDFKey: KDF.String()}
		for k, v := range s.proofs {
			data[k] = v
		}
		s.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"data": data})
	case r.URL.Path == csrs && r.Method == http.MethodPost:
		server, ok := s.tokens[r.Header.Get("Authorization")]
		if !ok {
			status(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		var obj map[string]any
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&obj); err != nil {
			status(w, http.StatusBadRequest, err.Error())
			return
		}
		name, _ := obj["metadata"].(map[string]any)["name"].(string)
		obj["status"] = s.decide(obj, server)
		s.mu.Lock()
		s.csrs[name] = obj
		s.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(obj)
	case strings.HasPrefix(r.URL.Path, csrs+"/") && r.Method == http.MethodGet:
		if _, ok := s.tokens[r.Header.Get("Authorization")]; !ok {
			status(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		s.mu.Lock()
		obj, ok := s.csrs[strings.TrimPrefix(r.URL.Path, csrs+"/")]
		s.mu.Unlock()
		if !ok {
			status(w, http.StatusNotFound, "not found")
			return
		}
		json.NewEncoder(w).Encode(obj)
	case r.URL.Path == "/api/v1/namespaces/kube-system/secrets/"+join.RecordSecret && r.Method == http.MethodGet:
		s.serveRecord(w, r)
	default:
		status(w, http.StatusNotFound, "not found")
	}
}

// decide is the status of an admin request: issued for the server
// token's bootstrap token, denied for anyone else.
func (s *Server) decide(obj map[string]any, server bool) map[string]any {
	deny := func(why string) map[string]any {
		return map[string]any{"conditions": []map[string]string{{"type": "Denied", "status": "True", "message": why}}}
	}
	if !server {
		return deny("not requested by the server token")
	}
	spec, _ := obj["spec"].(map[string]any)
	reqB64, _ := spec["request"].(string)
	var raw []byte
	if err := json.Unmarshal([]byte(`"`+reqB64+`"`), &raw); err != nil {
		return deny("the request is not base64")
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return deny("the request is not PEM")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return deny(err.Error())
	}
	secs, _ := spec["expirationSeconds"].(float64)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: req.Subject,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Duration(secs) * time.Second),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.clientCA, req.PublicKey, s.caKey)
	if err != nil {
		return deny(err.Error())
	}
	return map[string]any{"certificate": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"conditions": []map[string]string{{"type": "Approved", "status": "True"}}}
}

// SetProof replaces a published proof ("" removes it).
func (s *Server) SetProof(key, proof string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if proof == "" {
		delete(s.proofs, key)
		return
	}
	s.proofs[key] = proof
}

func status(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "code": code, "message": msg})
}
