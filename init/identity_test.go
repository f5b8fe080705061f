package main

import (
	"net/netip"
	"testing"
)

// TestIdentityLine checks the line that names a machine on its console,
// printed once the network is up whatever the node runs (no role, no
// components): its name and every address, links in name order.
func TestIdentityLine(t *testing.T) {
	for _, tc := range []struct {
		name   string
		byLink map[string][]netip.Prefix
		want   string
	}{
		{"no network state", nil, "init: this is cairn-5a7954, with no address yet"},
		{"links without addresses", map[string][]netip.Prefix{"eth0": nil}, "init: this is cairn-5a7954, with no address yet"},
		{"one link", map[string][]netip.Prefix{"eth0": {netip.MustParsePrefix("10.0.2.15/24")}}, "init: this is cairn-5a7954 at 10.0.2.15/24 (eth0)"},
		{"two links, name order", map[string][]netip.Prefix{
			"eth1": {netip.MustParsePrefix("192.168.7.2/24")},
			"eth0": {netip.MustParsePrefix("10.0.2.15/24"), netip.MustParsePrefix("fd00::15/64")},
		}, "init: this is cairn-5a7954 at 10.0.2.15/24 (eth0), fd00::15/64 (eth0), 192.168.7.2/24 (eth1)"},
	} {
		if got := identityLine("cairn-5a7954", tc.byLink); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
