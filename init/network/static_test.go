package network

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config"
)

// TestStaticOnVeth matches a link by MAC, renames it, and gives it the
// addresses, routes, MTU and nameservers of a static config.
func TestStaticOnVeth(t *testing.T) {
	requireRoot(t)
	peer, node := netns(t, "stp"), netns(t, "stn")
	vethPair(t, peer, "vp", node, "vn")
	mac := "02:00:00:c0:ff:ee"
	sh(t, "ip", "-n", node, "link", "set", "vn", "address", mac)
	root := t.TempDir()
	// /etc/resolv.conf is a symlink into /run, as on a read-only /etc.
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../run/cairn/resolv.conf", filepath.Join(root, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	h := startHelper(t, node, helperRequest{Root: root, Network: &config.Network{
		Version: 2,
		Ethernets: map[string]config.Ethernet{"uplink": {
			Match:   &config.Match{MACAddress: strings.ToUpper(mac)},
			SetName: "lan0",
			Interface: config.Interface{
				Addresses: []string{"10.88.0.5/24", "10.88.1.5/24"},
				Gateway4:  "10.88.0.1",
				Routes:    []config.Route{{To: "10.99.0.0/16", Via: "10.88.0.254", Metric: 50}},
				MTU:       1300,
				Nameservers: &config.Nameservers{
					Addresses: []string{"10.88.0.53"}, Search: []string{"static.test"},
				},
			},
		}},
	}})
	for _, want := range []string{"network: up lan0 10.88.0.5/24 via static", "network: up lan0 10.88.1.5/24 via static", "UP ok"} {
		if l := h.waitFor(t, want, 20*time.Second); l != want {
			t.Errorf("console line %q, want %q", l, want)
		}
	}
	li := linkInfo(t, node, "lan0")
	if li.MTU != 1300 || li.Address != mac {
		t.Errorf("lan0: MTU %d MAC %s, want 1300 and %s", li.MTU, li.Address, mac)
	}
	var addrs []string
	for _, a := range li.AddrInfo {
		if a.Family == "inet" {
			addrs = append(addrs, a.Local)
		}
	}
	if strings.Join(addrs, ",") != "10.88.0.5,10.88.1.5" {
		t.Errorf("lan0 addresses %v", addrs)
	}
	rt := routes(t, node)
	for _, want := range []string{"default via 10.88.0.1 dev lan0 proto static", "10.99.0.0/16 via 10.88.0.254 dev lan0 proto static metric 50"} {
		if !strings.Contains(rt, want) {
			t.Errorf("routes lack %q:\n%s", want, rt)
		}
	}
	resolv, err := os.ReadFile(filepath.Join(root, "run/cairn/resolv.conf"))
	if err != nil {
		t.Fatalf("resolv.conf was not written through the symlink: %v", err)
	}
	if !strings.Contains(string(resolv), "nameserver 10.88.0.53\nsearch static.test\n") {
		t.Errorf("resolv.conf:\n%s", resolv)
	}
	if fi, err := os.Lstat(filepath.Join(root, "etc/resolv.conf")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("/etc/resolv.conf is no longer a symlink")
	}
}

// TestVLANAndBond needs a kernel with 8021q and bonding (the QEMU guests
// have them; this build host's kernel may not).
func TestVLANAndBond(t *testing.T) {
	requireRoot(t)
	node := netns(t, "vb")
	for _, kind := range [][]string{{"type", "bond"}, {"type", "dummy"}} {
		if out, err := exec.Command("ip", append([]string{"-n", node, "link", "add", "probe0"}, kind...)...).CombinedOutput(); err != nil {
			t.Skipf("this kernel cannot create a %s link: %s", kind[1], strings.TrimSpace(string(out)))
		}
		sh(t, "ip", "-n", node, "link", "del", "probe0")
	}
	peer := netns(t, "vbp")
	vethPair(t, peer, "p0", node, "n0")
	vethPair(t, peer, "p1", node, "n1")
	vethPair(t, peer, "p2", node, "n2")
	h := startHelper(t, node, helperRequest{Root: t.TempDir(), Network: &config.Network{
		Version:   2,
		Ethernets: map[string]config.Ethernet{"n0": {}, "n1": {}, "n2": {}},
		Bonds: map[string]config.Bond{"bond0": {
			Interfaces: []string{"n1", "n2"},
			Parameters: map[string]string{"mode": "active-backup", "mii-monitor-interval": "100", "primary": "n1"},
			Interface:  config.Interface{Addresses: []string{"10.66.0.5/24"}},
		}},
		VLANs: map[string]config.VLAN{"n0.7": {ID: 7, Link: "n0", Interface: config.Interface{Addresses: []string{"10.7.0.5/24"}}}},
	}})
	h.waitFor(t, "UP ", 20*time.Second)
	details := sh(t, "ip", "-n", node, "-d", "link", "show")
	for _, want := range []string{"vlan protocol 802.1Q id 7", "bond mode active-backup", "master bond0"} {
		if !strings.Contains(details, want) {
			t.Errorf("links lack %q:\n%s", want, details)
		}
	}
	if a := linkInfo(t, node, "bond0"); len(a.AddrInfo) == 0 || a.AddrInfo[0].Local != "10.66.0.5" {
		t.Errorf("bond0 addresses %+v", a.AddrInfo)
	}
	if a := linkInfo(t, node, "n0.7"); len(a.AddrInfo) == 0 || a.AddrInfo[0].Local != "10.7.0.5" {
		t.Errorf("n0.7 addresses %+v", a.AddrInfo)
	}
}
