package render

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const agentToken = "another-long-secret-only-agents-join-with"

// TestK3sAgentToken: k3s's agent joins with token, which takes the
// servers' agent token; an agent given agent-token (or its file) gets it
// there, and a server passes its agent-token on, as k3s's own keys.
func TestK3sAgentToken(t *testing.T) {
	for _, tt := range []struct {
		name, kube string
		want       map[string]string
	}{
		{"agent with agent-token only", "role: agent\n  agent-token: " + agentToken + "\n  vip: 192.168.1.100",
			map[string]string{"token": agentToken}},
		{"agent with agent-token-file only", "role: agent\n  agent-token-file: /etc/cairn/agent-token\n  vip: 192.168.1.100",
			map[string]string{"token-file": "/etc/cairn/agent-token"}},
		{"agent with both tokens", "role: agent\n  token: " + token + "\n  agent-token: " + agentToken + "\n  vip: 192.168.1.100",
			map[string]string{"token": agentToken}},
		{"agent with token only", "role: agent\n  token: " + token + "\n  vip: 192.168.1.100",
			map[string]string{"token": token}},
		{"server with agent-token", "token: " + token + "\n  agent-token: " + agentToken,
			map[string]string{"token": token, "agent-token": agentToken}},
	} {
		cfg := load(t, "kubernetes:\n  distribution: k3s\n  "+tt.kube+"\n")
		cmd, err := K3s(cfg, testNode)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(cmd.Files[0].Data, &doc); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		for _, key := range []string{"token", "token-file", "agent-token", "agent-token-file"} {
			got, _ := doc[key].(string)
			if got != tt.want[key] {
				t.Errorf("%s: k3s %s config %s = %q, want %q\n%s", tt.name, cmd.Args[0], key, got, tt.want[key], cmd.Files[0].Data)
			}
		}
	}
}

// TestAgentTokenNeverOnACommandLine: the agent token, as given or as a
// K10 token's secret part, is refused on an argument list as the server
// token is.
func TestAgentTokenNeverOnACommandLine(t *testing.T) {
	k10 := "K10" + strings.Repeat("ab", 32) + "::server:" + agentToken
	for _, tt := range []struct{ name, given, onArgs string }{
		{"server token", "token: " + token, token},
		{"agent token", "agent-token: " + agentToken, agentToken},
		{"K10 agent token's secret", "agent-token: " + k10, agentToken},
	} {
		cfg := load(t, "kubernetes:\n  role: agent\n  vip: 192.168.1.100\n  "+tt.given+"\n  kubelet-arg: [\"node-labels=x=y,"+tt.onArgs+"=1\"]\n")
		if _, err := Kubelet(cfg, Node{Name: "node-1", IP: "192.168.1.11"}); err == nil || !strings.Contains(err.Error(), "a secret would appear on the command line") {
			t.Errorf("%s on kubelet's command line: err = %v, want it refused", tt.name, err)
		}
	}
}
