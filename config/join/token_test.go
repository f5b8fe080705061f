package join

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestParseToken(t *testing.T) {
	ca := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	full := Full("s3cret", ca)
	for _, tt := range []struct {
		in, secret, err string
		pinned          bool
	}{
		{in: "s3cret", secret: "s3cret"},
		{in: "  s3cret\n", secret: "s3cret"},
		{in: full, secret: "s3cret", pinned: true},
		{in: "K10" + strings.Repeat("ab", 32) + "::node:pw", secret: "pw", pinned: true},
		{in: "", err: "empty"},
		{in: "two words", err: "white space"},
		{in: "K10abc::server:x", err: "64 hex digits"},
		{in: "K10" + strings.Repeat("ab", 32) + "server:x", err: `"::" is missing`},
		{in: "K10" + strings.Repeat("ab", 32) + "::server", err: "<user>:<secret>"},
	} {
		got, err := ParseToken(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseToken(%q): err = %v, want one containing %q", tt.in, err, tt.err)
			}
			if err != nil && strings.Contains(tt.in, "x") && strings.Contains(err.Error(), ":x") {
				t.Errorf("ParseToken(%q): the error shows the secret: %v", tt.in, err)
			}
			continue
		}
		if err != nil || got.Secret != tt.secret || (got.CAHash != nil) != tt.pinned {
			t.Errorf("ParseToken(%q) = %+v, %v; want secret %q pinned %v", tt.in, got, err, tt.secret, tt.pinned)
		}
		if strings.Contains(got.String(), tt.secret) {
			t.Errorf("Token.String() shows the secret: %q", got.String())
		}
	}
}

func TestBootstrapToken(t *testing.T) {
	id, secret := BootstrapToken("s3cret")
	if !regexp.MustCompile(`^[a-z0-9]{6}$`).MatchString(id) || !regexp.MustCompile(`^[a-z0-9]{16}$`).MatchString(secret) {
		t.Fatalf("bootstrap token %s.%s is not in Kubernetes' form [a-z0-9]{6}.[a-z0-9]{16}", id, secret)
	}
	if id2, secret2 := BootstrapToken("s3cret"); id2 != id || secret2 != secret {
		t.Error("the bootstrap token is not the same on every server")
	}
	if id3, _ := BootstrapToken("other"); id3 == id {
		t.Error("two cluster tokens give the same bootstrap token id")
	}
}

func TestVerifyCA(t *testing.T) {
	ca := []byte("the cluster's CA")
	evil := []byte("a man in the middle's CA")
	plain, _ := ParseToken("s3cret")
	pinned, _ := ParseToken(Full("s3cret", ca))
	for _, tt := range []struct {
		name  string
		tok   Token
		ca    []byte
		proof string
		ok    bool
	}{
		{"plain token, the server's proof", plain, ca, CAProof("s3cret", ca), true},
		{"plain token, a proof made without the token", plain, evil, CAProof("guess", evil), false},
		{"plain token, the real proof replayed for another CA", plain, evil, CAProof("s3cret", ca), false},
		{"plain token, no proof", plain, ca, "", false},
		{"K10 token, its CA", pinned, ca, "", true},
		{"K10 token, another CA", pinned, evil, CAProof("s3cret", evil), false},
	} {
		err := VerifyCA(tt.tok, tt.ca, tt.proof)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrCAMismatch) {
			t.Errorf("%s: err = %v, want ErrCAMismatch", tt.name, err)
		}
	}
}
