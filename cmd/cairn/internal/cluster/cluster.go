// Package cluster runs a local cairn cluster for `cairn cluster`: a
// datastore and nodes (containers or QEMU machines) on a private bridge,
// their configs and a state directory to find them by, the wait until they
// are ready, and their removal.
package cluster

import (
	"fmt"
	"net/netip"
	"regexp"
	"time"
)

// Options say what cluster Up makes. The command checks them first.
type Options struct {
	Name      string
	StateRoot string
	Servers   int
	Agents    int
	// Datastore is one of Datastores, Platform one of Platforms.
	Datastore, Platform string
	Board               string
	// VIP is "", "auto" (.10 of the subnet) or an IPv4 address in Subnet.
	VIP string
	// Subnet is an IPv4 /24, or "" for the first free one.
	Subnet string
	// Image is a build output directory to run as is; "" builds
	// out/BOARD from Kernel and Components.
	Image, Kernel, Components string
	// Wait is one of WaitModes; Timeout bounds it.
	Wait    string
	Timeout time.Duration
	// Debug puts cairn.debug on the nodes' command line.
	Debug bool
	// Archives are image archives every node imports (container platform).
	Archives []string
	// Memory (MiB) and SMP are each VM's (qemu platform, or QEMUAgents).
	Memory, SMP int
	// QEMUAgents of the agents, the last ones, are QEMU VMs on a
	// container-platform cluster: a slow node among fast ones, booting the
	// same image.
	QEMUAgents int
}

// What a cluster may be.
var (
	Platforms  = []string{"container", "qemu"}
	Datastores = []string{"postgres", "mysql", "etcd", "embedded"}
	WaitModes  = []string{"node", "apiserver"}
)

// Bounds of a cluster.
const (
	DefaultStateRoot = "/var/lib/cairn-cluster"
	MaxServers       = 7
	MaxAgents        = 20
	// MaxArchives and MaxArchiveSize bound Options.Archives.
	MaxArchives    = 20
	MaxArchiveSize = 2 << 30
)

// Addresses on the bridge, by the last number: the bridge and datastore
// .1, the VIP .10 by default, servers from .11, agents from .101, this
// machine's veth .254.
const (
	bridgeHost  = 1
	vipHost     = 10
	serverHost0 = 10
	agentHost0  = 100
	hostHost    = 254
)

var (
	nameRe   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,19}$`)
	nodeIDRe = regexp.MustCompile(`^[sa][1-9][0-9]?$`)
)

// CheckName says what is wrong with a cluster's name, if anything: it
// names a directory, a network namespace and the nodes' host names.
func CheckName(name string) error {
	if !nameRe.MatchString(name) || name[len(name)-1] == '-' {
		return fmt.Errorf("cluster name %q: want 1-20 lower-case letters, digits and '-', starting with a letter and not ending with '-'", name)
	}
	return nil
}

// ValidNodeID says whether id may name a node: s1..s99 or a1..a99.
func ValidNodeID(id string) bool { return nodeIDRe.MatchString(id) }

// CheckVIPHost says whether a fixed VIP's last number is free: the
// bridge, the nodes and this machine take some.
func CheckVIPHost(a netip.Addr) error {
	h := a.As4()[3]
	taken := false
	switch {
	case h < 2 || h >= hostHost:
		taken = true
	case h > serverHost0 && h <= serverHost0+MaxServers:
		taken = true
	case h > agentHost0 && h <= agentHost0+MaxAgents:
		taken = true
	}
	if taken {
		return fmt.Errorf("the last number is taken: .1 is the bridge (and datastore), .11-.%d the servers, .101-.%d the agents, .254 this machine", serverHost0+MaxServers, agentHost0+MaxAgents)
	}
	return nil
}

// hostAddr is the address of host number host in p.
func hostAddr(p netip.Prefix, host int) netip.Addr {
	a := p.Masked().Addr().As4()
	a[3] = byte(host)
	return netip.AddrFrom4(a)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
