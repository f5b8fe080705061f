package render

import (
	"slices"
	"testing"
)

// Embedded etcd's member: a new cluster of one, or joining the cluster a
// joining server was given; at the node's address for peers and remote
// clients, on loopback for the apiserver and the init; only loopback on a
// node with no address.
func TestEtcdMember(t *testing.T) {
	cfg := load(t, "kubernetes:\n  token: "+token+"\n")
	for _, tt := range []struct {
		name string
		node Node
		want []string
	}{
		{"first", Node{Name: "s1", IP: "10.0.0.11"}, []string{
			"--listen-client-urls=https://127.0.0.1:2379,https://10.0.0.11:2379",
			"--advertise-client-urls=https://10.0.0.11:2379",
			"--listen-peer-urls=https://10.0.0.11:2380",
			"--initial-advertise-peer-urls=https://10.0.0.11:2380",
			"--initial-cluster=s1=https://10.0.0.11:2380",
			"--initial-cluster-state=new"}},
		{"joining", Node{Name: "s2", IP: "10.0.0.12", EtcdCluster: "s1=https://10.0.0.11:2380,s2=https://10.0.0.12:2380"}, []string{
			"--listen-peer-urls=https://10.0.0.12:2380",
			"--initial-cluster=s1=https://10.0.0.11:2380,s2=https://10.0.0.12:2380",
			"--initial-cluster-state=existing"}},
		{"IPv6 first of two", Node{Name: "s3", IP: "fd00::3,10.0.0.13"}, []string{
			"--listen-peer-urls=https://[fd00::3]:2380",
			"--advertise-client-urls=https://[fd00::3]:2379"}},
		{"no address", Node{Name: "s4"}, []string{
			"--listen-client-urls=https://127.0.0.1:2379",
			"--advertise-client-urls=https://127.0.0.1:2379",
			"--listen-peer-urls=https://127.0.0.1:2380"}},
	} {
		c, err := Etcd(cfg, tt.node)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !slices.Contains(c.Args, w) {
				t.Errorf("%s: etcd's arguments lack %s: %q", tt.name, w, c.Args)
			}
		}
	}
}
