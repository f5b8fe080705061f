package vip

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// Ethernet types.
const (
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
)

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ethernet is a frame header.
func ethernet(dst, src net.HardwareAddr, etherType uint16) []byte {
	b := make([]byte, 14)
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], etherType)
	return b
}

// gratuitousARP is the two announcements of ip at mac, broadcast: an ARP
// request and an ARP reply whose sender and target are both ip (RFC 5227's
// announcement, and the reply form some switches and hosts heed instead).
// Hosts that have ip in their neighbour table take the new MAC from either;
// bridges learn the port.
func gratuitousARP(mac net.HardwareAddr, ip netip.Addr) [][]byte {
	var out [][]byte
	for _, op := range []uint16{1, 2} {
		b := ethernet(broadcastMAC, mac, etherTypeARP)
		arp := make([]byte, 28)
		binary.BigEndian.PutUint16(arp[0:2], 1) // Ethernet
		binary.BigEndian.PutUint16(arp[2:4], 0x0800)
		arp[4], arp[5] = 6, 4
		binary.BigEndian.PutUint16(arp[6:8], op)
		a4 := ip.As4()
		copy(arp[8:14], mac)
		copy(arp[14:18], a4[:])
		if op == 2 {
			copy(arp[18:24], broadcastMAC)
		}
		copy(arp[24:28], a4[:])
		out = append(out, append(b, arp...))
	}
	return out
}

// allNodesMAC is the Ethernet address of ff02::1.
var allNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}

// unsolicitedNA is a neighbour advertisement of ip at mac to all nodes
// (RFC 4861 7.2.6): override set, solicited clear, the target link-layer
// address option.
func unsolicitedNA(mac net.HardwareAddr, ip netip.Addr) []byte {
	const icmpLen = 24 + 8
	allNodes := netip.MustParseAddr("ff02::1").As16()
	src := ip.As16()
	hdr := make([]byte, 40)
	hdr[0] = 6 << 4
	binary.BigEndian.PutUint16(hdr[4:6], icmpLen)
	hdr[6] = 58  // ICMPv6
	hdr[7] = 255 // hop limit, as neighbour discovery requires
	copy(hdr[8:24], src[:])
	copy(hdr[24:40], allNodes[:])
	icmp := make([]byte, icmpLen)
	icmp[0] = 136  // neighbour advertisement
	icmp[4] = 0x20 // override
	copy(icmp[8:24], src[:])
	icmp[24], icmp[25] = 2, 1 // target link-layer address, 8 bytes
	copy(icmp[26:32], mac)
	binary.BigEndian.PutUint16(icmp[2:4], icmpv6Checksum(src, allNodes, icmp))
	frame := ethernet(allNodesMAC, mac, etherTypeIPv6)
	return append(append(frame, hdr...), icmp...)
}

// icmpv6Checksum is the checksum over the IPv6 pseudo-header and msg
// (whose checksum field is zero).
func icmpv6Checksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:4], uint32(len(msg)))
	l[7] = 58
	add(l[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
