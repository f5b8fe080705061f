package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
)

func init() { register(newTokenCmd) }

func newTokenCmd() *cobra.Command {
	var kubeconfig, out string
	cmd := &cobra.Command{
		Use:   "token --kubeconfig FILE [-o FILE]",
		Short: "read the cluster's full (K10) token from the cluster with admin credentials",
		Long: `Reads the cluster's token, in k3s's secure form K10<CA hash>::server:<secret>,
from the cluster with an admin kubeconfig (what 'cairn kubeconfig' writes), and
writes it to FILE (mode 0600) or standard output. Servers keep it in the
Secret kube-system/cairn-token; nodes never print it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			admin, err := adminKubeconfig(kubeconfig)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			tok, err := join.ReadToken(ctx, admin.Client(kube.Options{}))
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), tok)
				return err
			}
			return files.WriteSecret(out, []byte(tok+"\n"))
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "an admin kubeconfig (default $KUBECONFIG)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the token to this file (mode 0600) instead of standard output")
	return cmd
}
