package config

import (
	"strings"
	"testing"

	clusterjoin "github.com/cairn-os/cairn/config/join"
)

// TestTokenChecks: a token or agent-token a person could guess is refused
// where it is set, with how to make a good one; what `cairn token
// generate` makes passes, plain or in its K10 form; the agent token's
// rules. No diagnostic shows a token.
func TestTokenChecks(t *testing.T) {
	gen, err := clusterjoin.Generate()
	if err != nil {
		t.Fatal(err)
	}
	gen2, _ := clusterjoin.Generate()
	full := clusterjoin.Full(gen, []byte("the cluster's CA"))
	const agent = "  role: agent\n  vip: 10.0.0.100\n"
	tests := []struct {
		name, doc string
		want      []string
		ok        bool
	}{
		{"a generated token", "kubernetes:\n  token: " + gen + "\n", nil, true},
		{"its K10 form", "kubernetes:\n  token: " + full + "\n", nil, true},
		{"token: a", "kubernetes:\n  token: a\n",
			[]string{"c:2:10: error: kubernetes.token is too weak: about 4 bits of estimated strength, fewer than 128, and whoever guesses it is every server and may mint admin credentials; make one with `cairn token generate`"}, false},
		{"Winter2026!", "kubernetes:\n  token: Winter2026!\n",
			[]string{"c:2:10: error: kubernetes.token is too weak: about 72 bits", "make one with `cairn token generate`"}, false},
		{"a K10 token with a weak secret", "kubernetes:\n  token: K10" + strings.Repeat("ab", 32) + "::server:Winter2026!\n",
			[]string{"c:2:10: error: kubernetes.token is too weak"}, false},
		{"a K10 token that does not parse", "kubernetes:\n  token: K10abc::server:Winter2026!\n",
			[]string{"c:2:10: error: kubernetes.token: the CA hash of the K10 token is not 64 hex digits"}, false},
		{"a weak agent-token", "kubernetes:\n  token: " + gen + "\n  agent-token: agents\n",
			[]string{"c:3:16: error: kubernetes.agent-token is too weak: about 28 bits of estimated strength, fewer than 128, and whoever guesses it may join machines to the cluster"}, false},
		{"a weak token-file written by write_files", "write_files: [{path: /etc/cairn/token, content: \"Winter2026!\\n\", permissions: \"0600\"}]\nkubernetes:\n  token-file: /etc/cairn/token\n",
			[]string{"c:1:49: error: kubernetes.token is too weak"}, false},
		{"agent-token and agent-token-file", "kubernetes:\n  agent-token: " + gen + "\n  agent-token-file: /t\n",
			[]string{"c:3:21: error: kubernetes.agent-token and kubernetes.agent-token-file are both set; keep one"}, false},
		{"a relative agent-token-file", "kubernetes:\n  agent-token-file: t\n",
			[]string{`c:2:21: error: kubernetes.agent-token-file "t" is relative; give an absolute path`}, false},
		{"an agent with the agent token only", "kubernetes:\n" + agent + "  agent-token: " + gen + "\n", nil, true},
		{"an agent with the agent token file only", "kubernetes:\n" + agent + "  agent-token-file: /etc/cairn/agent-token\n", nil, true},
		{"an agent with both tokens", "kubernetes:\n" + agent + "  token: " + gen + "\n  agent-token: " + gen2 + "\n",
			[]string{"c:4:10: warning: kubernetes: an agent joins with agent-token and ignores token; keep the server token off agents"}, true},
		{"a server whose agent token is its token", "kubernetes:\n  token: " + gen + "\n  agent-token: " + gen + "\n",
			[]string{"c:3:16: warning: kubernetes.agent-token is the server token"}, true},
		{"a printed config", "kubernetes:\n  token: <redacted>\n  agent-token: <redacted>\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Load(src("c", tt.doc))
			got := messages(diags)
			if diags.HasErrors() == tt.ok {
				t.Errorf("HasErrors() = %v, want %v:\n%s", diags.HasErrors(), !tt.ok, got)
			}
			if tt.want == nil && got != "" {
				t.Errorf("unexpected diagnostics:\n%s", got)
			}
			wantInOrder(t, got, tt.want)
			for _, secret := range []string{gen, gen2, "Winter2026", "agents\n"} {
				if strings.Contains(got, secret) {
					t.Errorf("a diagnostic shows a token:\n%s", got)
				}
			}
		})
	}
}
