package container

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"

	"github.com/cairn-os/cairn/qemu"
)

// Network is a network namespace holding the bridge "br0" that a cluster's
// nodes and datastore share. Its names are chosen by the caller and are
// deterministic, so a later command can delete what an earlier one made
// from the names alone. Optionally the host has a veth into the bridge
// (HostLink, with HostAddr on the host's end), so programs on the host
// reach the nodes without entering the namespace.
type Network struct {
	// Namespace is the name under /run/netns.
	Namespace string `json:"namespace"`
	// Subnet is the bridge's network; the bridge itself has BridgeAddr.
	Subnet     netip.Prefix `json:"subnet"`
	BridgeAddr netip.Addr   `json:"bridge_addr"`
	// HostLink is the host's end of the veth into the bridge ("" for
	// none), HostAddr its address in Subnet.
	HostLink string     `json:"host_link,omitempty"`
	HostAddr netip.Addr `json:"host_addr,omitzero"`
}

// Bridge is the bridge device inside the namespace.
const Bridge = "br0"

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// Create makes the namespace with loopback up and the bridge with
// BridgeAddr, and the host's veth when HostLink is set. On error it
// removes what it made.
func (n *Network) Create(ctx context.Context) error {
	if !nameRe.MatchString(n.Namespace) {
		return fmt.Errorf("network namespace name %q: want 1-63 letters, digits, '.', '_' or '-'", n.Namespace)
	}
	if !n.Subnet.IsValid() || !n.Subnet.Contains(n.BridgeAddr) {
		return fmt.Errorf("bridge address %s is not in the subnet %s", n.BridgeAddr, n.Subnet)
	}
	if len(n.HostLink) > 15 {
		return fmt.Errorf("host link name %q is longer than 15 characters", n.HostLink)
	}
	if err := run(ctx, "ip", "netns", "add", n.Namespace); err != nil {
		return fmt.Errorf("creating the network namespace %s (needs root): %w", n.Namespace, err)
	}
	bridgeAddr := netip.PrefixFrom(n.BridgeAddr, n.Subnet.Bits()).String()
	steps := [][]string{
		{"ip", "-n", n.Namespace, "link", "set", "lo", "up"},
		{"ip", "-n", n.Namespace, "link", "add", Bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"ip", "-n", n.Namespace, "addr", "add", bridgeAddr, "dev", Bridge},
		{"ip", "-n", n.Namespace, "link", "set", Bridge, "up"},
	}
	if n.HostLink != "" {
		hostAddr := netip.PrefixFrom(n.HostAddr, n.Subnet.Bits()).String()
		steps = append(steps,
			[]string{"ip", "link", "add", n.HostLink, "type", "veth", "peer", "name", "host", "netns", n.Namespace},
			[]string{"ip", "-n", n.Namespace, "link", "set", "host", "master", Bridge},
			[]string{"ip", "-n", n.Namespace, "link", "set", "host", "up"},
			[]string{"ip", "addr", "add", hostAddr, "dev", n.HostLink},
			[]string{"ip", "link", "set", n.HostLink, "up"},
		)
	}
	for _, s := range steps {
		if err := run(ctx, s...); err != nil {
			n.Delete(context.Background(), nil)
			return fmt.Errorf("network namespace %s: %w", n.Namespace, err)
		}
	}
	return nil
}

// PeerNamespace is the name of the namespace of one node on the bridge.
func (n *Network) PeerNamespace(node string) string { return n.Namespace + "." + node }

// AddPeer makes a namespace for one node on the container platform, with
// loopback up and eth0, a veth whose other end ("v-NODE") is on the
// bridge. It returns the namespace's path, for the init's -netns flag.
func (n *Network) AddPeer(ctx context.Context, node string) (string, error) {
	peer := n.PeerNamespace(node)
	end := "v-" + node
	if !nameRe.MatchString(peer) || len(end) > 15 {
		return "", fmt.Errorf("node name %q: too long or not a plain name for a namespace and a link", node)
	}
	steps := [][]string{
		{"ip", "netns", "add", peer},
		{"ip", "-n", peer, "link", "set", "lo", "up"},
		{"ip", "-n", peer, "link", "add", "eth0", "address", n.PeerMAC(node), "type", "veth", "peer", "name", end, "netns", n.Namespace},
		{"ip", "-n", n.Namespace, "link", "set", end, "master", Bridge},
		{"ip", "-n", n.Namespace, "link", "set", end, "up"},
	}
	for _, s := range steps {
		if err := run(ctx, s...); err != nil {
			return "", fmt.Errorf("node %s's network: %w", node, err)
		}
	}
	return "/run/netns/" + peer, nil
}

// PeerMAC is the address of node's eth0: fixed by the namespace and the
// node's name, as a machine's network card keeps its address across
// reboots. A new random address at every start would leave the bridge's
// other members (the host's veth, the other nodes) sending a node that was
// started again to its old address while their neighbour entry stays
// reachable: up to a minute of connections that never open, as the e2e
// tests' restarted nodes (on a bridge of their own) showed.
func (n *Network) PeerMAC(node string) string {
	h := sha256.Sum256([]byte(n.Namespace + "\x00" + node))
	h[0] = h[0]&^1 | 2 // unicast, locally administered
	return net.HardwareAddr(h[:6]).String()
}

// AddTAP makes a TAP device "t-NODE" on the bridge for a QEMU machine.
func (n *Network) AddTAP(ctx context.Context, node string) (string, error) {
	tap := "t-" + node
	if len(tap) > 15 {
		return "", fmt.Errorf("node name %q is too long for a TAP device name", node)
	}
	for _, s := range [][]string{
		{"ip", "-n", n.Namespace, "tuntap", "add", "dev", tap, "mode", "tap"},
		{"ip", "-n", n.Namespace, "link", "set", tap, "master", Bridge},
		{"ip", "-n", n.Namespace, "link", "set", tap, "up"},
	} {
		if err := run(ctx, s...); err != nil {
			return "", fmt.Errorf("node %s's TAP device: %w", node, err)
		}
	}
	return tap, nil
}

// Delete removes the peers' namespaces (by node name), the host's veth and
// the namespace with the bridge and everything in it. What is gone already
// is skipped; the first other failure is returned after trying the rest.
func (n *Network) Delete(ctx context.Context, nodes []string) error {
	var errs []error
	for _, node := range nodes {
		if err := deleteNamespace(ctx, n.PeerNamespace(node)); err != nil {
			errs = append(errs, err)
		}
	}
	if n.HostLink != "" {
		if _, err := net.InterfaceByName(n.HostLink); err == nil {
			if err := run(ctx, "ip", "link", "delete", n.HostLink); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := deleteNamespace(ctx, n.Namespace); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func deleteNamespace(ctx context.Context, name string) error {
	if !nameRe.MatchString(name) {
		return fmt.Errorf("network namespace name %q is not a plain name", name)
	}
	if _, err := os.Stat("/run/netns/" + name); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return run(ctx, "ip", "netns", "delete", name)
}

// Exists says whether the namespace is there.
func (n *Network) Exists() bool {
	_, err := os.Stat("/run/netns/" + n.Namespace)
	return err == nil
}

// Command is exec.CommandContext for a program run inside the namespace.
func (n *Network) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Namespace, name}, args...)...)
}

// DialContext opens a connection from inside the namespace (for an
// http.Transport that reaches the nodes without the host's veth).
func (n *Network) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return (&qemu.Netns{Name: n.Namespace, Bridge: Bridge}).DialContext(ctx, network, addr)
}

// Netns is the namespace as the qemu package wants it (Config.Netns).
func (n *Network) Netns() *qemu.Netns { return &qemu.Netns{Name: n.Namespace, Bridge: Bridge} }

// HostNetworks are the IPv4 networks the host uses already: its
// addresses' and its routes' (from /proc/net/route), so a new bridge's
// subnet can avoid them.
func HostNetworks() ([]netip.Prefix, error) {
	var out []netip.Prefix
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if p, err := netip.ParsePrefix(ipn.String()); err == nil && p.Addr().Is4() {
				out = append(out, p.Masked())
			}
		}
	}
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return out, nil
	}
	defer f.Close()
	routes, err := parseRoutes(f)
	return append(out, routes...), err
}

// parseRoutes reads the destination networks of /proc/net/route (the
// default route excluded: it overlaps everything).
func parseRoutes(r interface{ Read([]byte) (int, error) }) ([]netip.Prefix, error) {
	var out []netip.Prefix
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 4096)
	for first := true; sc.Scan(); first = false {
		f := strings.Fields(sc.Text())
		if first || len(f) < 8 {
			continue
		}
		var dst, mask [4]byte
		if !hex4(f[1], &dst) || !hex4(f[7], &mask) {
			continue
		}
		bits := 0
		for m := binary.BigEndian.Uint32(mask[:]); m&0x80000000 != 0; m <<= 1 {
			bits++
		}
		if bits == 0 {
			continue
		}
		out = append(out, netip.PrefixFrom(netip.AddrFrom4(dst), bits).Masked())
	}
	return out, sc.Err()
}

// hex4 decodes the little-endian hex of /proc/net/route into an address.
func hex4(s string, out *[4]byte) bool {
	if len(s) != 8 {
		return false
	}
	var v uint32
	if _, err := fmt.Sscanf(s, "%08X", &v); err != nil {
		return false
	}
	binary.LittleEndian.PutUint32(out[:], v)
	return true
}

// FreeSubnet returns the first /24 of candidates that overlaps none of used.
func FreeSubnet(candidates, used []netip.Prefix) (netip.Prefix, error) {
	for _, c := range candidates {
		free := true
		for _, u := range used {
			if c.Overlaps(u) {
				free = false
				break
			}
		}
		if free {
			return c, nil
		}
	}
	return netip.Prefix{}, errors.New("every candidate subnet overlaps a network of the host or another cluster")
}

func run(ctx context.Context, argv ...string) error {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
