package join_test

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/join/jointest"
	"github.com/cairn-os/cairn/config/kube"
)

// TestAdminKubeconfig: the server token, plain or K10, gets a kubeconfig
// pointing at the server with a newly minted certificate of the admins'
// group, for the lifetime asked, whose key is the client's own.
func TestAdminKubeconfig(t *testing.T) {
	srv := jointest.New(t, "s3cret", "agent-s3cret")
	for _, raw := range []string{"s3cret", join.Full("s3cret", srv.Serving)} {
		tok, _ := join.ParseToken(raw)
		kc, err := (&join.Client{Server: srv.URL, Token: tok, Expiry: 2 * time.Hour}).AdminKubeconfig(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", tok, err)
		}
		if !strings.Contains(string(kc), "server: "+srv.URL+"\n") {
			t.Errorf("%s: the kubeconfig does not point at the server:\n%s", tok, kc)
		}
		creds, err := kube.ParseKubeconfig(kc)
		if err != nil {
			t.Fatalf("%s: the kubeconfig does not parse: %v", tok, err)
		}
		cert, err := x509.ParseCertificate(creds.TLS.Certificates[0].Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(cert.Subject.CommonName, join.AdminPrefix) || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != join.AdminsGroup {
			t.Errorf("%s: the certificate names %s; want %s… in %s", tok, cert.Subject, join.AdminPrefix, join.AdminsGroup)
		}
		if life := time.Until(cert.NotAfter); life < time.Hour || life > 2*time.Hour {
			t.Errorf("%s: the certificate lasts %s more; want the 2h asked", tok, life.Round(time.Minute))
		}
	}
}

func TestAdminKubeconfigRefused(t *testing.T) {
	ctx := context.Background()
	srv := jointest.New(t, "s3cret", "agent-s3cret")
	for _, tt := range []struct {
		name, token string
		expiry      time.Duration
		want        string
	}{
		{"the agent token", "agent-s3cret", 0, "this is the cluster's agent token"},
		{"a wrong token", "guess", 0, "cannot prove it knows the token"},
		{"a K10 token of another CA", join.Full("s3cret", []byte("another CA")), 0, "the token pins"},
		{"an expiry too long", "s3cret", 31 * 24 * time.Hour, "between 10m0s and 720h0m0s"},
		{"an expiry too short", "s3cret", time.Minute, "between 10m0s and 720h0m0s"},
	} {
		tok, _ := join.ParseToken(tt.token)
		_, err := (&join.Client{Server: srv.URL, Token: tok, Expiry: tt.expiry}).AdminKubeconfig(ctx)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one saying %q", tt.name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), tt.token) {
			t.Errorf("%s: the error shows the token: %v", tt.name, err)
		}
	}
	// A man in the middle who does not know the token cannot prove it.
	mitm := jointest.New(t, "his own", "")
	tok, _ := join.ParseToken("s3cret")
	_, err := (&join.Client{Server: mitm.URL, Token: tok}).AdminKubeconfig(ctx)
	if !errors.Is(err, join.ErrCAMismatch) {
		t.Errorf("a server without the token: err = %v", err)
	}
	// No TLS, no cairn.
	_, err = (&join.Client{Server: "http://127.0.0.1:1", Token: tok}).AdminKubeconfig(ctx)
	if err == nil || !strings.Contains(err.Error(), "https://HOST:6443") {
		t.Errorf("an http:// server: err = %v", err)
	}
}

// TestCluster: the client learns which token it holds from the proof that
// matches, and refuses bundles no proof of its token covers.
func TestCluster(t *testing.T) {
	ctx := context.Background()
	srv := jointest.New(t, "s3cret", "agent-s3cret")
	for token, role := range map[string]join.Role{"s3cret": join.RoleServer, "agent-s3cret": join.RoleAgent} {
		tok, _ := join.ParseToken(token)
		v, err := (&join.Client{Server: srv.URL, Token: tok}).Cluster(ctx)
		if err != nil || v.Role != role || string(v.Serving) != string(srv.Serving) || string(v.ClientCA) != string(srv.ClientCA) {
			t.Errorf("%s: %+v, %v; want role %s and both CAs", token, v, err, role)
		}
	}
	// Without an agent token, the server token is the only one.
	single := jointest.New(t, "s3cret", "")
	tok, _ := join.ParseToken("s3cret")
	if v, err := (&join.Client{Server: single.URL, Token: tok}).Cluster(ctx); err != nil || v.Role != join.RoleServer {
		t.Errorf("a cluster with one token: %+v, %v", v, err)
	}
	// The proof of another client CA does not cover this one: a man in the
	// middle cannot replay a real proof with his own CA.
	other := jointest.New(t, "s3cret", "")
	srv.SetProof(join.ServerProofKey, join.Proof(jointest.KDF.Key("s3cret"), other.Serving, other.ClientCA))
	if _, err := (&join.Client{Server: srv.URL, Token: tok}).Cluster(ctx); !errors.Is(err, join.ErrCAMismatch) {
		t.Errorf("a proof of other CAs: err = %v, want ErrCAMismatch", err)
	}
	// A server of an older cairn publishes only its old proof.
	srv.SetProof(join.ServerProofKey, "")
	srv.SetProof(join.AgentProofKey, "")
	srv.SetProof("proof", "0123")
	_, err := (&join.Client{Server: srv.URL, Token: tok}).Cluster(ctx)
	if err == nil || !strings.Contains(err.Error(), "cannot prove") {
		t.Errorf("no proof of the token: err = %v", err)
	}
}

// TestFullToken: the K10 form pins the CA the server proved it holds.
func TestFullToken(t *testing.T) {
	srv := jointest.New(t, "s3cret", "")
	tok, _ := join.ParseToken("s3cret")
	full, err := (&join.Client{Server: srv.URL, Token: tok}).FullToken(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if full != join.Full("s3cret", srv.Serving) {
		t.Errorf("FullToken = a token that does not pin the server's CA")
	}
}

// TestKDF: the published derivation reads back as written, and a client
// refuses parameters that would cost it more than a proof should.
func TestKDF(t *testing.T) {
	k := join.NewKDF([]byte("a CA"))
	if k.Time != join.ProofTime || k.Memory != join.ProofMemory || k.Threads != join.ProofThreads || len(k.Salt) != 16 {
		t.Errorf("NewKDF = %+v; want the default parameters and a 16-byte salt", k)
	}
	if s := k.String(); !strings.HasPrefix(s, "$argon2id$v=19$m=65536,t=2,p=2$") {
		t.Errorf("String = %q; want a PHC string", s)
	}
	back, err := join.ParseKDF(k.String())
	if err != nil || back.String() != k.String() {
		t.Errorf("ParseKDF(String) = %+v, %v", back, err)
	}
	if join.NewKDF([]byte("another CA")).String() == k.String() {
		t.Error("two clusters share a salt")
	}
	salt := "$MDEyMzQ1Njc4OWFiY2RlZg"
	for _, bad := range []string{
		"", "$argon2i$v=19$m=65536,t=2,p=2" + salt, "$argon2id$v=16$m=65536,t=2,p=2" + salt,
		"$argon2id$v=19$m=262144,t=2,p=2" + salt, "$argon2id$v=19$m=65536,t=9,p=2" + salt, "$argon2id$v=19$m=65536,t=2,p=64" + salt,
		"$argon2id$v=19$m=65536,t=2,p=0" + salt, "$argon2id$v=19$m=65536,t=2,p=2$c2hvcnQ",
		"$argon2id$v=19$m=65536,t=2,p=2$!!", "$argon2id$v=19$m=65536,t=2" + salt,
	} {
		if _, err := join.ParseKDF(bad); err == nil {
			t.Errorf("ParseKDF(%q) accepted it", bad)
		}
	}
}

// A proof binds both bundles: changing either changes it.
func TestProof(t *testing.T) {
	key := jointest.KDF.Key("s3cret")
	p := join.Proof(key, []byte("serving"), []byte("client"))
	for _, other := range []string{
		join.Proof(key, []byte("servingclient"), nil),
		join.Proof(key, []byte("serving"), []byte("client2")),
		join.Proof(jointest.KDF.Key("s3cret2"), []byte("serving"), []byte("client")),
	} {
		if other == p {
			t.Error("two different inputs give the same proof")
		}
	}
}
