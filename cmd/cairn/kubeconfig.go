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
	var timeout, expiry time.Duration
	cmd := &cobra.Command{
		Use:   "kubeconfig --server https://ADDRESS:6443 (--token-file FILE | --token TOKEN) [--expiry 24h] [-o FILE]",
		Short: "get an admin kubeconfig from a running server with the server token",
		Long: `Gets an admin kubeconfig from a running cairn server with the server token
(kubernetes.token of the servers; the agent token is refused), and writes it
to FILE (a new file, mode 0600) or standard output.

Before anything is trusted, the cluster's CA is verified: against the hash a
K10 token carries, and by the proof every server publishes that it knows the
token (one Argon2id run here, a fraction of a second).

The kubeconfig's client certificate is made for this request: a key made
here, a certificate request sent with the server token's bootstrap token,
approved by the servers and signed by the cluster's client CA, valid for
--expiry (24h by default, 10m to 720h). Its group, cairn:cluster-admins, is
bound to cluster-admin by the ClusterRoleBinding of that name: deleting the
binding takes every such certificate's rights away at once (the servers
apply it again when they boot).

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
			if expiry < join.MinExpiry || expiry > join.MaxExpiry {
				return usageErrorf("--expiry %s: give %s to %s", expiry, join.MinExpiry, join.MaxExpiry)
			}
			c := &join.Client{Server: server, Token: tok, Expiry: expiry}
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
			fmt.Fprintf(cmd.ErrOrStderr(), "cairn kubeconfig: wrote %s (CA verified by the %s; the certificate is valid for %s)\n", out, tok, expiry)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "the apiserver, https://ADDRESS:6443")
	f.StringVar(&token, "token", "", "the server token (prefer --token-file or $CAIRN_TOKEN)")
	f.StringVar(&tokenFile, "token-file", "", "a file holding the server token")
	f.DurationVar(&expiry, "expiry", join.DefaultExpiry, "how long the admin certificate is valid")
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
