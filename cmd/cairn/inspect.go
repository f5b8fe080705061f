package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/cairn-os/cairn/image"
)

func init() {
	register("inspect", "list what an initramfs or squashfs image holds", inspectCmd)
}

func inspectCmd(args []string) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: cairn inspect ARTIFACT

Lists the files of an initramfs (concatenated cpio archives, uncompressed,
gzip or zstd) or a squashfs image, one per line: mode, owner, size, path.
The system image inside an initramfs is listed as /system.sqfs:/PATH.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	c, err := image.Inspect(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn:", err)
		return 1
	}
	fmt.Printf("%s: %s: %s\n", fs.Arg(0), c.Kind, strings.Join(c.Parts, "; "))
	if err := c.Format(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cairn inspect:", err)
		return 1
	}
	return 0
}
