package network

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/config"
)

func TestPhysicalLinks(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"lo", "eth1/device", "eth0/device", "br0/bridge", "veth9", "enp1s0/device"} {
		if err := os.MkdirAll(filepath.Join(root, "sys/class/net", p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, err := physicalLinks(root)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "enp1s0,eth0,eth1" {
		t.Errorf("physical links %v, want enp1s0,eth0,eth1", got)
	}
}

func TestMatches(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	for _, c := range []struct {
		id   string
		m    *config.Match
		name string
		want bool
	}{
		{"eth0", nil, "eth0", true},
		{"eth0", nil, "eth1", false},
		{"lan", &config.Match{MACAddress: "52:54:00:12:34:56"}, "eth3", true},
		{"lan", &config.Match{MACAddress: "52:54:00:12:34:57"}, "eth3", false},
		{"lan", &config.Match{Name: "en*"}, "enp1s0", true},
		{"lan", &config.Match{Name: "en*"}, "eth0", false},
		{"lan", &config.Match{Name: "en*", MACAddress: "52:54:00:12:34:56"}, "enp1s0", true},
		{"lan", &config.Match{Name: "[", MACAddress: ""}, "[", false},
	} {
		if got := matches(c.id, c.m, c.name, mac); got != c.want {
			t.Errorf("matches(%s, %+v, %s) = %v", c.id, c.m, c.name, got)
		}
	}
}

func TestResolverRender(t *testing.T) {
	root := t.TempDir()
	r := newResolver(root, nil)
	r.entries["dhcp:eth1"] = dnsEntry{servers: []netip.Addr{netip.MustParseAddr("10.0.1.1")}, search: []string{"b.test"}}
	r.entries["dhcp:eth0"] = dnsEntry{servers: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("1.1.1.1")}}
	r.entries["static:eth9"] = dnsEntry{servers: []netip.Addr{netip.MustParseAddr("1.1.1.1")}, search: []string{"a.test", "b.test"}}
	want := "# Written by cairn from the network config and DHCP leases; changes are overwritten.\n" +
		"nameserver 1.1.1.1\nnameserver 10.0.0.1\nnameserver 10.0.1.1\nsearch a.test b.test\n"
	if got := r.render(); got != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", got, want)
	}
}

func TestResolverPath(t *testing.T) {
	for _, c := range []struct {
		name  string
		link  string // "" for a plain file
		wrote string
	}{
		{"plain file", "", "etc/resolv.conf"},
		{"absolute symlink", "/run/cairn/resolv.conf", "run/cairn/resolv.conf"},
		{"relative symlink", "../run/systemd/resolve/resolv.conf", "run/systemd/resolve/resolv.conf"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, "etc"), 0o755)
			if c.link != "" {
				if err := os.Symlink(c.link, filepath.Join(root, "etc/resolv.conf")); err != nil {
					t.Fatal(err)
				}
			}
			r := newResolver(root, nil)
			r.set("static:eth0", []netip.Addr{netip.MustParseAddr("192.0.2.53")}, nil)
			data, err := os.ReadFile(filepath.Join(root, c.wrote))
			if err != nil || !strings.Contains(string(data), "nameserver 192.0.2.53\n") {
				t.Errorf("%s: %q, %v", c.wrote, data, err)
			}
			fi, err := os.Stat(filepath.Join(root, c.wrote))
			if err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("mode %v, %v: want 0644", fi.Mode(), err)
			}
		})
	}
}

func TestStaticRoute(t *testing.T) {
	for _, c := range []struct {
		r       config.Route
		dst, gw string
		link    bool
		bad     bool
	}{
		{r: config.Route{To: "default", Via: "10.0.0.1"}, dst: "<nil>", gw: "10.0.0.1"},
		{r: config.Route{To: "10.9.8.7/16", Via: "10.0.0.1", Metric: 5}, dst: "10.9.0.0/16", gw: "10.0.0.1"},
		{r: config.Route{To: "192.168.5.0/24"}, dst: "192.168.5.0/24", gw: "<nil>", link: true},
		{r: config.Route{To: "somewhere", Via: "10.0.0.1"}, bad: true},
		{r: config.Route{To: "default", Via: "router"}, bad: true},
	} {
		rt, err := staticRoute(3, c.r)
		if c.bad {
			if err == nil {
				t.Errorf("%+v accepted", c.r)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", c.r, err)
			continue
		}
		if rt.Dst.String() != c.dst || rt.Gw.String() != c.gw || (rt.Scope == 253) != c.link || rt.Priority != c.r.Metric {
			t.Errorf("%+v: dst %s gw %s scope %d metric %d", c.r, rt.Dst, rt.Gw, rt.Scope, rt.Priority)
		}
	}
}
