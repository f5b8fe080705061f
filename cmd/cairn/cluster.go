package main

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/boards"
)

func init() { register(newClusterCmd) }

var (
	platforms  = []string{"container", "qemu"}
	datastores = []string{"postgres", "mysql", "etcd", "embedded"}
	waitModes  = []string{"node", "apiserver"}
)

// clusterOptions are the flags of `cairn cluster up`.
type clusterOptions struct {
	name, stateRoot      string
	servers, agents      int
	datastore, platform  string
	board, vip, subnet   string
	image, kernel, comps string
	wait                 string
	debug                bool
	archives             []string
	timeout              time.Duration
	memory, smp          int
}

// check validates the flags and fills in what follows from them.
func (o *clusterOptions) check() error {
	if err := checkClusterName(o.name); err != nil {
		return err
	}
	if o.servers < 1 || o.servers > maxServers {
		return usageErrorf("--servers %d: want 1 to %d", o.servers, maxServers)
	}
	if o.agents < 0 || o.agents > maxAgents {
		return usageErrorf("--agents %d: want 0 to %d", o.agents, maxAgents)
	}
	if !slices.Contains(datastores, o.datastore) {
		return usageErrorf("--datastore %q: want one of %s", o.datastore, strings.Join(datastores, ", "))
	}
	if o.datastore == "embedded" && o.servers > 1 {
		return usageErrorf("--datastore embedded runs one etcd inside the server: it takes --servers 1 (give postgres, mysql or etcd for more)")
	}
	if !slices.Contains(platforms, o.platform) {
		return usageErrorf("--platform %q: want container or qemu", o.platform)
	}
	if !slices.Contains(waitModes, o.wait) {
		return usageErrorf("--wait %q: want node (every node's Node object Ready) or apiserver (every server's /readyz)", o.wait)
	}
	if o.timeout < time.Minute || o.timeout > 4*time.Hour {
		return usageErrorf("--timeout %s: want 1m to 4h", o.timeout)
	}
	if o.board == "" {
		o.board = map[string]string{"amd64": "qemu-x86_64", "arm64": "qemu-arm64"}[runtime.GOARCH]
	}
	b, err := boards.Load(o.board)
	if err != nil {
		return usageError{err}
	}
	if o.platform == "container" && b.Arch != runtime.GOARCH {
		return usageErrorf("--board %s is %s; the container platform runs this machine's architecture (%s): use --platform qemu", o.board, b.Arch, runtime.GOARCH)
	}
	if o.memory < 0 || o.memory > 64<<10 || o.smp < 0 || o.smp > 16 {
		return usageErrorf("--memory %d / --smp %d: want 0-65536 MiB and 0-16 CPUs", o.memory, o.smp)
	}
	if len(o.archives) > 0 && o.platform != "container" {
		return usageErrorf("--image-archive works on the container platform; a VM imports the images its image was built with")
	}
	if len(o.archives) > maxArchives {
		return usageErrorf("--image-archive given %d times; at most %d", len(o.archives), maxArchives)
	}
	for _, a := range o.archives {
		fi, err := os.Stat(a)
		if err != nil || !fi.Mode().IsRegular() || !strings.HasSuffix(a, ".tar") || fi.Size() > maxArchiveSize {
			return usageErrorf("--image-archive %s: want an OCI or Docker image archive (.tar, at most 2 GiB) that exists", a)
		}
	}
	if o.subnet != "" {
		p, err := netip.ParsePrefix(o.subnet)
		if err != nil || !p.Addr().Is4() || p.Bits() != 24 || p.Masked() != p {
			return usageErrorf("--subnet %q: want an IPv4 /24 network, like 192.168.200.0/24", o.subnet)
		}
	}
	if o.vip != "" && o.vip != "auto" {
		a, err := netip.ParseAddr(o.vip)
		if err != nil || !a.Is4() {
			return usageErrorf("--vip %q: want auto or an IPv4 address", o.vip)
		}
		if o.subnet == "" {
			o.subnet = netip.PrefixFrom(a, 24).Masked().String()
		}
		p := netip.MustParsePrefix(o.subnet)
		if !p.Contains(a) {
			return usageErrorf("--vip %s is not in --subnet %s", a, p)
		}
		if !freeHostNumber(a.As4()[3]) {
			return usageErrorf("--vip %s: the last number is taken: .1 is the bridge (and datastore), .11-.%d the servers, .101-.%d the agents, .254 this machine", a, 10+maxServers, 100+maxAgents)
		}
	}
	return nil
}

// Bounds of --image-archive.
const (
	maxArchives    = 20
	maxArchiveSize = 2 << 30
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

// freeHostNumber says whether a VIP may take the last number h.
func freeHostNumber(h byte) bool {
	switch {
	case h < 2 || h >= hostHost:
		return false
	case h > serverHost0 && h <= serverHost0+maxServers:
		return false
	case h > agentHost0 && h <= agentHost0+maxAgents:
		return false
	}
	return true
}

func newClusterCmd() *cobra.Command {
	var stateRoot string
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "run a local cluster: servers, agents and a datastore on this machine",
		Long: `Runs a whole cairn cluster on this machine: a datastore (Debian's PostgreSQL,
MariaDB or etcd, or the servers' embedded etcd) and nodes on a private bridge
in a network namespace, either on the container platform (the init as PID 1
of new namespaces: seconds) or as QEMU virtual machines (minutes under TCG).
This machine reaches the bridge through a veth (its address ends in .254).
Needs root. State and logs: /var/lib/cairn-cluster/NAME (docs/cluster.md).`,
	}
	cmd.PersistentFlags().StringVar(&stateRoot, "state-dir", defaultStateRoot, "where clusters keep their state, one directory each")
	cmd.MarkPersistentFlagDirname("state-dir")
	cmd.AddCommand(newClusterUpCmd(&stateRoot), newClusterDownCmd(&stateRoot), newClusterListCmd(&stateRoot), newClusterVMCmd(&stateRoot))
	return cmd
}

func newClusterUpCmd(stateRoot *string) *cobra.Command {
	o := &clusterOptions{}
	cmd := &cobra.Command{
		Use:   "up [flags]",
		Short: "start a local cluster and wait until every node is ready",
		Long: `Builds the image (or reuses --image DIR), starts the datastore and the nodes
on a private bridge, waits until every node is ready, printing a line per
node as it gets there, and prints the path of the admin kubeconfig as the
last line on standard output:

  export KUBECONFIG=$(cairn cluster up --servers 2 --agents 1)

A cluster of the same name that exists already is left alone. The
processes keep running after this command returns; 'cairn cluster down'
stops them. When a node is not ready in time, the cluster is left running
for a look at its logs, and the command fails saying what each node lacks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.stateRoot = *stateRoot
			if err := o.check(); err != nil {
				return err
			}
			if os.Geteuid() != 0 {
				return fmt.Errorf("cairn cluster up needs root: it makes network namespaces, links and containers (run it with sudo)")
			}
			return clusterUp(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.name, "name", "n", "cairn", "the cluster's name (nodes are NAME-s1, NAME-a1, ...)")
	f.IntVarP(&o.servers, "servers", "s", 1, fmt.Sprintf("servers, 1-%d", maxServers))
	f.IntVarP(&o.agents, "agents", "a", 0, fmt.Sprintf("agents, 0-%d", maxAgents))
	f.StringVarP(&o.datastore, "datastore", "d", "postgres", "postgres, mysql (MariaDB), etcd, or embedded (one server's own etcd)")
	f.StringVarP(&o.platform, "platform", "p", "container", "container (the init as PID 1 of new namespaces) or qemu (virtual machines under TCG)")
	f.StringVarP(&o.board, "board", "b", "", "board to build and run (default: this machine's architecture's QEMU board)")
	f.StringVar(&o.vip, "vip", "", "a fixed registration address for the servers: auto (.10 of the subnet) or an address; agents and the kubeconfig use it")
	f.StringVar(&o.subnet, "subnet", "", "the bridge's IPv4 /24 (default: the first of 192.168.200.0/24-192.168.254.0/24 this machine does not use)")
	f.StringVar(&o.image, "image", "", "a build output directory (cairn build) to run as is; default: build out/BOARD with the node components")
	f.StringVarP(&o.kernel, "kernel", "k", "out/debs", "kernel packages for the build (make kernels)")
	f.StringVar(&o.comps, "components", "out/components", "node components for the build (make components)")
	f.StringVar(&o.wait, "wait", "node", "wait for: node (every Node object Ready) or apiserver (every server's /readyz; agents are not waited for)")
	f.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up waiting after this long (the cluster is left running)")
	f.StringArrayVar(&o.archives, "image-archive", nil, "container platform: an image archive (.tar) every node imports at boot, for pods (repeatable)")
	f.BoolVar(&o.debug, "debug", false, "cairn.debug on every node: each component's output on the node's console log too")
	f.IntVarP(&o.memory, "memory", "m", 3072, "qemu: each VM's memory in MiB")
	f.IntVar(&o.smp, "smp", 2, "qemu: each VM's CPUs")
	cmd.RegisterFlagCompletionFunc("board", completeBoards)
	cmd.RegisterFlagCompletionFunc("datastore", cobra.FixedCompletions(datastores, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("platform", cobra.FixedCompletions(platforms, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("wait", cobra.FixedCompletions(waitModes, cobra.ShellCompDirectiveNoFileComp))
	cmd.MarkFlagDirname("image")
	cmd.MarkFlagDirname("components")
	return cmd
}

func newClusterDownCmd(stateRoot *string) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "down [--name NAME]",
		Short: "stop a local cluster and remove everything it made",
		Long: `Stops every node (an orderly shutdown, then SIGKILL after 90 s) and the
datastore, deletes the cluster's network namespaces, links and TAP devices,
and removes its state directory with the nodes' logs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkClusterName(name); err != nil {
				return err
			}
			if os.Geteuid() != 0 {
				return fmt.Errorf("cairn cluster down needs root (run it with sudo)")
			}
			return clusterDown(cmd.Context(), cmd.ErrOrStderr(), *stateRoot, name)
		},
	}
	cmd.Flags().StringVarP(&name, "name", "n", "cairn", "the cluster's name")
	return cmd
}

func newClusterListCmd(stateRoot *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "list local clusters and their nodes, running or not",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return clusterList(cmd.OutOrStdout(), *stateRoot)
		},
	}
}
