package main

import "testing"

func TestParseModprobeArgs(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		name  string
		quiet bool
		err   bool
	}{
		{args: []string{"-q", "--", "nft-chain-2-nat"}, name: "nft-chain-2-nat", quiet: true}, // how the kernel asks
		{args: []string{"br_netfilter"}, name: "br_netfilter"},
		{args: []string{"-b", "-v", "overlay"}, name: "overlay"},
		{args: []string{"--", "-odd-alias"}, name: "-odd-alias"},
		{args: nil, err: true},
		{args: []string{"-r", "vxlan"}, err: true},
		{args: []string{"nf_conntrack", "hashsize=4096"}, err: true},
	} {
		name, quiet, err := parseModprobeArgs(tc.args)
		if (err != nil) != tc.err || name != tc.name || quiet != tc.quiet {
			t.Errorf("parseModprobeArgs(%q) = %q, %v, %v; want %q, %v, error %v", tc.args, name, quiet, err, tc.name, tc.quiet, tc.err)
		}
	}
}
