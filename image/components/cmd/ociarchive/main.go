// Command ociarchive packages one static binary (and, with -add, more
// beside it) as a single-layer container image and writes it as a tarball
// that `ctr images import` and `docker load` both read: an OCI image layout
// (oci-layout, index.json, blobs/sha256/...) plus docker's manifest.json
// naming the same blobs. The output depends only on its inputs: fixed
// timestamps, owners and order.
//
// usage:
//
//	ociarchive -arch amd64 -name registry.k8s.io/pause:3.10.2 -binary pause -o pause.tar
//	ociarchive ... -path /usr/bin/tool -binary tool -add /usr/bin/helper=helper -o tool.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/cairn-os/cairn/image/components/internal/ociarchive"
)

func main() {
	var img ociarchive.Image
	out := flag.String("o", "", "output tarball")
	binary := flag.String("binary", "", "static binary to put at /<name> and run as the entrypoint")
	flag.StringVar(&img.Arch, "arch", "", "GOARCH of the binary (amd64, arm64)")
	flag.StringVar(&img.Name, "name", "", "image reference, e.g. registry.k8s.io/pause:3.10.2")
	flag.StringVar(&img.Path, "path", "/pause", "path of the binary inside the image")
	flag.Func("add", "another executable in the image, `PATH=FILE` (PATH inside the image); repeat for more", func(s string) error {
		at, file, ok := strings.Cut(s, "=")
		if !ok || at == "" || file == "" {
			return fmt.Errorf("%q is not PATH=FILE", s)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		img.Extra = append(img.Extra, ociarchive.File{Path: at, Data: data})
		return nil
	})
	flag.Parse()
	if *out == "" || *binary == "" || img.Arch == "" || img.Name == "" {
		flag.Usage()
		os.Exit(2)
	}
	data, err := os.ReadFile(*binary)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ociarchive: reading the binary: %v\n", err)
		os.Exit(1)
	}
	img.Binary = data
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ociarchive: %v\n", err)
		os.Exit(1)
	}
	if err := img.Write(f); err != nil {
		f.Close()
		os.Remove(*out)
		fmt.Fprintf(os.Stderr, "ociarchive: writing %s: %v\n", *out, err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "ociarchive: closing %s: %v\n", *out, err)
		os.Exit(1)
	}
}
