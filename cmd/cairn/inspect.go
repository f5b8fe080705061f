package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/image"
)

func init() { register(newInspectCmd) }

func newInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect ARTIFACT",
		Short: "list what an initramfs, squashfs or disk image holds",
		Long: `Lists the files of an initramfs (concatenated cpio archives, uncompressed,
gzip or zstd), a squashfs image or a GPT disk image (disk.img, cairn.iso), one
per line: mode, owner, size, path. The system image inside an initramfs is
listed as /system.sqfs:/PATH; a disk's partitions are listed first and their
files as /PARTITION-NAME:/PATH (/cairn-a:/sbin/init).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := image.Inspect(args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: %s: %s\n", args[0], c.Kind, strings.Join(c.Parts, "; "))
			return c.Format(out)
		},
	}
}
