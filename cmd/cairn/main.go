// Command cairn builds, inspects and boots cairn appliance images,
// validates their cloud-configs and talks to running clusters. Each command
// lives in its own file and registers a constructor of its *cobra.Command
// with register (docs/cli.md).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit statuses, the same for every command (cairn help exit-status).
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// commands holds one constructor per top-level command, added by each
// command's file in its init function. A constructor makes a fresh command
// (flags included) so that tests can run cairn many times in one process.
var commands []func() *cobra.Command

func register(newCmd func() *cobra.Command) { commands = append(commands, newCmd) }

// usageError marks a failure as the user's invocation rather than the
// command's work: exit status 2. Errors from flag parsing and argument checks
// count as usage errors without it; a command returns one from RunE only when
// it finds a bad combination of arguments itself.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// errReported is returned by a command that has already printed why it
// failed (validate's diagnostics, for one): exit status 1, nothing more.
var errReported = errors.New("failure already reported")

// commandFailed wraps what a command's RunE returns (see settle), so execute
// can tell the command's own failures (exit status 1) from cobra's usage
// errors.
type commandFailed struct{ err error }

func (e commandFailed) Error() string { return e.err.Error() }
func (e commandFailed) Unwrap() error { return e.err }

const rootLong = `cairn builds immutable appliance images that turn an x86_64 or arm64
machine into a Kubernetes node, checks the cloud-configs that tell a node
what to be, and boots images in QEMU.

Flags are GNU style (--board NAME, -b NAME); the single-dash spelling of
earlier releases (-board NAME) still works. Exit status: 0 success, 1 the
command failed, 2 usage error (see 'cairn help exit-status').`

// newRoot builds the command tree from the registered commands, reading
// and writing the streams given.
func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "cairn",
		Short: "build, check and boot cairn appliance images",
		Long:  rootLong,
		// execute prints errors itself, with the status they map to.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	for _, newCmd := range commands {
		root.AddCommand(newCmd())
	}
	root.SetHelpCommand(newHelpCmd())
	// Made here rather than by Execute, so that the help of a bare
	// 'cairn' lists them too; the completion command keeps the stdout
	// it finds now.
	root.InitDefaultHelpFlag()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	if c, _, err := root.Find([]string{"completion"}); err == nil {
		c.Short = "print a shell completion script: bash, zsh, fish or powershell"
	}
	settle(root)
	return root
}

// settle prepares cmd and every command under it once the tree is built.
// Errors of a RunE become commandFailed (exit status 1) unless they are
// usage errors. A command that only groups others (cairn completion) fails
// with a usage error when its subcommand is missing or unknown, where cobra
// would print its help and exit 0.
func settle(cmd *cobra.Command) {
	if cmd.HasParent() && cmd.HasSubCommands() && !cmd.Runnable() {
		cmd.RunE = func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				var names []string
				for _, sub := range c.Commands() {
					if sub.IsAvailableCommand() {
						names = append(names, sub.Name())
					}
				}
				return usageErrorf("missing command: %s", strings.Join(names, ", "))
			}
			return usageErrorf("unknown command %q for %q", args[0], c.CommandPath())
		}
	}
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error {
			err := run(c, args)
			var u usageError
			if err == nil || errors.As(err, &u) {
				return err
			}
			return commandFailed{err}
		}
	}
	for _, sub := range cmd.Commands() {
		settle(sub)
	}
}

// newHelpCmd is cobra's help command, except that a command or topic that
// does not exist is a usage error rather than a help page and exit status 0.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND|TOPIC]",
		Short: "help about any command or topic",
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || len(rest) != 0 {
				return usageErrorf("no command or help topic %q; 'cairn help' lists them", strings.Join(args, " "))
			}
			cmd.InitDefaultHelpFlag()
			return cmd.Help()
		},
		ValidArgsFunction: func(c *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			cmd, _, err := c.Root().Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []string
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand() {
					names = append(names, sub.Name())
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
	}
}

// execute runs cairn with args (without the program name) and returns the
// exit status. Errors go to stderr as one line prefixed with the command's
// path; a usage error adds where to read the command's usage.
func execute(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout, stderr)
	if len(args) == 0 {
		root.SetOut(stderr)
		root.Help()
		return exitUsage
	}
	if cmd, _, err := root.Find(args); err == nil {
		args = longFlags(cmd, args)
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errReported) {
		return exitFailed
	}
	fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), err)
	var failed commandFailed
	if errors.As(err, &failed) {
		return exitFailed
	}
	fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	return exitUsage
}

func main() {
	os.Exit(execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
