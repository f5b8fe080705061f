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
			[]string{"a2.yaml:3:15: error: the token here differs from the one in a1.yaml:3:10; every node of a cluster joins with the same token"}},
		{"only agents", []string{agent("https://10.0.0.100:6443")},
			[]string{"a1.yaml:2:9: error: no server among the configs of the cluster"}},
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
			for _, secret := range []string{"Xq7Lm2Rz9Vk4Tp8Wn3Hs6J", "uW4Kp8Rt2Zx6Qv9Ln3Bj7Y"} {
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
