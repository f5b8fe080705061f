package vip

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestNetlinkAddress, in a network namespace of its own: the VIP goes on
// the link whose subnet holds it (or the one named), as a /32, and comes
// off every link that has it.
func TestNetlinkAddress(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The thread stays in the new namespace and dies with the goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		// A veth pair: no module beyond what the container platform needs.
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan"}, PeerName: "other"}
		if err := netlink.LinkAdd(v); err != nil {
			t.Errorf("veth: %v", err)
			return
		}
		for name, cidr := range map[string]string{"lan": "10.9.0.1/24", "other": "10.8.0.1/24"} {
			l, err := netlink.LinkByName(name)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			ip, n, _ := net.ParseCIDR(cidr)
			n.IP = ip
			netlink.AddrAdd(l, &netlink.Addr{IPNet: n})
			netlink.LinkSetUp(l)
		}
		vip := netip.MustParseAddr("10.9.0.100")
		a := NewAddress(vip, LinkMatch{})
		link, err := a.Add()
		if err != nil || link != "lan" {
			t.Errorf("Add = %q, %v; want lan", link, err)
		}
		l, _ := netlink.LinkByName("lan")
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
		if !slices.ContainsFunc(addrs, func(ad netlink.Addr) bool { return ad.IPNet.String() == "10.9.0.100/32" }) {
			t.Errorf("lan's addresses %v lack 10.9.0.100/32", addrs)
		}
		a.Announce()
		if _, err := NewAddress(vip, LinkMatch{Glob: "oth*"}).Add(); err != nil {
			t.Errorf("Add on the named link: %v", err)
		}
		removed, err := a.Remove()
		slices.Sort(removed)
		if err != nil || !slices.Equal(removed, []string{"lan", "other"}) {
			t.Errorf("Remove = %v, %v; want lan and other", removed, err)
		}
		if removed, _ := a.Remove(); len(removed) != 0 {
			t.Errorf("a second Remove found %v", removed)
		}
		if _, err := NewAddress(netip.MustParseAddr("10.7.0.1"), LinkMatch{}).Add(); err == nil {
			t.Errorf("a VIP in no link's subnet was added")
		}
	}()
	<-done
}
