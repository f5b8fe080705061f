package qemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
)

// Netns is a network namespace holding a bridge, for machines that share an
// L2 network with each other and with services the test runs inside the
// namespace (dnsmasq, a datastore). Nothing in it touches the host's
// networks. It needs root (CAP_NET_ADMIN) and the `ip` command.
type Netns struct {
	// Name of the namespace, "cairn-" and random hex.
	Name string
	// Bridge is the bridge device inside the namespace.
	Bridge string
	// Addr is the bridge's own address, with prefix (the host side of the
	// machines' network), or invalid when it has none.
	Addr netip.Prefix

	mu    sync.Mutex
	taps  int
	peers []string // network namespaces of AddPeer, deleted by Close
}

// NewNetns creates a network namespace with loopback up and a bridge "br0"
// that has addr (like "192.168.77.1/24"; empty for no address). Close removes
// it with everything in it.
func NewNetns(ctx context.Context, addr string) (*Netns, error) {
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("netns: random name: %w", err)
	}
	n := &Netns{Name: "cairn-" + hex.EncodeToString(rnd[:]), Bridge: "br0"}
	if addr != "" {
		p, err := netip.ParsePrefix(addr)
		if err != nil {
			return nil, fmt.Errorf("netns: bridge address %q: %w (want an address with prefix, like 192.168.77.1/24)", addr, err)
		}
		n.Addr = p
	}
	if err := run(ctx, "ip", "netns", "add", n.Name); err != nil {
		return nil, fmt.Errorf("netns: create %s (needs root): %w", n.Name, err)
	}
	steps := [][]string{
		{"ip", "link", "set", "lo", "up"},
		// A fixed MAC: a bridge otherwise takes its lowest port's, and
		// changes it when that port goes (a node powered off), under the
		// ARP caches of every other machine on it.
		{"ip", "link", "add", n.Bridge, "address", "02:ca:1f:00:00:01", "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"ip", "link", "set", n.Bridge, "up"},
	}
	if n.Addr.IsValid() {
		steps = append(steps, []string{"ip", "addr", "add", n.Addr.String(), "dev", n.Bridge})
	}
	for _, s := range steps {
		if err := run(ctx, append(n.prefix(), s...)...); err != nil {
			n.Close()
			return nil, fmt.Errorf("netns %s: %w", n.Name, err)
		}
	}
	return n, nil
}

// AddTAP creates a TAP device on the bridge and returns its name, for
// NIC.TAP.
func (n *Netns) AddTAP(ctx context.Context) (string, error) {
	n.mu.Lock()
	name := fmt.Sprintf("tap%d", n.taps)
	n.taps++
	n.mu.Unlock()
	for _, s := range [][]string{
		{"ip", "tuntap", "add", "dev", name, "mode", "tap"},
		{"ip", "link", "set", name, "master", n.Bridge},
		{"ip", "link", "set", name, "up"},
	} {
		if err := run(ctx, append(n.prefix(), s...)...); err != nil {
			return "", fmt.Errorf("netns %s: TAP device %s: %w", n.Name, name, err)
		}
	}
	return name, nil
}

// AddPeer creates a network namespace for one more host on the bridge (a
// node of the container platform): its link eth0 is a veth whose other
// end is on the bridge. It returns the namespace's path, for the init's
// -netns flag; Close deletes it.
func (n *Netns) AddPeer(ctx context.Context) (string, error) {
	n.mu.Lock()
	i := len(n.peers)
	name := fmt.Sprintf("%s-p%d", n.Name, i)
	n.peers = append(n.peers, name)
	n.mu.Unlock()
	bridgeEnd := fmt.Sprintf("veth%d", i)
	steps := [][]string{
		{"ip", "netns", "add", name},
		{"ip", "-n", name, "link", "set", "lo", "up"},
		{"ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", bridgeEnd, "netns", n.Name},
		{"ip", "-n", n.Name, "link", "set", bridgeEnd, "master", n.Bridge},
		{"ip", "-n", n.Name, "link", "set", bridgeEnd, "up"},
	}
	for _, s := range steps {
		if err := run(ctx, s...); err != nil {
			return "", fmt.Errorf("netns %s: peer %s: %w", n.Name, name, err)
		}
	}
	return "/run/netns/" + name, nil
}

// Command is exec.CommandContext for a program run inside the namespace.
func (n *Netns) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := append(n.prefix(), name)
	argv = append(argv, args...)
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}

// Close deletes the namespace; its bridge and TAP devices go with it. Stop
// the machines and programs running inside it first.
func (n *Netns) Close() error {
	n.mu.Lock()
	peers := n.peers
	n.peers = nil
	n.mu.Unlock()
	for _, p := range peers {
		run(context.Background(), "ip", "netns", "delete", p)
	}
	if err := run(context.Background(), "ip", "netns", "delete", n.Name); err != nil {
		return fmt.Errorf("netns: delete %s: %w", n.Name, err)
	}
	return nil
}

func (n *Netns) prefix() []string {
	return []string{"ip", "netns", "exec", n.Name}
}

func run(ctx context.Context, argv ...string) error {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
