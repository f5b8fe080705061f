package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/cmd/cairn/internal/cluster"
)

func newClusterUpCmd(stateRoot *string) *cobra.Command {
	o := &cluster.Options{}
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
			o.StateRoot = *stateRoot
			if err := checkClusterUp(o); err != nil {
				return err
			}
			if os.Geteuid() != 0 {
				return fmt.Errorf("cairn cluster up needs root: it makes network namespaces, links and containers (run it with sudo)")
			}
			// Ctrl-C while the cluster is made removes it; while it is
			// awaited, leaves it running (down removes it).
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return cluster.Up(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), *o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Name, "name", "n", "cairn", "the cluster's name (nodes are NAME-s1, NAME-a1, ...)")
	f.IntVarP(&o.Servers, "servers", "s", 1, fmt.Sprintf("servers, 1-%d", cluster.MaxServers))
	f.IntVarP(&o.Agents, "agents", "a", 0, fmt.Sprintf("agents, 0-%d", cluster.MaxAgents))
	f.StringVarP(&o.Datastore, "datastore", "d", "postgres", "postgres, mysql (MariaDB), etcd, or embedded (the servers' own etcd, a member on each)")
	f.StringVarP(&o.Platform, "platform", "p", "container", "container (the init as PID 1 of new namespaces) or qemu (virtual machines under TCG)")
	f.StringVarP(&o.Board, "board", "b", "", "board to build and run (default: this machine's architecture's QEMU board)")
	f.StringVar(&o.VIP, "vip", "", "a fixed registration address for the servers: auto (.10 of the subnet) or an address; agents and the kubeconfig use it")
	f.StringVar(&o.Subnet, "subnet", "", "the bridge's IPv4 /24 (default: the first of 192.168.200.0/24-192.168.254.0/24 this machine does not use)")
	f.StringVar(&o.Image, "image", "", "a build output directory (cairn build) to run as is; default: build out/BOARD with the node components")
	f.StringVarP(&o.Kernel, "kernel", "k", "out/debs", "kernel packages for the build (make kernels)")
	f.StringVar(&o.Components, "components", "out/components", "node components for the build (make components)")
	f.StringVar(&o.Wait, "wait", "node", "wait for: node (every Node object Ready) or apiserver (every server's /readyz; agents are not waited for)")
	f.DurationVar(&o.Timeout, "timeout", 20*time.Minute, "give up waiting after this long (the cluster is left running)")
	f.StringArrayVar(&o.Archives, "image-archive", nil, "container platform: an image archive (.tar) every node imports at boot, for pods (repeatable)")
	f.BoolVar(&o.Debug, "debug", false, "cairn.debug on every node: each component's output on the node's console log too")
	f.IntVarP(&o.Memory, "memory", "m", 3072, "qemu: each VM's memory in MiB")
	f.IntVar(&o.SMP, "smp", 2, "qemu: each VM's CPUs")
	f.IntVar(&o.QEMUAgents, "qemu-agents", 0, "container platform: this many of the agents (the last ones) are QEMU VMs under TCG, booting the same image")
	cmd.RegisterFlagCompletionFunc("board", completeBoards)
	cmd.RegisterFlagCompletionFunc("datastore", cobra.FixedCompletions(cluster.Datastores, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("platform", cobra.FixedCompletions(cluster.Platforms, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("wait", cobra.FixedCompletions(cluster.WaitModes, cobra.ShellCompDirectiveNoFileComp))
	cmd.MarkFlagDirname("image")
	cmd.MarkFlagDirname("components")
	return cmd
}

// checkClusterUp refuses flags that make no cluster (exit status 2) and
// fills in what follows from them: the board, and the subnet of a fixed
// --vip.
func checkClusterUp(o *cluster.Options) error {
	if err := checkClusterName(o.Name); err != nil {
		return err
	}
	if o.Servers < 1 || o.Servers > cluster.MaxServers {
		return usageErrorf("--servers %d: want 1 to %d", o.Servers, cluster.MaxServers)
	}
	if o.Agents < 0 || o.Agents > cluster.MaxAgents {
		return usageErrorf("--agents %d: want 0 to %d", o.Agents, cluster.MaxAgents)
	}
	if !slices.Contains(cluster.Datastores, o.Datastore) {
		return usageErrorf("--datastore %q: want one of %s", o.Datastore, strings.Join(cluster.Datastores, ", "))
	}
	if !slices.Contains(cluster.Platforms, o.Platform) {
		return usageErrorf("--platform %q: want container or qemu", o.Platform)
	}
	if !slices.Contains(cluster.WaitModes, o.Wait) {
		return usageErrorf("--wait %q: want node (every node's Node object Ready) or apiserver (every server's /readyz)", o.Wait)
	}
	if o.Timeout < time.Minute || o.Timeout > 4*time.Hour {
		return usageErrorf("--timeout %s: want 1m to 4h", o.Timeout)
	}
	if o.Board == "" {
		o.Board = map[string]string{"amd64": "qemu-x86_64", "arm64": "qemu-arm64"}[runtime.GOARCH]
	}
	b, err := boards.Load(o.Board)
	if err != nil {
		return usageError{err}
	}
	if o.Platform == "container" && b.Arch != runtime.GOARCH {
		return usageErrorf("--board %s is %s; the container platform runs this machine's architecture (%s): use --platform qemu", o.Board, b.Arch, runtime.GOARCH)
	}
	if o.Memory < 0 || o.Memory > 64<<10 || o.SMP < 0 || o.SMP > 16 {
		return usageErrorf("--memory %d / --smp %d: want 0-65536 MiB and 0-16 CPUs", o.Memory, o.SMP)
	}
	if len(o.Archives) > 0 && o.Platform != "container" {
		return usageErrorf("--image-archive works on the container platform; a VM imports the images its image was built with")
	}
	if o.QEMUAgents != 0 {
		switch {
		case o.Platform != "container":
			return usageErrorf("--qemu-agents %d: the container platform's option (with --platform qemu every node is a VM)", o.QEMUAgents)
		case o.QEMUAgents < 0 || o.QEMUAgents > o.Agents:
			return usageErrorf("--qemu-agents %d: want 0 to --agents (%d)", o.QEMUAgents, o.Agents)
		case len(o.Archives) > 0:
			return usageErrorf("--image-archive does not reach the VMs of --qemu-agents: build the images into the image (/usr/share/cairn/images of its components) and give it with --image; every node imports them")
		}
	}
	if len(o.Archives) > cluster.MaxArchives {
		return usageErrorf("--image-archive given %d times; at most %d", len(o.Archives), cluster.MaxArchives)
	}
	for _, a := range o.Archives {
		fi, err := os.Stat(a)
		if err != nil || !fi.Mode().IsRegular() || !strings.HasSuffix(a, ".tar") || fi.Size() > cluster.MaxArchiveSize {
			return usageErrorf("--image-archive %s: want an OCI or Docker image archive (.tar, at most 2 GiB) that exists", a)
		}
	}
	if o.Subnet != "" {
		p, err := netip.ParsePrefix(o.Subnet)
		if err != nil || !p.Addr().Is4() || p.Bits() != 24 || p.Masked() != p {
			return usageErrorf("--subnet %q: want an IPv4 /24 network, like 192.168.200.0/24", o.Subnet)
		}
	}
	if o.VIP != "" && o.VIP != "auto" {
		a, err := netip.ParseAddr(o.VIP)
		if err != nil || !a.Is4() {
			return usageErrorf("--vip %q: want auto or an IPv4 address", o.VIP)
		}
		if o.Subnet == "" {
			o.Subnet = netip.PrefixFrom(a, 24).Masked().String()
		}
		p := netip.MustParsePrefix(o.Subnet)
		if !p.Contains(a) {
			return usageErrorf("--vip %s is not in --subnet %s", a, p)
		}
		if err := cluster.CheckVIPHost(a); err != nil {
			return usageErrorf("--vip %s: %v", a, err)
		}
	}
	return nil
}
