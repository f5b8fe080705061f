package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/qemu"
)

// newClusterVMCmd is `cairn cluster vm`, hidden: the detached process
// `cluster up --platform qemu` starts per node. It runs the node's QEMU
// (which dies with it) and, on SIGTERM, presses the power button and waits
// for the orderly shutdown.
func newClusterVMCmd(stateRoot *string) *cobra.Command {
	var name, id string
	var memory, smp int
	cmd := &cobra.Command{
		Use:    "vm --name NAME --node ID",
		Short:  "run one node of a local cluster in QEMU (started by cluster up)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkClusterName(name); err != nil {
				return err
			}
			if !nodeIDRe.MatchString(id) || memory < 256 || memory > 64<<10 || smp < 1 || smp > 16 {
				return usageErrorf("--node %q --memory %d --smp %d: want s1..a20, 256-65536 MiB, 1-16 CPUs", id, memory, smp)
			}
			return clusterVM(cmd.Context(), *stateRoot, name, id, memory, smp)
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the cluster")
	f.StringVar(&id, "node", "", "the node's ID (s1, a1, ...)")
	f.IntVar(&memory, "memory", 3072, "memory in MiB")
	f.IntVar(&smp, "smp", 2, "CPUs")
	return cmd
}

func clusterVM(ctx context.Context, root, name, id string, memory, smp int) error {
	dir := clusterDir(root, name)
	st, err := loadState(dir)
	if err != nil {
		return err
	}
	var node *nodeState
	for i := range st.Nodes {
		if st.Nodes[i].ID == id {
			node = &st.Nodes[i]
		}
	}
	if node == nil {
		return fmt.Errorf("cluster %s has no node %s", name, id)
	}
	b, err := boards.Load(st.Board)
	if err != nil {
		return err
	}
	art, err := qemu.LoadArtifacts(st.Image)
	if err != nil {
		return err
	}
	a := node.Addr.As4()
	sub := st.Network.Subnet.Addr().As4()
	m, err := qemu.Start(context.Background(), qemu.Config{
		Name: node.Name, Board: b, Artifacts: art, Memory: memory, SMP: smp,
		ExtraCmdline: strings.Fields(st.Cmdline),
		Seed:         filepath.Join(dir, "nodes", id, "seed.iso"),
		NICs:         []qemu.NIC{{TAP: "t-" + id, MAC: fmt.Sprintf("52:54:00:c4:%02x:%02x", sub[2], a[3])}},
		Netns:        st.Network.Netns(),
		ConsoleLog:   node.Log,
	})
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	exited := make(chan error, 1)
	go func() { exited <- m.Wait(context.Background()) }()
	select {
	case err := <-exited:
		return err
	case <-sig:
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	m.Powerdown(pctx)
	cancel()
	select {
	case <-exited:
	case <-time.After(75 * time.Second):
		m.Kill()
	}
	return nil
}
