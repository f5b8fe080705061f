package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/image"
	"github.com/cairn-os/cairn/image/progress"
)

func init() { register(newFlashCmd) }

func newFlashCmd() *cobra.Command {
	var o image.FlashOptions
	var yes bool
	cmd := &cobra.Command{
		Use:   "flash IMAGE DEVICE",
		Short: "write a disk image to a disk or SD card and verify it",
		Long: `Writes IMAGE (disk.img, or disk.img.zst / disk.img.xz) to the block device
DEVICE, then reads back what it wrote and compares. With a block map (the
image's .bmap beside it, or --bmap) only the blocks holding data are written.
A device that is mounted or used as swap, with any of its partitions, is
refused; that includes the disk the running system is on. It asks before
writing unless --yes.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Image, o.Device = args[0], args[1]
			if err := image.FlashTarget(o.Device); err != nil {
				return err
			}
			if !yes {
				fmt.Fprintf(cmd.ErrOrStderr(), "cairn: flash: everything on %s will be overwritten with %s. Continue? [y/N] ", o.Device, o.Image)
				answer, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
					return fmt.Errorf("not confirmed; nothing written to %s", o.Device)
				}
			}
			o.Progress = progress.New(cmd.ErrOrStderr(), "cairn: flash: ")
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			res, err := image.Flash(ctx, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "cairn: flash: %s written to %s and verified (%s skipped as holes)\n",
				image.HumanSize(res.Written), o.Device, image.HumanSize(res.Skipped))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Bmap, "bmap", "", "the image's block map (default: IMAGE.bmap beside it, without .zst/.xz)")
	f.BoolVarP(&yes, "yes", "y", false, "do not ask before overwriting DEVICE")
	cmd.MarkFlagFilename("bmap", "bmap")
	return cmd
}
