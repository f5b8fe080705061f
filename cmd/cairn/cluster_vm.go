package main

import (
	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/cmd/cairn/internal/cluster"
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
			if !cluster.ValidNodeID(id) || memory < 256 || memory > 64<<10 || smp < 1 || smp > 16 {
				return usageErrorf("--node %q --memory %d --smp %d: want s1..a20, 256-65536 MiB, 1-16 CPUs", id, memory, smp)
			}
			return cluster.RunVM(cmd.Context(), *stateRoot, name, id, memory, smp)
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the cluster")
	f.StringVar(&id, "node", "", "the node's ID (s1, a1, ...)")
	f.IntVar(&memory, "memory", 3072, "memory in MiB")
	f.IntVar(&smp, "smp", 2, "CPUs")
	return cmd
}
