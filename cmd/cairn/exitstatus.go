package main

import "github.com/spf13/cobra"

func init() { register(newExitStatusTopic) }

// newExitStatusTopic is a help topic, not a command: 'cairn help exit-status'.
func newExitStatusTopic() *cobra.Command {
	return &cobra.Command{
		Use:   "exit-status",
		Short: "what cairn's exit statuses mean",
		Long: `Every cairn command exits with

  0  success
  1  the command failed: a build error, a validation error in a config,
     an image that cannot be read; the reason is on standard error
  2  usage error: an unknown command, flag or help topic, a missing or
     extra argument, a missing required flag; standard error says which
     and points at 'cairn COMMAND --help'

'cairn' without a command prints its help and exits 2; 'cairn --help',
'cairn help' and 'cairn COMMAND --help' exit 0.`,
	}
}
