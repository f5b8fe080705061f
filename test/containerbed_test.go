//go:build qemu

package test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/qemu"
)

// machine is a server machine on the container platform that a test
// powers off and boots again (TestVIP, TestEtcdHA, TestKineRestart*):
// each boot is a fresh network namespace on the bridge and, the container
// platform's STATE being a tmpfs, a fresh STATE.
type machine struct {
	name, addr, root string
	n                *containerNode   // the running boot
	boots            []*containerNode // every boot, the first first
}

// boot starts m (again) in a namespace of its own on ns's bridge; the
// second boot's console is NAME-boot2, and so on.
func (m *machine) boot(t *testing.T, ns *qemu.Netns) {
	t.Helper()
	name := m.name
	if len(m.boots) > 0 {
		name = fmt.Sprintf("%s-boot%d", m.name, len(m.boots)+1)
	}
	m.n = startPeer(t, ns, name, m.root)
	m.boots = append(m.boots, m.n)
}

// powerOff kills m's node and cuts its link at once; its namespace goes.
func (m *machine) powerOff(t *testing.T, ns *qemu.Netns) {
	t.Helper()
	m.n.cmd.Process.Kill()
	m.link(t, ns, "down")
	<-m.n.done
	if out, err := exec.Command("ip", "netns", "delete", filepath.Base(m.n.netns)).CombinedOutput(); err != nil {
		t.Logf("ip netns delete %s: %v: %s", m.n.netns, err, out)
	}
}

// link sets m's link on ns's bridge up or down.
func (m *machine) link(t *testing.T, ns *qemu.Netns, state string) {
	t.Helper()
	if out, err := ns.Command(context.Background(), "ip", "link", "set", bridgeEnd(m.n.netns), state).CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s %s: %v: %s", bridgeEnd(m.n.netns), state, err, out)
	}
}

// bridgeEnd is the bridge's end of a peer's veth: AddPeer names the peer
// namespace NS-pN and the bridge end vethN.
func bridgeEnd(netnsPath string) string {
	i := strings.LastIndex(netnsPath, "-p")
	return "veth" + netnsPath[i+2:]
}

// pinBridgeMAC gives ns's bridge a MAC of its own. A Linux bridge takes
// the lowest MAC of its ports unless given one: powering a server off
// removes its port, and the datastore's MAC would change under the other
// servers' ARP caches (tens of seconds of "datastore stopped answering").
// A real network's hosts keep their MACs.
func pinBridgeMAC(t *testing.T, ns *qemu.Netns) {
	t.Helper()
	if out, err := ns.Command(context.Background(), "ip", "link", "set", ns.Bridge, "address", "02:00:00:77:00:01").CombinedOutput(); err != nil {
		t.Fatalf("pinning the bridge's MAC: %v: %s", err, out)
	}
}
