package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"golang.org/x/term"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/image"
)

func init() {
	register("build", "build a board's kernel, initramfs and system image from a Debian kernel package", buildCmd)
}

func buildCmd(args []string) int {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: cairn build -board BOARD -kernel DEB|DIR -o DIR [flags]

Writes vmlinuz, initramfs.img (the init, stage-1 modules and the system image
/system.sqfs), cmdline and manifest.json into DIR. Boards: %s.

flags:
`, strings.Join(boards.Names(), ", "))
		fs.PrintDefaults()
	}
	var o image.Options
	var mods listFlag
	fs.StringVar(&o.Board, "board", "qemu-x86_64", "board to build for")
	fs.StringVar(&o.Kernel, "kernel", "out/debs", "a linux-image .deb, or a directory of them (make kernels)")
	fs.StringVar(&o.Out, "o", "", "output directory (required)")
	fs.StringVar(&o.Init, "init", "", "init to use: a Go package directory, or a static binary (default: build ./init)")
	fs.StringVar(&o.Components, "components", "", "directory with linux-<arch>/ component trees (make components); none when empty")
	fs.StringVar(&o.Config, "config", "", "cloud-config to bake in as /etc/cairn/config.yaml (validated)")
	fs.StringVar(&o.Compression, "compress", "", "initramfs compression: zstd or gzip (default zstd, gzip for a kernel without CONFIG_RD_ZSTD)")
	fs.IntVar(&o.SquashfsLevel, "squashfs-level", image.DefaultSquashfsLevel, "zstd level of the system image, 1-22 (19 for the smallest image, slowly)")
	fs.Var(&mods, "module", "extra kernel module for the system image (repeatable)")
	fs.StringVar(&o.CacheDir, "cache", "", "cache of unpacked kernels and system images (default ~/.cache/cairn)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || o.Out == "" {
		fs.Usage()
		return 2
	}
	o.Modules = mods
	if term.IsTerminal(int(os.Stderr.Fd())) {
		o.Progress = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := image.Build(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn build:", err)
		return 1
	}
	if o.Progress != nil {
		printSummary(os.Stderr, res)
	}
	return 0
}

func printSummary(w io.Writer, res *image.Result) {
	for _, a := range res.Info.Artifacts {
		fmt.Fprintf(w, "cairn: build: %s/%s %s\n", res.Dir, a.Name, image.HumanSize(a.Size))
	}
}
