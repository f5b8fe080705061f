package config

import (
	"strings"
	"testing"
)

// TestCheckCluster: the configs of one cluster checked together, each case
// asserting the lines a user sees.
func TestCheckCluster(t *testing.T) {
	const s1 = "network: {version: 2, ethernets: {lan: {addresses: [10.0.0.11/24]}}}\nkubernetes:\n  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n  vip: 10.0.0.100\n  tls-san: [\"*.example.com\"]\n"
	const s2 = "network: {version: 2, ethernets: {lan: {addresses: [10.0.0.12/24]}}}\nkubernetes:\n  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n  vip: 10.0.0.100\n"
	agent := func(server string) string {
		return "kubernetes:\n  role: agent\n  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n  server: " + server + "\n"
	}
	const agentTok = "Jd5Pf9Ka3Ws7Lx2Cv6Bn8M"
	const withAgent = "  agent-token: " + agentTok + "\n"
	agentWith := func(key, tok string) string {
		return "kubernetes:\n  role: agent\n  " + key + ": " + tok + "\n  server: https://10.0.0.100:6443\n"
	}
	tests := []struct {
		name  string
		files []string // s1.yaml, s2.yaml, a1.yaml, ...
		want  []string
	}{
		{"agree", []string{s1, s2, agent("https://10.0.0.100:6443")}, nil},
		{"agent at a server's address", []string{s1, s2, agent("https://10.0.0.12:6443")}, nil},
		{"agent at a wildcard tls-san", []string{s1, s2, agent("https://k8s.example.com:6443")}, nil},
		{"agent at another port", []string{s1, s2, agent("https://10.0.0.100:443")},
			[]string{"a3.yaml:4:11: error: kubernetes.server https://10.0.0.100:443 uses port 443, but servers serve the API on 6443"}},
		{"cluster-domain differs", []string{s1, s2 + "  cluster-domain: k8s.local\n"},
			[]string{"a2.yaml:5:19: error: kubernetes.cluster-domain is k8s.local here but cluster.local (the default) in a1.yaml; servers of one cluster must agree on it"}},
		{"token from a token file", []string{s1, strings.Replace(s2, "token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J", "token-file: /etc/cairn/token", 1) + "write_files: [{path: /etc/cairn/token, content: \"uW4Kp8Rt2Zx6Qv9Ln3Bj7Y\\n\", permissions: \"0600\"}]\n"},
			[]string{"a2.yaml:3:15: error: the token here differs from the one in a1.yaml:3:10; servers of one cluster share it"}},
		{"only agents", []string{agent("https://10.0.0.100:6443")},
			[]string{"a1.yaml:2:9: error: no server among the configs of the cluster"}},
		// The agent token: the servers share it, and agents join with it
		// under either key (k3s agents give it as token).
		{"agent joins with the servers' agent-token as token", []string{s1 + withAgent, s2 + withAgent, agentWith("token", agentTok)}, nil},
		{"agent joins with agent-token", []string{s1 + withAgent, s2 + withAgent, agentWith("agent-token", agentTok)}, nil},
		{"agent-token from a file", []string{s1 + withAgent, s2 + "  agent-token-file: /etc/cairn/agent-token\nwrite_files: [{path: /etc/cairn/agent-token, content: \"" + agentTok + "\\n\", permissions: \"0600\"}]\n",
			agentWith("token", "K10"+strings.Repeat("0f", 32)+"::server:"+agentTok)}, nil},
		{"agent with the server token", []string{s1 + withAgent, s2 + withAgent, agent("https://10.0.0.100:6443")},
			[]string{"a3.yaml:3:10: error: the token here is the servers' token, but the servers have an agent-token (a1.yaml:6:16) and agents join with it: give this agent that agent-token, and keep the server token off agents"}},
		{"agent with another agent-token", []string{s1 + withAgent, s2 + withAgent, agentWith("agent-token", "Hc4Vb8Nm2Qw6Ez9Ry3Tu5P")},
			[]string{"a3.yaml:3:16: error: the agent-token here is not the servers' agent-token (a1.yaml:6:16); an agent joins with the servers' agent-token"}},
		{"agent-token differs between servers", []string{s1 + withAgent, s2 + "  agent-token: Hc4Vb8Nm2Qw6Ez9Ry3Tu5P\n", agentWith("token", agentTok)},
			[]string{"a2.yaml:5:16: error: the agent-token here differs from the one in a1.yaml:6:16; servers of one cluster share it"}},
		{"a server without the agent-token", []string{s1 + withAgent, s2, agentWith("token", agentTok)},
			[]string{"a2.yaml:2:1: error: there is no agent-token here, but a1.yaml:6:16 sets one; servers of one cluster share it"}},
		{"agent with another token, no agent-token", []string{s1, s2, agentWith("token", agentTok)},
			[]string{"a3.yaml:3:10: error: the token here is not the servers' token (a1.yaml:3:10); the servers have no agent-token, so an agent joins with their token"}},
		{"loadbalancer-pool differs", []string{s1 + "  loadbalancer-pool: [10.0.0.200-10.0.0.210]\n", s2 + "  loadbalancer-pool: [10.0.0.200/29]\n"},
			[]string{"a2.yaml:5:3: error: kubernetes.loadbalancer-pool is 10.0.0.200-10.0.0.207 here but 10.0.0.200-10.0.0.210 in a1.yaml:6:3; servers of one cluster must agree on it"}},
		{"loadbalancer-pool alike, spelled two ways", []string{s1 + "  loadbalancer-pool: [10.0.0.200-10.0.0.207]\n", s2 + "  loadbalancer-pool: [10.0.0.200/29]\n"}, nil},
		{"default-local-storage-path differs", []string{s1, s2 + "  default-local-storage-path: /var/lib/cairn/volumes\n"},
			[]string{"a2.yaml:5:31: error: kubernetes.default-local-storage-path is /var/lib/cairn/volumes here but /var/lib/cairn/storage (the default) in a1.yaml; servers of one cluster must agree on it"}},
		{"default-local-storage-path given as the default", []string{s1, s2 + "  default-local-storage-path: /var/lib/cairn/storage\n"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var nodes []*Config
			for i, doc := range tt.files {
				cfg, diags := Load(src("a"+string(rune('1'+i))+".yaml", doc))
				if diags.HasErrors() {
					t.Fatalf("file %d: %s", i+1, messages(diags))
				}
				nodes = append(nodes, cfg)
			}
			got := messages(CheckCluster(nodes))
			for _, secret := range []string{"Xq7Lm2Rz9Vk4Tp8Wn3Hs6J", "uW4Kp8Rt2Zx6Qv9Ln3Bj7Y", agentTok, "Hc4Vb8Nm2Qw6Ez9Ry3Tu5P"} {
				if strings.Contains(got, secret) {
					t.Errorf("a token is printed:\n%s", got)
				}
			}
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			if got == "" {
				lines = nil
			}
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(tt.want), got)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("line %d = %q, want it to start %q", i+1, lines[i], w)
				}
			}
		})
	}
}
