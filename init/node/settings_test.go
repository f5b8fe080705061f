package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/config"
)

// TestMustMatchNewKeys: agent-token is a setting every server shares: a
// server that differs from the record gets the line every must-match key
// gives, and the record (in clear) never holds the agent token;
// loadbalancer-pool and default-local-storage-path may change on a running
// cluster (a pool grows), so the record never refuses them (`cairn
// validate --cluster` compares them across the servers' files); and a
// record written before these keys existed still lets every server boot.
func TestMustMatchNewKeys(t *testing.T) {
	const agentA, agentB = "Jd5Pf9Ka3Ws7Lx2Cv6Bn8M", "Hc4Vb8Nm2Qw6Ez9Ry3Tu5P"
	base := func(edit func(k *config.Kubernetes)) map[string]string {
		k := &config.Kubernetes{ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local"}
		edit(k)
		return mustMatch(k)
	}
	file := filepath.Join(t.TempDir(), "agent-token")
	if err := os.WriteFile(file, []byte(agentA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cluster := base(func(k *config.Kubernetes) {
		k.AgentToken = agentA
		k.LoadBalancerPool = []string{"192.168.1.200-192.168.1.207"}
	})
	for key, v := range cluster {
		if strings.Contains(v, agentA) {
			t.Errorf("the record's %s holds the agent token in clear: %q", key, v)
		}
	}
	id := cluster["agent-token"]
	if !strings.HasPrefix(id, "bootstrap-token-") {
		t.Fatalf("the record's agent-token = %q, want bootstrap-token-<id>", id)
	}
	for _, tt := range []struct {
		name string
		edit func(k *config.Kubernetes)
		want string // the one line; "" for none
	}{
		{"alike", func(k *config.Kubernetes) {
			k.AgentToken = agentA
			k.LoadBalancerPool = []string{"192.168.1.200-192.168.1.207"}
		}, ""},
		{"alike, spelled otherwise", func(k *config.Kubernetes) {
			k.AgentTokenFile = file
			k.LoadBalancerPool = []string{"192.168.1.200/29"}
			k.DefaultLocalStoragePath = config.DefaultLocalStoragePath
		}, ""},
		{"another agent token", func(k *config.Kubernetes) { k.AgentToken = agentB; k.LoadBalancerPool = []string{"192.168.1.200/29"} },
			`kubernetes.agent-token is "bootstrap-token-`},
		{"no agent token", func(k *config.Kubernetes) { k.LoadBalancerPool = []string{"192.168.1.200/29"} },
			`kubernetes.agent-token is "" on this server but "` + id + `" in the cluster (set by its first server)`},
		{"another pool", func(k *config.Kubernetes) { k.AgentToken = agentA; k.LoadBalancerPool = []string{"192.168.1.200/30"} },
			""},
		{"another storage path", func(k *config.Kubernetes) {
			k.AgentToken = agentA
			k.LoadBalancerPool = []string{"192.168.1.200/29"}
			k.DefaultLocalStoragePath = "/var/lib/cairn/volumes"
		}, ""},
	} {
		got := settingsDiffer(base(tt.edit), cluster)
		switch {
		case tt.want == "" && len(got) != 0:
			t.Errorf("%s: refused: %q", tt.name, got)
		case tt.want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], tt.want)):
			t.Errorf("%s: differences = %q, want one starting %q", tt.name, got, tt.want)
		}
		for _, d := range got {
			if strings.Contains(d, agentA) || strings.Contains(d, agentB) {
				t.Errorf("%s: the line shows an agent token: %s", tt.name, d)
			}
		}
	}

	// A record an older cairn wrote has none of the three: every server
	// still boots, whatever it sets.
	old := base(func(*config.Kubernetes) {})
	for _, k := range []string{"agent-token", "loadbalancer-pool", "default-local-storage-path"} {
		delete(old, k)
	}
	mine := base(func(k *config.Kubernetes) {
		k.AgentToken = agentB
		k.LoadBalancerPool = []string{"10.0.0.200/29"}
		k.DefaultLocalStoragePath = "/var/lib/cairn/volumes"
	})
	if d := settingsDiffer(mine, old); len(d) != 0 {
		t.Errorf("a record without the new keys refused a server: %q", d)
	}
}
