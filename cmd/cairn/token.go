package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/join"
)

func init() { register(newTokenCmd) }

func newTokenCmd() *cobra.Command {
	var oldKubeconfig string
	cmd := &cobra.Command{
		Use:   "token generate|pin|rotate",
		Short: "make a new cluster token, pin a token to a cluster's CA, or rotate a running cluster's",
		Long: `cairn token generate makes a new token (192 random bits) for kubernetes.token
or kubernetes.agent-token; cairn validate refuses a token under 128 bits of
estimated strength.

cairn token pin turns a plain token into k3s's secure form,
K10<CA hash>::server:<secret>, with the CA a running server proves it holds
with the token.

cairn token rotate replaces the server token (or, with --agent, the agent
token) on every server of a running cluster, with an admin kubeconfig.

No token is kept in the cluster: servers keep theirs, mode 0600, in
/var/lib/cairn/token; an admin kubeconfig is 'cairn kubeconfig'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if oldKubeconfig != "" {
				return usageErrorf("cairn token no longer reads the token from the cluster: no Secret holds it. The servers' token is the one in their config (and in /var/lib/cairn/token on each server); cairn token pin gives its K10 form")
			}
			return usageErrorf("name what to do: cairn token generate, cairn token pin, or cairn token rotate")
		},
	}
	// What `cairn token --kubeconfig` did before: say what replaced it.
	cmd.Flags().StringVar(&oldKubeconfig, "kubeconfig", "", "")
	cmd.Flags().MarkHidden("kubeconfig")
	cmd.AddCommand(newTokenGenerateCmd(), newTokenPinCmd(), newTokenRotateCmd())
	return cmd
}

func newTokenGenerateCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "generate [-o FILE]",
		Short: "print a new token (192 random bits) for kubernetes.token or agent-token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := join.Generate()
			if err != nil {
				return err
			}
			return writeToken(cmd.OutOrStdout(), out, tok)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the token to this file (a new file, mode 0600) instead of standard output")
	return cmd
}

func newTokenPinCmd() *cobra.Command {
	var server, token, tokenFile, out string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "pin --server https://ADDRESS:6443 (--token-file FILE | --token TOKEN) [-o FILE]",
		Short: "print a token in its K10 form, pinning the CA a server proves it holds",
		Long: `Fetches the cluster's CA from a running server, checks the server's proof
that it knows the token (the server token or the agent token), and prints
the token as K10<CA hash>::server:<secret>: a node given that form trusts
only that CA, with no proof needed.

The token comes from --token-file, --token, or $CAIRN_TOKEN (or $K3S_TOKEN).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := readToken(token, tokenFile)
			if err != nil {
				return err
			}
			tok, err := join.ParseToken(raw)
			if err != nil {
				return fmt.Errorf("the token: %w", err)
			}
			if server == "" {
				return usageErrorf("--server is required: the address of a server (or the VIP), https://ADDRESS:6443")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			full, err := (&join.Client{Server: server, Token: tok}).FullToken(ctx)
			if err != nil {
				return err
			}
			return writeToken(cmd.OutOrStdout(), out, full)
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "the apiserver, https://ADDRESS:6443")
	f.StringVar(&token, "token", "", "the token (prefer --token-file or $CAIRN_TOKEN)")
	f.StringVar(&tokenFile, "token-file", "", "a file holding the token")
	f.StringVarP(&out, "output", "o", "", "write the token to this file (a new file, mode 0600) instead of standard output")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}

// writeToken writes tok and a newline to out, or to the file path (a new
// file of mode 0600, by rename) when path is not "" or "-".
func writeToken(out io.Writer, path, tok string) error {
	if path == "" || path == "-" {
		_, err := fmt.Fprintln(out, tok)
		return err
	}
	return files.WriteSecret(path, []byte(tok+"\n"))
}
