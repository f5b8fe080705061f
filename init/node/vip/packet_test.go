package vip

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

var testMAC = net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}

// TestGratuitousARP: a request and a reply, broadcast, sender and target
// both the VIP at this MAC.
func TestGratuitousARP(t *testing.T) {
	ip := netip.MustParseAddr("192.168.77.100")
	frames := gratuitousARP(testMAC, ip)
	if len(frames) != 2 {
		t.Fatalf("%d frames, want 2", len(frames))
	}
	for i, f := range frames {
		if len(f) != 42 || !bytes.Equal(f[0:6], broadcastMAC) || !bytes.Equal(f[6:12], testMAC) || binary.BigEndian.Uint16(f[12:]) != 0x0806 {
			t.Fatalf("frame %d: bad Ethernet header % x", i, f)
		}
		arp := f[14:]
		if op := binary.BigEndian.Uint16(arp[6:]); op != uint16(i+1) {
			t.Errorf("frame %d: op %d", i, op)
		}
		if !bytes.Equal(arp[8:14], testMAC) || !bytes.Equal(arp[14:18], ip.AsSlice()) || !bytes.Equal(arp[24:28], ip.AsSlice()) {
			t.Errorf("frame %d: sender/target % x", i, arp)
		}
	}
}

// TestUnsolicitedNA: to all nodes, hop limit 255, override, the target
// and its MAC, and a checksum that verifies.
func TestUnsolicitedNA(t *testing.T) {
	ip := netip.MustParseAddr("fd00:77::100")
	f := unsolicitedNA(testMAC, ip)
	if !bytes.Equal(f[0:6], allNodesMAC) || binary.BigEndian.Uint16(f[12:]) != 0x86dd {
		t.Fatalf("bad Ethernet header % x", f[:14])
	}
	ip6, icmp := f[14:54], f[54:]
	if ip6[6] != 58 || ip6[7] != 255 || len(icmp) != 32 {
		t.Fatalf("bad IPv6 header % x", ip6)
	}
	if icmp[0] != 136 || icmp[4] != 0x20 || !bytes.Equal(icmp[8:24], ip.AsSlice()) || !bytes.Equal(icmp[26:32], testMAC) {
		t.Errorf("bad advertisement % x", icmp)
	}
	var src, dst [16]byte
	copy(src[:], ip6[8:24])
	copy(dst[:], ip6[24:40])
	// Summed with its checksum in place, a correct message gives zero.
	if c := icmpv6Checksum(src, dst, icmp); c != 0 {
		t.Errorf("checksum does not verify: %#04x", c)
	}
}
