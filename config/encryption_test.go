package config

import "testing"

// secrets-encryption is on unless a server's config turns it off, and a
// value that is not a bool is refused at its line and column.
func TestEncryptSecrets(t *testing.T) {
	for _, tt := range []struct {
		doc  string
		want bool
	}{
		{"kubernetes:\n  role: server\n", true},
		{"kubernetes:\n  secrets-encryption: true\n", true},
		{"kubernetes:\n  secrets-encryption: false\n", false},
		{"kubernetes:\n  secrets-encryption: off\n", false},
	} {
		cfg, diags := Load(Source{Name: "c", Data: []byte(tt.doc)})
		if diags.HasErrors() {
			t.Fatalf("%q: %v", tt.doc, diags)
		}
		if got := cfg.Kubernetes.EncryptSecrets(); got != tt.want {
			t.Errorf("%q: EncryptSecrets() = %v, want %v", tt.doc, got, tt.want)
		}
	}
	// A later source that turns it off wins over an earlier one that
	// does not set it, and the other way round.
	cfg, diags := Load(Source{Name: "a", Data: []byte("kubernetes:\n  secrets-encryption: false\n")},
		Source{Name: "b", Data: []byte("kubernetes:\n  vip: 192.168.1.100\n")})
	if diags.HasErrors() || cfg.Kubernetes.EncryptSecrets() {
		t.Errorf("merged: EncryptSecrets() = %v (%v), want false from the first source", cfg.Kubernetes.EncryptSecrets(), diags)
	}
	_, diags = Load(Source{Name: "c", Data: []byte("kubernetes:\n  secrets-encryption: [yes]\n")})
	if got := messages(diags); len(diags) != 1 || got != "c:2:23: error: kubernetes.secrets-encryption must be true or false, not a list\n" {
		t.Errorf("diagnostics = %q", got)
	}
}
