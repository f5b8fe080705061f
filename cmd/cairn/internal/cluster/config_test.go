package cluster

import (
	"slices"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/qemu/container"
)

// TestNodeConfigs reads every node's config back through the config
// package's strict parser and Load, as the node will, and checks what
// each holds: on embedded etcd, one cluster (the first server starts it,
// the others join it through server:), on a datastore, servers that
// share it.
func TestNodeConfigs(t *testing.T) {
	token, err := join.Generate()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, store string // store: a container datastore kind, or "" for embedded
		servers     int
		vip         bool
		wantServer  string // the agents' server, and joining servers' on embedded etcd
	}{
		{"postgres with a vip", container.Postgres, 2, true, "https://192.168.200.10:6443"},
		{"mysql", container.MySQL, 1, false, "https://192.168.200.11:6443"},
		{"etcd", container.Etcd, 3, false, "https://192.168.200.11:6443"},
		{"embedded", "", 1, false, "https://192.168.200.11:6443"},
		{"embedded three servers", "", 3, false, "https://192.168.200.11:6443"},
		{"embedded three servers with a vip", "", 3, true, "https://192.168.200.10:6443"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := validState()
			st.Store = nil
			for i := 2; i <= tc.servers; i++ {
				st.Nodes = append(st.Nodes, newNode("dev", "server", i, hostAddr(st.Network.Subnet, serverHost0+i)))
			}
			st.Nodes = append(st.Nodes, newNode("dev", "agent", 2, hostAddr(st.Network.Subnet, agentHost0+2)))
			if tc.vip {
				st.VIP = hostAddr(st.Network.Subnet, vipHost)
			}
			endpoint := ""
			if tc.store != "" {
				ds := container.Datastore{Kind: tc.store, Addr: st.Network.BridgeAddr, Password: "0123456789abcdef"}
				if tc.store == container.Etcd {
					if ds.TLS, err = container.NewEtcdTLS(ds.Addr); err != nil {
						t.Fatal(err)
					}
				}
				st.Store = &storeState{Datastore: ds}
				endpoint = ds.Endpoint()
			}
			cfgs, err := nodeConfigs(st, token, endpoint)
			if err != nil {
				t.Fatal(err)
			}
			if len(cfgs) != len(st.Nodes) {
				t.Fatalf("%d configs for %d nodes", len(cfgs), len(st.Nodes))
			}
			var starters []string // servers that start a cluster of their own
			for _, n := range st.Nodes {
				data := cfgs[n.ID]
				if !strings.HasPrefix(string(data), "#cloud-config\n") {
					t.Errorf("%s's config does not start with #cloud-config:\n%s", n.Name, data)
				}
				src := config.Source{Name: n.Name + ".yaml", Data: data}
				if _, diags := config.Parse(src); len(diags) != 0 {
					t.Errorf("%s's config: %v\n%s", n.Name, diags, data)
				}
				c, diags := config.Load(src)
				if len(diags) != 0 {
					t.Fatalf("%s's config: %v\n%s", n.Name, diags, data)
				}
				k := c.Kubernetes
				eth := c.Network.Ethernets["eth0"]
				if c.Hostname != n.Name || !slices.Equal(eth.Addresses, []string{n.Addr.String() + "/24"}) ||
					len(eth.Routes) != 1 || eth.Routes[0] != (config.Route{To: "default", Via: "192.168.200.1"}) {
					t.Errorf("%s's config: hostname %q, eth0 %+v\n%s", n.Name, c.Hostname, eth, data)
				}
				if k.Role != n.Role || k.Token != token {
					t.Errorf("%s's config: role %q, token %q\n%s", n.Name, k.Role, k.Token, data)
				}
				wantVIP := ""
				if tc.vip && n.Role == "server" {
					wantVIP = "192.168.200.10"
				}
				if k.VIP != wantVIP {
					t.Errorf("%s's config: vip %q; want %q", n.Name, k.VIP, wantVIP)
				}
				if n.Role == "server" {
					// On embedded etcd the first server starts the
					// cluster and every other joins it; on a datastore
					// no server is given server:.
					wantJoin := ""
					if tc.store == "" && n.ID != "s1" {
						wantJoin = tc.wantServer
					}
					if k.DatastoreEndpoint != endpoint || k.Server != wantJoin {
						t.Errorf("%s's config: datastore-endpoint %q, server %q; want %q and %q\n%s", n.Name, k.DatastoreEndpoint, k.Server, endpoint, wantJoin, data)
					}
					if k.DatastoreEndpoint == "" && k.Server == "" {
						starters = append(starters, n.Name)
					}
					// etcd takes TLS with the harness's client certificate, its key 0600.
					tlsFiles := k.DatastoreCAFile + " " + k.DatastoreCertFile + " " + k.DatastoreKeyFile
					if want := container.EtcdCAFile + " " + container.EtcdCertFile + " " + container.EtcdKeyFile; tc.store == container.Etcd && (tlsFiles != want || !strings.HasPrefix(endpoint, "https://")) {
						t.Errorf("%s's config: etcd %s with files %q; want https:// and %q", n.Name, endpoint, tlsFiles, want)
					} else if tc.store != container.Etcd && tlsFiles != "  " {
						t.Errorf("%s's config: datastore TLS files %q for %s", n.Name, tlsFiles, tc.store)
					}
					if tc.store == container.Etcd && !slices.ContainsFunc(c.WriteFiles, func(w config.WriteFile) bool {
						return w.Path == container.EtcdKeyFile && w.Permissions == "0600" && strings.Contains(w.Content, "PRIVATE KEY")
					}) {
						t.Errorf("%s's config does not write etcd's client key 0600", n.Name)
					}
				} else if k.DatastoreEndpoint != "" || k.Server != tc.wantServer {
					t.Errorf("%s's config: datastore-endpoint %q, server %q; want none and %s", n.Name, k.DatastoreEndpoint, k.Server, tc.wantServer)
				}
			}
			if tc.store == "" && !slices.Equal(starters, []string{"dev-s1"}) {
				t.Errorf("servers that start an embedded etcd cluster of their own: %v; want dev-s1 alone (one cluster)", starters)
			}
		})
	}
}

// TestNodeConfigTokens: a token YAML would read as another type (a
// generated one is hex, so can be all digits) comes back as written. (Each
// is strong enough for cairn validate.)
func TestNodeConfigTokens(t *testing.T) {
	st := validState()
	for _, token := range []string{"904718263590471826359047182635904718263590471826", "9047182635904718263590471826359047e10", "0x9047182635904718263590471826359047ab", "K10" + strings.Repeat("ab", 32) + "::server:9047182635904718263590471826359047182635"} {
		cfgs, err := nodeConfigs(st, token, "")
		if err != nil {
			t.Fatalf("token %q: %v", token, err)
		}
		for id, data := range cfgs {
			c, diags := config.Load(config.Source{Name: id + ".yaml", Data: data})
			if diags.HasErrors() || c.Kubernetes.Token != token {
				t.Errorf("token %q: %s's config gives %v, %v\n%s", token, id, c, diags, data)
			}
		}
	}
}
