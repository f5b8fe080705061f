package debdeps

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNodeNetworkingFromDebian resolves iptables, nftables and conntrack
// from this machine's apt lists for both architectures, then (unless
// -short) downloads the amd64 closure from Debian's archive, extracts it,
// and runs the extracted tools in a chroot of the tree.
func TestNodeNetworkingFromDebian(t *testing.T) {
	const lists = "/var/lib/apt/lists"
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			ix, err := LoadAptLists(lists, arch)
			if err != nil {
				t.Skipf("no apt lists here: %v", err)
			}
			got, err := ix.Resolve(NodeNetworking)
			if err != nil {
				t.Fatal(err)
			}
			have := map[string]bool{}
			for _, r := range got {
				have[r.Name] = true
				if r.Architecture != arch && r.Architecture != "all" {
					t.Errorf("%s is for %s, want %s", r, r.Architecture, arch)
				}
			}
			for _, want := range []string{"iptables", "nftables", "conntrack", "libc6", "libnftnl11", "libmnl0", "libnetfilter-conntrack3", "libxtables12", "libnftables1"} {
				if !have[want] {
					t.Errorf("closure %s lacks %s", names(got), want)
				}
			}
			for _, unwanted := range []string{"perl-base", "debconf", "dpkg", "systemd"} {
				if have[unwanted] {
					t.Errorf("closure pulls in %s: %s", unwanted, names(got))
				}
			}
			t.Logf("%s closure (%d): %s", arch, len(got), names(got))
		})
	}

	if testing.Short() {
		t.Skip("-short: not downloading from Debian's archive")
	}
	ix, err := LoadAptLists(lists, "amd64")
	if err != nil {
		t.Skipf("no apt lists here: %v", err)
	}
	pkgs, err := ix.Resolve(NodeNetworking)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	debs, err := Download(ctx, pkgs, "amd64", filepath.Join(t.TempDir(), "debs"))
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(t.TempDir(), "tree")
	m, err := Extract(debs, tree, ExtractOptions{Links: NodeNetworkingLinks})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Packages) != len(pkgs) {
		t.Errorf("manifest lists %d packages, resolved %d", len(m.Packages), len(pkgs))
	}
	data, err := os.ReadFile(filepath.Join(tree, ManifestPath))
	if err != nil {
		t.Fatal(err)
	}
	var back Manifest
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	for i, e := range back.Packages {
		if e.Version == "" || len(e.SHA256) != 64 {
			t.Errorf("manifest entry %d: %+v lacks a version or hash", i, e)
		}
	}
	for _, gone := range []string{"usr/share/doc", "usr/lib/x86_64-linux-gnu/gconv"} {
		if _, err := os.Stat(filepath.Join(tree, gone)); !os.IsNotExist(err) {
			t.Errorf("%s was extracted (%v); DefaultDrop should leave it out", gone, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("running the extracted tools needs chroot (root)")
	}
	for _, c := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"/usr/sbin/iptables", "--version"}, "(nf_tables)"},
		{[]string{"/usr/sbin/ip6tables-legacy", "--version"}, "(legacy)"},
		{[]string{"/usr/sbin/nft", "--version"}, "nftables v"},
		{[]string{"/usr/sbin/conntrack", "--version"}, "conntrack v"},
	} {
		out, err := exec.Command("chroot", append([]string{tree}, c.cmd...)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Errorf("chroot tree %s: %v\n%s\nwant output containing %q", strings.Join(c.cmd, " "), err, out, c.want)
		}
	}
}
