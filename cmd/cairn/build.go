package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/image"
	"github.com/cairn-os/cairn/image/progress"
)

func init() { register(newBuildCmd) }

func newBuildCmd() *cobra.Command {
	var o image.Options
	cmd := &cobra.Command{
		Use:   "build --board BOARD --kernel DEB|DIR --output DIR [flags]",
		Short: "build a board's kernel, initramfs and system image from a Debian kernel package",
		Long: `Writes the board's output formats (--format) and manifest.json into the output
directory: kernel is vmlinuz, initramfs.img (the init, stage-1 modules and the
system image /system.sqfs) and cmdline; disk is disk.img, a UEFI disk with A/B
slots and a STATE partition; update is update/, the bundle 'cairn upgrade'
installs on running nodes (docs/build.md, docs/upgrades.md).
Boards: ` + strings.Join(boards.Names(), ", ") + ".",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Progress = progress.New(cmd.ErrOrStderr(), "cairn: build: ")
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			res, err := image.Build(ctx, o)
			if err != nil {
				return err
			}
			printSummary(cmd.ErrOrStderr(), res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Board, "board", "b", "qemu-x86_64", "board to build for")
	f.StringVarP(&o.Kernel, "kernel", "k", "out/debs", "a linux-image .deb, or a directory of them (make kernels)")
	f.StringVarP(&o.Out, "output", "o", "", "output directory (required)")
	f.StringVar(&o.Init, "init", "", "init to use: a Go package directory, or a static binary (default: build ./init)")
	f.StringVar(&o.Components, "components", "", "directory with linux-<arch>/ component trees (make components); none when empty")
	f.StringSliceVar(&o.Formats, "format", nil, "output formats, comma-separated: "+strings.Join(image.Formats(), ", ")+" (default: the board's formats)")
	f.StringVarP(&o.Config, "config", "c", "", "cloud-config to bake in as /etc/cairn/config.yaml (validated)")
	f.StringVar(&o.K3s, "k3s", "", "a k3s binary for the board's arch, bundled as /usr/bin/k3s for kubernetes.distribution k3s")
	f.StringVar(&o.Compression, "compress", "", "initramfs compression: zstd or gzip (default zstd, gzip for a kernel without CONFIG_RD_ZSTD)")
	f.IntVar(&o.SquashfsLevel, "squashfs-level", image.DefaultSquashfsLevel, "zstd level of the system image, 1-22 (19 for the smallest image, slowly)")
	f.StringArrayVarP(&o.Modules, "module", "m", nil, "extra kernel module for the system image (repeatable)")
	f.StringVar(&o.Version, "version", "", "the build's version: the init's, the boot entry's and os-release's, update.json's (default: git describe of the source tree)")
	f.StringVar(&o.CacheDir, "cache", "", "cache of unpacked kernels and system images (default ~/.cache/cairn)")
	cmd.MarkFlagRequired("output")
	cmd.MarkFlagDirname("output")
	cmd.MarkFlagFilename("kernel", "deb")
	cmd.MarkFlagFilename("config", "yaml", "yml")
	cmd.MarkFlagFilename("k3s")
	cmd.RegisterFlagCompletionFunc("board", completeBoards)
	cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(image.Formats(), cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("compress", cobra.FixedCompletions([]string{"zstd", "gzip"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// completeBoards offers the board names to a shell's completion.
func completeBoards(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return boards.Names(), cobra.ShellCompDirectiveNoFileComp
}

func printSummary(w io.Writer, res *image.Result) {
	for _, a := range res.Info.Artifacts {
		fmt.Fprintf(w, "cairn: build: %s/%s %s\n", res.Dir, a.Name, image.HumanSize(a.Size))
	}
}
