package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/cmd/cairn/internal/cluster"
)

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
			return cluster.Down(cmd.Context(), cmd.ErrOrStderr(), *stateRoot, name)
		},
	}
	cmd.Flags().StringVarP(&name, "name", "n", "cairn", "the cluster's name")
	return cmd
}
