package main

import (
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/config/etcdsnap"
	"github.com/cairn-os/cairn/config/kube"
)

func init() { register(newEtcdSnapshotCmd) }

func newEtcdSnapshotCmd() *cobra.Command {
	var kubeconfig string
	cmd := &cobra.Command{
		Use:   "etcd-snapshot save|list [--kubeconfig FILE]",
		Short: "take a snapshot of embedded etcd now, or list the snapshots the servers keep",
		Long: `Servers on embedded etcd (no datastore-endpoint) snapshot their own etcd
member on a schedule (etcd-snapshot-schedule-cron, every 12 hours by
default) into etcd-snapshot-dir on their STATE partition, keep the newest
(etcd-snapshot-retention, 5), and record each in the ConfigMap
kube-system/cairn-etcd-snapshots. With etcd-s3, each is copied to an S3
bucket too, where the newest are kept as well.

cairn etcd-snapshot save asks every ready server to take one now and
prints where each landed; cairn etcd-snapshot list prints them all, the
copies in S3 among them. Both
need an admin kubeconfig (--kubeconfig or $KUBECONFIG, as 'cairn
kubeconfig' writes it). Restoring one is cluster-reset with
cluster-reset-restore-path on one server: a file on it, or with etcd-s3 a
snapshot's name in the bucket (docs/server.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrorf("name what to do: cairn etcd-snapshot save, or cairn etcd-snapshot list")
		},
	}
	cmd.PersistentFlags().StringVar(&kubeconfig, "kubeconfig", "", "an admin kubeconfig, as 'cairn kubeconfig' writes it (default $KUBECONFIG)")
	cmd.AddCommand(newEtcdSnapshotSaveCmd(&kubeconfig), newEtcdSnapshotListCmd(&kubeconfig))
	return cmd
}

// snapshotAPI is the apiserver client of the admin kubeconfig.
func snapshotAPI(kubeconfig string) (*kube.Client, error) {
	admin, err := adminKubeconfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return admin.Client(kube.Options{Retries: 2, ProxyFromEnvironment: true}), nil
}

func newEtcdSnapshotSaveCmd(kubeconfig *string) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "save [--kubeconfig FILE] [--timeout D]",
		Short: "ask every server on embedded etcd to take a snapshot now, and print where each landed",
		Long: `Asks every ready server on embedded etcd to snapshot its etcd member now
(an annotation on the ConfigMap kube-system/cairn-etcd-snapshots, which the
servers watch), waits up to --timeout for their answers, and prints a line
per server: the snapshot's path on that server, its size and sha256 (and
its copy in S3 with etcd-s3), or why it took none. Exit status 1 when a
server took none, or did not copy it to S3.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := snapshotAPI(*kubeconfig)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			failed, notCopied := 0, 0
			answers, err := etcdsnap.Save(ctx, api, timeout, func(a etcdsnap.Answer) {
				if a.Snapshot == nil {
					failed++
					fmt.Fprintln(cmd.ErrOrStderr(), "cairn etcd-snapshot save: "+etcdsnap.Describe(a))
					return
				}
				fmt.Fprintln(cmd.OutOrStdout(), etcdsnap.Describe(a))
				if line := etcdsnap.DescribeS3(a); line != "" {
					notCopied++
					fmt.Fprintln(cmd.ErrOrStderr(), "cairn etcd-snapshot save: "+line)
				}
			})
			if err != nil {
				return err
			}
			switch {
			case failed > 0:
				return fmt.Errorf("%d of %d servers took no snapshot", failed, len(answers))
			case notCopied > 0:
				return fmt.Errorf("%d of %d servers did not copy their snapshot to S3 (it is on the server)", notCopied, len(answers))
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up on a server that has not answered after this long")
	return cmd
}

func newEtcdSnapshotListCmd(kubeconfig *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list [--kubeconfig FILE]",
		Short: "list the etcd snapshots the servers keep (and their copies in S3), newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := snapshotAPI(*kubeconfig)
			if err != nil {
				return err
			}
			rec, err := etcdsnap.Read(cmd.Context(), api)
			if err != nil {
				return err
			}
			return etcdsnap.WriteList(cmd.OutOrStdout(), rec)
		},
	}
}
