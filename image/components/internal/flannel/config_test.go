package flannel

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	valid := Options{Kubeconfig: "k", NodeName: "n", ClusterCIDR: "10.42.0.0/16", SubnetFile: "s", CNIConf: "c"}
	cases := []struct {
		name    string
		edit    func(*Options)
		wantErr string
	}{
		{"valid, vxlan by default", func(*Options) {}, ""},
		{"host-gw", func(o *Options) { o.Backend = "host-gw" }, ""},
		{"unknown backend", func(o *Options) { o.Backend = "wireguard" }, `--backend "wireguard" is not one of vxlan, host-gw`},
		{"no kubeconfig", func(o *Options) { o.Kubeconfig = "" }, "--kubeconfig is required"},
		{"no node name", func(o *Options) { o.NodeName = "" }, "--node-name is required"},
		{"no subnet file", func(o *Options) { o.SubnetFile = "" }, "--subnet-file is required"},
		{"no cni conf", func(o *Options) { o.CNIConf = "" }, "--cni-conf is required"},
		{"not a CIDR", func(o *Options) { o.ClusterCIDR = "10.42.0.0" }, `--cluster-cidr "10.42.0.0" is not a CIDR`},
		{"IPv6", func(o *Options) { o.ClusterCIDR = "fd00::/56" }, "only an IPv4 cluster CIDR"},
		{"too small", func(o *Options) { o.ClusterCIDR = "10.42.0.0/29" }, "too small"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := valid
			c.edit(&o)
			cidr, err := o.check()
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("check: %v", err)
				}
				if cidr.String() != "10.42.0.0/16" || (o.Backend != BackendVXLAN && o.Backend != BackendHostGW) {
					t.Errorf("check gave %v, backend %q", cidr, o.Backend)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("check: %v, want an error containing %q", err, c.wantErr)
			}
		})
	}
}

func TestNetConf(t *testing.T) {
	_, cidr, _ := net.ParseCIDR("10.42.0.0/16")
	for backend, want := range map[string]string{
		BackendVXLAN:  `{"Backend":{"Port":8472,"Type":"vxlan","VNI":1},"EnableIPv4":true,"Network":"10.42.0.0/16"}`,
		BackendHostGW: `{"Backend":{"Type":"host-gw"},"EnableIPv4":true,"Network":"10.42.0.0/16"}`,
	} {
		got, err := netConf(cidr, backend)
		if err != nil || string(got) != want {
			t.Errorf("netConf(%s) = %s, %v; want %s", backend, got, err, want)
		}
	}
}

// TestCNIConfList checks the conflist containerd reads, field by field, as
// the CNI plugins will parse it.
func TestCNIConfList(t *testing.T) {
	_, podCIDR, _ := net.ParseCIDR("10.42.3.0/24")
	data, err := CNIConfList(podCIDR, 1450)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Name       string `json:"name"`
		CNIVersion string `json:"cniVersion"`
		Plugins    []struct {
			Type         string          `json:"type"`
			Bridge       string          `json:"bridge"`
			IsGateway    bool            `json:"isGateway"`
			IPMasq       *bool           `json:"ipMasq"`
			HairpinMode  bool            `json:"hairpinMode"`
			MTU          int             `json:"mtu"`
			SNAT         bool            `json:"snat"`
			Capabilities map[string]bool `json:"capabilities"`
			IPAM         struct {
				Type   string                `json:"type"`
				Ranges [][]map[string]string `json:"ranges"`
				Routes []map[string]string   `json:"routes"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if got.Name != "cbr0" || got.CNIVersion != "1.0.0" || len(got.Plugins) != 2 {
		t.Fatalf("conflist %s", data)
	}
	b, p := got.Plugins[0], got.Plugins[1]
	if b.Type != "bridge" || b.Bridge != "cni0" || !b.IsGateway || b.IPMasq == nil || *b.IPMasq || !b.HairpinMode || b.MTU != 1450 {
		t.Errorf("bridge plugin: %+v", b)
	}
	if b.IPAM.Type != "host-local" || len(b.IPAM.Ranges) != 1 || len(b.IPAM.Ranges[0]) != 1 ||
		b.IPAM.Ranges[0][0]["subnet"] != "10.42.3.0/24" || len(b.IPAM.Routes) != 1 || b.IPAM.Routes[0]["dst"] != "0.0.0.0/0" {
		t.Errorf("bridge ipam: %+v", b.IPAM)
	}
	if p.Type != "portmap" || !p.Capabilities["portMappings"] || !p.SNAT {
		t.Errorf("portmap plugin: %+v", p)
	}

	// The subnet is the network, whatever address the CIDR was given with.
	host := &net.IPNet{IP: net.ParseIP("10.42.3.1").To4(), Mask: podCIDR.Mask}
	if data2, _ := CNIConfList(host, 1450); string(data2) != string(data) {
		t.Errorf("a host address in the pod CIDR changed the conflist:\n%s", data2)
	}
	if _, err := CNIConfList(podCIDR, 100); err == nil {
		t.Error("MTU 100 was accepted")
	}
	_, v6, _ := net.ParseCIDR("fd00::/64")
	if _, err := CNIConfList(v6, 1450); err == nil {
		t.Error("an IPv6 pod CIDR was accepted")
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "net.d", "10-flannel.conflist")
	for _, content := range []string{"first\n", "second\n"} {
		if err := writeAtomic(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Errorf("read %q, %v; want %q", got, err, content)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v; want 0644", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("the directory holds %d entries, want only the conflist (no temporary files)", len(entries))
	}
}

func TestPreviousNetworks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "subnet.env")
	if n, s := previousNetworks(path); n != nil || s != nil {
		t.Errorf("no file gave %v %v", n, s)
	}
	content := "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	n, s := previousNetworks(path)
	if n == nil || n.String() != "10.42.0.0/16" || s == nil || s.String() != "10.42.7.0/24" {
		t.Errorf("previousNetworks = %v, %v; want 10.42.0.0/16, 10.42.7.0/24", n, s)
	}
}

func TestContains(t *testing.T) {
	_, cluster, _ := net.ParseCIDR("10.42.0.0/16")
	for cidr, want := range map[string]bool{"10.42.1.0/24": true, "10.42.0.0/16": true, "10.43.0.0/24": false, "10.0.0.0/8": false} {
		_, n, _ := net.ParseCIDR(cidr)
		if got := contains(cluster, n); got != want {
			t.Errorf("contains(10.42.0.0/16, %s) = %v, want %v", cidr, got, want)
		}
	}
}
