package join

import (
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

func TestBootstrapTokens(t *testing.T) {
	form := regexp.MustCompile(`^[a-z0-9]{6}$`)
	secretForm := regexp.MustCompile(`^[a-z0-9]{16}$`)
	for name, f := range map[string]func(string) (string, string){"server": ServerBootstrapToken, "agent": AgentBootstrapToken} {
		id, secret := f("s3cret")
		if !form.MatchString(id) || !secretForm.MatchString(secret) {
			t.Fatalf("%s bootstrap token %s.%s is not in Kubernetes' form [a-z0-9]{6}.[a-z0-9]{16}", name, id, secret)
		}
		if id2, secret2 := f("s3cret"); id2 != id || secret2 != secret {
			t.Errorf("the %s bootstrap token is not the same on every server", name)
		}
		if id3, _ := f("other"); id3 == id {
			t.Errorf("two tokens give the same %s bootstrap token id", name)
		}
	}
	// With only a server token, the agents' bootstrap token is still not
	// the servers'.
	sid, _ := ServerBootstrapToken("s3cret")
	aid, _ := AgentBootstrapToken("s3cret")
	if sid == aid {
		t.Errorf("one token derives server and agent bootstrap tokens with the same id %s", sid)
	}
}

// TestStrength: what `cairn token generate` makes passes, with or without
// its K10 form; what people type does not.
func TestStrength(t *testing.T) {
	gen, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	full, _ := ParseToken(Full(gen, []byte("ca")))
	for _, tt := range []struct {
		name, secret string
		strong       bool
	}{
		{"cairn token generate", gen, true},
		{"its K10 form's secret", full.Secret, true},
		{"openssl rand -base64 32", "q8Jx2k9Vd0Lr7Ww1sYt6Zp3Nc5Hb4Mg8Ae0Fu2Xi9Ko=", true},
		{"a", "a", false},
		{"Winter2026!", "Winter2026!", false},
		{"a long run", strings.Repeat("a", 60), false},
		{"a long sequence", "abcdefghijklmnopqrstuvwxyz0123456789", false},
		{"a bootstrap token", "abcdef.0123456789abcdef", false},
		{"openssl rand -hex 16", "3f9a1c7e52d08b46e1a97c3d5f2068b4", true},
		{"e2e-cluster-s3cret", "e2e-cluster-s3cret", false},
	} {
		bits := Strength(tt.secret)
		if (bits >= MinStrength) != tt.strong {
			t.Errorf("%s: Strength = %.0f bits; want strong=%v (at least %d)", tt.name, bits, tt.strong, MinStrength)
		}
	}
}
