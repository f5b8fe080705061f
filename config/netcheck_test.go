package config

import (
	"strings"
	"testing"
)

// TestNodeNetworkChecks: the checks that know the node's network and the
// cluster, each asserting the lines a user sees.
func TestNodeNetworkChecks(t *testing.T) {
	const lan = "network:\n  version: 2\n  ethernets:\n    lan:\n      addresses: [192.168.1.11/24]\n      routes: [{to: 10.20.0.0/16, via: 192.168.1.1}]\n"
	const dhcp = "network:\n  version: 2\n  ethernets:\n    lan: {dhcp4: true}\n"
	tests := []struct {
		name, doc string
		want      []string // every line printed, in order; nil: none
	}{
		{"vip in the static subnet", lan + "kubernetes:\n  vip: 192.168.1.100\n", nil},
		{"vip outside every static subnet", lan + "kubernetes:\n  vip: 192.168.2.100\n",
			[]string{"c:8:8: error: kubernetes.vip 192.168.2.100 is in none of the node's subnets (192.168.1.0/24); pick an address in the subnet of the link that should hold it"}},
		{"vip is the node's address", lan + "kubernetes:\n  vip: 192.168.1.11\n",
			[]string{"c:8:8: error: kubernetes.vip 192.168.1.11 is this node's own address (network.ethernets.lan.addresses[0]); the VIP must be an address no node owns"}},
		{"vip is the network address", lan + "kubernetes:\n  vip: 192.168.1.0\n",
			[]string{"c:8:8: error: kubernetes.vip 192.168.1.0 is the network address of network.ethernets.lan.addresses[0] 192.168.1.0/24; pick a host address inside it"}},
		{"vip is the broadcast address", lan + "kubernetes:\n  vip: 192.168.1.255\n",
			[]string{"c:8:8: error: kubernetes.vip 192.168.1.255 is the broadcast address of network.ethernets.lan.addresses[0] 192.168.1.0/24"}},
		{"vip with DHCP", dhcp + "kubernetes:\n  vip: 10.0.0.100\n",
			[]string{"c:6:8: warning: kubernetes.vip 10.0.0.100 cannot be checked against the node's network before the DHCP lease of lan; make sure it lies in the lease's subnet, or give the server a static address"}},
		{"vip-interface names an unknown link", lan + "kubernetes:\n  vip: 192.168.1.100\n  vip-interface: eth9\n",
			[]string{`c:9:18: error: kubernetes.vip-interface "eth9" is not a link under network (ethernets, vlans, bonds or a set-name)`}},
		{"vip-interface with another subnet", lan + "    lan2:\n      addresses: [10.9.0.5/24]\nkubernetes:\n  vip: 192.168.1.100\n  vip-interface: lan2\n",
			[]string{"c:10:8: error: kubernetes.vip 192.168.1.100 is in none of the node's subnets (10.9.0.0/24)"}},
		{"agents do not hold the vip", lan + "kubernetes:\n  role: agent\n  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n  vip: 10.99.0.100\n", nil},
		{"cluster-cidr overlaps the node's subnet", lan + "kubernetes:\n  cluster-cidr: 192.168.0.0/16\n",
			[]string{"c:8:17: error: kubernetes.cluster-cidr 192.168.0.0/16 overlaps the node's subnet 192.168.1.0/24 (network.ethernets.lan.addresses[0]); pick a range the network does not use"}},
		{"service-cidr overlaps a route", lan + "kubernetes:\n  service-cidr: 10.20.0.0/16\n",
			[]string{"c:8:17: error: kubernetes.service-cidr 10.20.0.0/16 overlaps the route to 10.20.0.0/16 (network.ethernets.lan.routes[0]); pick a range the network does not use"}},
		{"node-role label", "kubernetes:\n  node-label: [node-role.kubernetes.io/worker=true, node.kubernetes.io/pool=a, topology.kubernetes.io/zone=a, example.com/role=db]\n",
			[]string{`c:2:16: error: kubernetes.node-label[0] "node-role.kubernetes.io/worker=true": the kubelet refuses to set labels in the kubernetes.io and k8s.io namespaces`}},
		{"k8s.io label", "kubernetes:\n  node-label: [x.k8s.io/a=b]\n",
			[]string{`c:2:16: error: kubernetes.node-label[0] "x.k8s.io/a=b": the kubelet refuses`}},
		{"joining server without token", "kubernetes:\n  server: https://10.0.0.1:6443\n",
			[]string{"c:2:11: error: kubernetes: a server that joins a cluster (server is set) needs token (or token-file); use the first server's token"}},
		{"arg without value", "kubernetes:\n  kubelet-arg: [v=2, --fail-swap-on]\n",
			[]string{`c:2:22: error: kubernetes.kubelet-arg[1] "--fail-swap-on" has no value; write name=value (a switch as fail-swap-on=true)`}},
		{"world-readable token file", "write_files: [{path: /etc/cairn/token, content: s3cr3tXq7Lm2Rz9Vk4Tp8W}]\nkubernetes:\n  token-file: /etc/cairn/token\n",
			[]string{`c:1:15: warning: write_files[0] writes the token file /etc/cairn/token readable by every user (mode 0644); give it permissions: "0600"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Load(src("c", tt.doc))
			got := messages(diags)
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

// TestTokenFileRedacted: the write_files entry that writes the token file
// holds the token, and --print hides it like the token itself.
func TestTokenFileRedacted(t *testing.T) {
	cfg, diags := Load(src("c", "write_files: [{path: /etc/cairn/token, content: s3cr3t-t0k3n-Xq7Lm2Rz9Vk4Tp8W, permissions: \"0644\"}]\nkubernetes:\n  token-file: /etc/cairn/token\n"))
	if diags.HasErrors() {
		t.Fatal(messages(diags))
	}
	out, err := cfg.Redacted().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "s3cr3t-t0k3n-Xq7Lm2Rz9Vk4Tp8W") || !strings.Contains(string(out), "content: <redacted>") {
		t.Errorf("printed config:\n%s", out)
	}
}
