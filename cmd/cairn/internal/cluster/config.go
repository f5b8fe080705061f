package cluster

import (
	"fmt"
	"strconv"

	"github.com/cairn-os/cairn/config"
)

// nodeConfig is the cloud-config of node n: its name, its address on the
// bridge, its role and the token; a server's datastore (with etcd's client
// certificate) and VIP, an agent's server. On embedded etcd (no endpoint)
// the first server starts the cluster and every other server joins it
// through server: (the VIP when there is one, so a server that comes back
// later finds the cluster even with the first one down); without that,
// each would start a cluster of its own.
func nodeConfig(st *state, n nodeState, token, endpoint string) *config.Config {
	c := &config.Config{
		Hostname: n.Name,
		Network: &config.Network{Version: 2, Ethernets: map[string]config.Ethernet{
			"eth0": {Interface: config.Interface{
				Addresses: []string{n.Addr.String() + "/" + strconv.Itoa(st.Network.Subnet.Bits())},
				// A default route (nowhere beyond the bridge):
				// kube-proxy's Service addresses need one to be
				// routed at all.
				Routes: []config.Route{{To: "default", Via: st.Network.BridgeAddr.String()}},
			}},
		}},
		Kubernetes: config.Kubernetes{Role: n.Role, Token: token},
	}
	k := &c.Kubernetes
	// The cluster's address: the VIP, else the first server's.
	clusterURL := apiURL(st.Nodes[0].Addr.String())
	if st.VIP.IsValid() {
		clusterURL = apiURL(st.VIP.String())
	}
	if n.Role == "server" {
		k.DatastoreEndpoint = endpoint
		if st.Store != nil && st.Store.TLS != nil {
			st.Store.TLS.Apply(c)
		}
		if st.VIP.IsValid() {
			k.VIP = st.VIP.String()
		}
		if endpoint == "" && n.ID != st.Nodes[0].ID {
			k.Server = clusterURL
		}
	} else {
		k.Server = clusterURL
	}
	return c
}

// apiURL is the apiserver's URL at host.
func apiURL(host string) string {
	return "https://" + host + ":" + strconv.Itoa(config.APIServerPort)
}

// nodeConfigs renders every node's cloud-config, by node ID, and checks
// them, alone (read back strictly, as the node will) and together, as
// `cairn validate` would. They hold the token: files of them are 0600.
func nodeConfigs(st *state, token, endpoint string) (map[string][]byte, error) {
	out := map[string][]byte{}
	var loaded []*config.Config
	for _, n := range st.Nodes {
		data, err := nodeConfig(st, n, token, endpoint).Marshal()
		if err != nil {
			return nil, fmt.Errorf("the config of %s: %w", n.Name, err)
		}
		c, diags := config.Load(config.Source{Name: n.Name + ".yaml", Data: data})
		if diags.HasErrors() {
			return nil, fmt.Errorf("the config cairn made for %s does not validate (a bug in cairn): %v", n.Name, diags)
		}
		loaded = append(loaded, c)
		out[n.ID] = data
	}
	if diags := config.CheckCluster(loaded); diags.HasErrors() {
		return nil, fmt.Errorf("the configs cairn made do not agree (a bug in cairn): %v", diags)
	}
	return out, nil
}
