//go:build qemu

package test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/init/node/join"
)

// nodeReady is how long a node may take from its config to Ready on a
// loaded 2-core machine.
const nodeReady = 10 * time.Minute

// agentConfig is an agent's cloud-config on the test bridge.
func agentConfig(name, addr, token, server string, extra ...string) string {
	return fmt.Sprintf(`#cloud-config
hostname: %s
network:
  version: 2
  ethernets:
    eth0:
      addresses: [%s/24]
      routes: [{to: default, via: %s}]
kubernetes:
  role: agent
  token: %s
  server: %s
%s`, name, addr, dsAddr, token, server, strings.Join(extra, "\n"))
}

// bridgeCNI is write_files for a node-local bridge network on subnet,
// for flannel-backend: none.
func bridgeCNI(subnet string) string {
	return fmt.Sprintf(`write_files:
  - path: /etc/cni/net.d/10-bridge.conflist
    permissions: "0644"
    content: |
      {"cniVersion": "1.0.0", "name": "cbr0", "plugins": [
        {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": true}}]}
`, subnet)
}

// nodes lists the cluster's nodes as name -> Ready status and taints.
func (c *apiClient) nodes(t *testing.T, server string) map[string]string {
	t.Helper()
	code, body, err := c.do("GET", server+"/api/v1/nodes", nil)
	if code != 200 {
		t.Fatalf("listing nodes: %d %v %s", code, err, body)
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name string }
			Spec     struct {
				Taints []struct{ Key, Value, Effect string }
			}
			Status struct {
				Conditions []struct{ Type, Status string }
			}
		}
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range list.Items {
		st := "NotReady"
		for _, c := range n.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				st = "Ready"
			}
		}
		for _, tn := range n.Spec.Taints {
			st += fmt.Sprintf(" %s=%s:%s", tn.Key, tn.Value, tn.Effect)
		}
		out[n.Metadata.Name] = st
	}
	return out
}

// TestAgentJoinsEmbedded: one server on embedded etcd and one agent with
// the token; both become Ready nodes, the server's taint as configured.
func TestAgentJoinsEmbedded(t *testing.T) {
	ns := bridgeNS(t)
	s1 := startPeer(t, ns, "s1", nodeRoot(t, serverConfig("s1", "192.168.77.11", clusterToken, "",
		"  node-taint: [example.com/role=server:NoSchedule]", "  flannel-backend: none", bridgeCNI("10.88.1.0/24"))))
	s1.expect(t, controlPlane, reServerReady)
	a1 := startPeer(t, ns, "a1", nodeRoot(t, agentConfig("a1", "192.168.77.21", clusterToken, "https://192.168.77.11:6443",
		"  flannel-backend: none", bridgeCNI("10.88.2.0/24"))))
	for _, n := range []*containerNode{s1, a1} {
		m := n.expect(t, nodeReady, `node: (\S+) is Ready, ([\d.]+)s after the config was loaded`)
		t.Logf("figures: %s: config loaded to node Ready: %ss (container platform)", m[1], m[2])
	}
	tok, _ := join.ParseToken(clusterToken)
	kc, err := (&join.Client{Server: "https://192.168.77.11:6443", Token: tok, DialContext: ns.DialContext}).AdminKubeconfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	api := newAPIClient(t, ns, kc)
	nodes := api.nodes(t, "https://192.168.77.11:6443")
	want := map[string]string{"s1": "Ready example.com/role=server:NoSchedule", "a1": "Ready"}
	for n, w := range want {
		if nodes[n] != w {
			t.Errorf("node %s: %q, want %q (all: %v)", n, nodes[n], w, nodes)
		}
	}
}
