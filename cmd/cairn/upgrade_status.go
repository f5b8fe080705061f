package main

import (
	"os"
	"os/signal"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/cmd/cairn/internal/rollout"
)

func newUpgradeStatusCmd(kubeconfig *string) *cobra.Command {
	var followIt bool
	cmd := &cobra.Command{
		Use:   "status --kubeconfig FILE [--follow] [NAME]",
		Short: "show where an upgrade stands: its phase and each node's",
		Long: `Prints the newest upgrade of the cluster (or the one called NAME): its phase
and message, what it installs, and a line per node with its phase, the
versions it goes from and to, the time of each step and why it failed.
With --follow, prints a line per node and step from then on, as
'cairn upgrade' does, until the upgrade ends.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := openKube(*kubeconfig)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return reported(rollout.Status(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), k, *kubeconfig, name, followIt))
		},
	}
	cmd.Flags().BoolVarP(&followIt, "follow", "f", false, "follow the upgrade until it ends (exit status 1 when it fails)")
	return cmd
}
