package main

import (
	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/cmd/cairn/internal/cluster"
)

func init() { register(newClusterCmd) }

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
	cmd.PersistentFlags().StringVar(&stateRoot, "state-dir", cluster.DefaultStateRoot, "where clusters keep their state, one directory each")
	cmd.MarkPersistentFlagDirname("state-dir")
	cmd.AddCommand(newClusterUpCmd(&stateRoot), newClusterDownCmd(&stateRoot), newClusterListCmd(&stateRoot), newClusterVMCmd(&stateRoot))
	return cmd
}

// checkClusterName refuses a cluster name cairn would not make (exit
// status 2).
func checkClusterName(name string) error {
	if err := cluster.CheckName(name); err != nil {
		return usageError{err}
	}
	return nil
}

func newClusterListCmd(stateRoot *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "list local clusters and their nodes, running or not",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cluster.List(cmd.OutOrStdout(), *stateRoot)
		},
	}
}
