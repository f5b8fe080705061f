package datasource

import (
	"strings"
	"testing"

	"github.com/cairn-os/cairn/config"
)

func TestNetworkConfig(t *testing.T) {
	for _, c := range []struct {
		name, in string
		check    func(t *testing.T, n *config.Network)
	}{
		{"v2 at top level", "version: 2\nethernets:\n  eth0:\n    match:\n      macaddress: \"52:54:00:12:34:56\"\n    set-name: lan\n    addresses: [192.168.1.10/24]\n    gateway4: 192.168.1.1\n",
			func(t *testing.T, n *config.Network) {
				e := n.Ethernets["eth0"]
				if e.SetName != "lan" || e.Match == nil || e.Match.MACAddress != "52:54:00:12:34:56" || e.Addresses[0] != "192.168.1.10/24" || e.Gateway4 != "192.168.1.1" {
					t.Errorf("%+v", e)
				}
			}},
		{"v2 under network:", "network:\n  version: 2\n  ethernets:\n    en0:\n      dhcp4: true\n",
			func(t *testing.T, n *config.Network) {
				if !n.Ethernets["en0"].DHCP4 {
					t.Errorf("%+v", n)
				}
			}},
		{"v1 translated", `version: 1
config:
  - type: physical
    name: eth0
    mac_address: "52:54:00:AA:BB:CC"
    mtu: 1400
    subnets:
      - type: static
        address: 10.0.0.5
        netmask: 255.255.255.0
        gateway: 10.0.0.1
        dns_nameservers: [10.0.0.53]
  - type: physical
    name: eth1
  - type: physical
    name: eth2
  - type: bond
    name: bond0
    bond_interfaces: [eth1, eth2]
    params: {bond-mode: active-backup, bond-miimon: 100}
    subnets: [{type: dhcp}]
  - type: vlan
    name: eth0.7
    vlan_link: eth0
    vlan_id: 7
    subnets: [{type: static, address: 10.7.0.5/24}]
  - type: nameserver
    address: 1.1.1.1
    search: [example.org]
  - type: route
    destination: 172.16.0.0/12
    gateway: 10.0.0.254
`, func(t *testing.T, n *config.Network) {
			e := n.Ethernets["eth0"]
			if e.Match == nil || e.Match.MACAddress != "52:54:00:aa:bb:cc" || e.SetName != "eth0" || e.MTU != 1400 {
				t.Errorf("eth0 match/mtu: %+v", e)
			}
			if strings.Join(e.Addresses, ",") != "10.0.0.5/24" || len(e.Routes) != 2 || e.Routes[0] != (config.Route{To: "default", Via: "10.0.0.1"}) || e.Routes[1] != (config.Route{To: "172.16.0.0/12", Via: "10.0.0.254"}) {
				t.Errorf("eth0 addressing: %+v", e.Interface)
			}
			if e.Nameservers == nil || strings.Join(e.Nameservers.Addresses, ",") != "10.0.0.53,1.1.1.1" || strings.Join(e.Nameservers.Search, ",") != "example.org" {
				t.Errorf("eth0 nameservers: %+v", e.Nameservers)
			}
			b := n.Bonds["bond0"]
			if !b.DHCP4 || strings.Join(b.Interfaces, ",") != "eth1,eth2" || b.Parameters["mode"] != "active-backup" || b.Parameters["mii-monitor-interval"] != "100" {
				t.Errorf("bond0: %+v", b)
			}
			if v := n.VLANs["eth0.7"]; v.ID != 7 || v.Link != "eth0" || v.Addresses[0] != "10.7.0.5/24" {
				t.Errorf("vlan: %+v", v)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			src, err := networkConfig("network-config", []byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			cfg, diags := config.Parse(*src)
			if diags.HasErrors() {
				t.Fatalf("config.Parse of\n%s\n%v", src.Data, diags.Err())
			}
			if cfg.Network == nil {
				t.Fatalf("no network in\n%s", src.Data)
			}
			c.check(t, cfg.Network)
		})
	}
	for _, off := range []string{"network: {config: disabled}\n", "config: disabled\n", ""} {
		if src, err := networkConfig("nc", []byte(off)); src != nil || err != nil {
			t.Errorf("%q: got %v, %v; want nothing", off, src, err)
		}
	}
	if _, err := networkConfig("nc", []byte("version: 3\n")); err == nil {
		t.Error("version 3 accepted")
	}
}
