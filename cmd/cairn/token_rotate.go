package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/config/join"
)

// rotatePort is the servers' admin port token rotation reaches (a test
// sets its own).
var rotatePort = 0

func newTokenRotateCmd() *cobra.Command {
	var agent bool
	var newToken, out, kubeconfig string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "rotate [--agent] [--new-token FILE|-] [-o FILE] [--kubeconfig FILE]",
		Short: "replace the server token (or, with --agent, the agent token) on every server of a running cluster",
		Long: `Replaces the cluster's server token, or with --agent its agent token, on
every server (the Nodes with the control-plane role), with an admin
kubeconfig (--kubeconfig or $KUBECONFIG, as 'cairn kubeconfig' writes it).

The new token comes from --new-token FILE (a file of mode 0600) or
--new-token - (standard input), never from the command line; without it,
cairn makes one (192 random bits) and writes it to -o FILE (mode 0600) or
prints it once on standard output, before it is sent anywhere. A token
under 128 bits of estimated strength is refused.

The token goes to each server in turn over TLS, straight to its address
on port 6446 with the kubeconfig's client certificate. The first server
re-seals the cluster record with the new server token (a server that
finds it re-sealed checks that it opens), or records the new agent
token's bootstrap token in it; every server keeps the new token in
/var/lib/cairn/token (or agent-token), publishes the new token's bootstrap
token and CA proof, and deletes the old token's: afterwards the old token
gets no kubeconfig, joins nothing and opens nothing. Each server says so
in one console line.

Running nodes keep working: kubelets and restarted agents use their
certificates, not the token. Put the new token in the servers' configs
(kubernetes.token or agent-token) and in the configs of nodes you add; a
server whose config still names the old token boots with the rotated one
it kept, and says on its console that its config is stale.

If a server does not confirm, run the same command again with the same
new token (--new-token FILE): a rotation is idempotent.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if newToken != "" && out != "" {
				return usageErrorf("-o writes a token cairn makes; with --new-token you have it already")
			}
			raw := ""
			if newToken != "" {
				var err error
				if raw, err = readNewToken(cmd.InOrStdin(), newToken); err != nil {
					return err
				}
				if _, err := join.CheckNew(raw); err != nil {
					return err
				}
			}
			admin, err := adminKubeconfig(kubeconfig)
			if err != nil {
				return err
			}
			role, which := join.RoleServer, "server token"
			if agent {
				role, which = join.RoleAgent, "agent token"
			}
			r := &join.Rotation{Admin: admin, Role: role, Timeout: timeout, Port: rotatePort}
			lctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			servers, apiservers, err := r.Servers(lctx)
			cancel()
			if err != nil {
				return err
			}
			if len(servers) == 0 {
				return errors.New("no Node of the cluster has the control-plane role: its servers have not registered, or the kubeconfig is not a cairn cluster's")
			}
			stderr := cmd.ErrOrStderr()
			again := "cairn token rotate --new-token FILE"
			if agent {
				again = "cairn token rotate --agent --new-token FILE"
			}
			if raw == "" {
				if raw, err = join.Generate(); err != nil {
					return err
				}
				if err := writeToken(cmd.OutOrStdout(), out, raw); err != nil {
					return err
				}
				if out != "" && out != "-" {
					fmt.Fprintf(stderr, "cairn token rotate: the new %s is in %s (mode 0600)\n", which, out)
					again = strings.Replace(again, "FILE", out, 1)
				} else {
					again += ", FILE holding the token printed above (mode 0600)"
				}
			}
			r.Token = raw
			var done, failed []string
			for _, s := range servers {
				where := s.Name
				if s.Address != "" {
					where += " (" + s.Address + ")"
				}
				reply, err := r.On(cmd.Context(), s)
				if err != nil {
					failed = append(failed, s.Name)
					fmt.Fprintf(stderr, "cairn token rotate: %s: not rotated: %v\n", where, err)
					continue
				}
				done = append(done, s.Name)
				fmt.Fprintf(stderr, "cairn token rotate: %s: confirmed: %s\n", where, confirmed(role, reply))
			}
			summary := fmt.Sprintf("the %s is rotated on %d of %d servers", which, len(done), len(servers))
			if len(done) > 0 {
				summary += " (" + strings.Join(done, ", ") + ")"
			}
			var missed string
			if apiservers > len(servers) {
				missed = fmt.Sprintf("; %d apiservers run but only %d servers have a Node: a server not registered yet was not reached", apiservers, len(servers))
			}
			if len(failed) > 0 || missed != "" {
				if len(failed) > 0 {
					summary += ", not on " + strings.Join(failed, ", ")
				}
				until := "if it restarts, it cannot open the cluster until its config names the new token"
				if agent {
					until = "if it restarts with the old agent-token in its config, it refuses to start (its agent-token is not the cluster's) until the config names the new one"
				}
				return fmt.Errorf("%s%s. To finish, run the same rotation again once they answer (it is idempotent): %s. Until then a server not reached holds the old token: %s", summary, missed, again, until)
			}
			what := "kubernetes.token in every server's config"
			if agent {
				what = "kubernetes.agent-token in every server's config and in the agents you add"
			}
			fmt.Fprintf(stderr, "cairn token rotate: %s. Put the new token in %s: a server whose config names the old one boots with the rotated one it keeps and says so; running nodes keep their certificates\n", summary, what)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&agent, "agent", false, "rotate the agent token (kubernetes.agent-token), not the server token")
	f.StringVar(&newToken, "new-token", "", "a file (mode 0600) holding the new token, or - for standard input; without it, cairn makes one")
	f.StringVarP(&out, "output", "o", "", "write the token cairn makes to this file (mode 0600) instead of standard output")
	f.StringVar(&kubeconfig, "kubeconfig", "", "an admin kubeconfig, as 'cairn kubeconfig' writes it (default $KUBECONFIG)")
	f.DurationVar(&timeout, "timeout", join.RotateTimeout, "give up on a server after this long")
	return cmd
}

// confirmed says what a server did, in a user's words.
func confirmed(role join.Role, r *join.RotateReply) string {
	var did string
	switch {
	case role == join.RoleServer && r.Sealed:
		did = "re-sealed the cluster record with the new server token"
	case role == join.RoleServer:
		did = "the cluster record, re-sealed already, opens with the new server token"
	case r.Sealed:
		did = "recorded the new agent token in the cluster record"
	default:
		did = "the cluster record names the new agent token already"
	}
	did += "; bootstrap token " + r.Bootstrap + " in place"
	if len(r.Removed) > 0 {
		did += ", " + strings.Join(r.Removed, ", ") + " deleted"
	}
	return did
}

// readNewToken reads a new token from path, a file that only its owner
// may read, or from stdin for "-"; at most maxTokenFile bytes either way.
func readNewToken(stdin io.Reader, path string) (string, error) {
	if path == "-" {
		data, err := io.ReadAll(io.LimitReader(stdin, maxTokenFile+1))
		if err != nil {
			return "", fmt.Errorf("reading the new token from standard input: %w", err)
		}
		if len(data) > maxTokenFile {
			return "", fmt.Errorf("standard input holds more than %d bytes: not a token", maxTokenFile)
		}
		return strings.TrimSpace(string(data)), nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("--new-token: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("--new-token: %s may be read by others (mode %04o): a token's file is for its owner only; chmod 600 %s", path, perm, path)
	}
	tok, err := readTokenFile(path)
	if err != nil {
		return "", fmt.Errorf("--new-token: %w", err)
	}
	return tok, nil
}
