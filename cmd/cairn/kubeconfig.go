package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/join"
)

func init() { register(newKubeconfigCmd) }

func newKubeconfigCmd() *cobra.Command {
	var server, token, tokenFile, out string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "kubeconfig --server https://ADDRESS:6443 (--token-file FILE | --token TOKEN) [-o FILE]",
		Short: "fetch an admin kubeconfig from a running server with the cluster token",
		Long: `Fetches an admin kubeconfig from a running cairn server, authenticating with
the cluster token, and writes it to FILE (mode 0600) or standard output.

Before anything is trusted, the cluster's CA is verified: against the hash a
K10 token carries, and for a plain token by the proof every server publishes
that it knows the token, so a man in the middle fails with a clear error.

The token comes from --token-file, --token, or $CAIRN_TOKEN (or $K3S_TOKEN);
a file or the environment keeps it out of your shell's process list.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
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
			c := &join.Client{Server: server, Token: tok}
			kc, err := c.AdminKubeconfig(ctx)
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err := cmd.OutOrStdout().Write(kc)
				return err
			}
			if err := files.WriteSecret(out, kc); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "cairn kubeconfig: wrote %s (CA verified by the %s)\n", out, tok)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "the apiserver, https://ADDRESS:6443")
	f.StringVar(&token, "token", "", "the cluster token (prefer --token-file or $CAIRN_TOKEN)")
	f.StringVar(&tokenFile, "token-file", "", "a file holding the cluster token")
	f.StringVarP(&out, "output", "o", "", "write the kubeconfig to this file (mode 0600) instead of standard output")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}

// readToken takes the token from the flag, the file, or the environment.
func readToken(flag, file string) (string, error) {
	switch {
	case flag != "" && file != "":
		return "", usageErrorf("give --token or --token-file, not both")
	case flag != "":
		return flag, nil
	case file != "":
		tok, err := readTokenFile(file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		return tok, nil
	}
	for _, env := range []string{"CAIRN_TOKEN", "K3S_TOKEN"} {
		if v := os.Getenv(env); v != "" {
			return v, nil
		}
	}
	return "", usageErrorf("no token: give --token-file FILE, --token TOKEN or set $CAIRN_TOKEN")
}
