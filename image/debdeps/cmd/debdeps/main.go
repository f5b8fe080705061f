// Command debdeps puts Debian packages and their dependency closure into a
// root-filesystem tree: it resolves Depends from apt's lists, downloads the
// .debs with apt-get (cached in -debs), extracts them and writes
// usr/share/cairn/debs.json with each package's version and hash.
// image/components/build.sh runs it to add iptables, nftables and conntrack
// to the node components.
//
// usage: debdeps -arch arm64 -debs DIR -o TREE [PACKAGE...]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/cairn-os/cairn/image/debdeps"
)

func main() {
	arch := flag.String("arch", "", "Debian architecture: amd64 or arm64")
	lists := flag.String("lists", "/var/lib/apt/lists", "apt's lists directory (run apt-get update first)")
	debs := flag.String("debs", "", "directory the .debs are downloaded to and reused from")
	out := flag.String("o", "", "tree to extract into")
	skip := flag.String("skip", "", "comma-separated package names to treat as present")
	flag.Parse()
	if *arch == "" || *debs == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	names := flag.Args()
	if len(names) == 0 {
		names = debdeps.NodeNetworking
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *arch, *lists, *debs, *out, names, *skip); err != nil {
		fmt.Fprintf(os.Stderr, "debdeps: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, arch, lists, debDir, out string, names []string, skip string) error {
	ix, err := debdeps.LoadAptLists(lists, arch)
	if err != nil {
		return err
	}
	var skips []string
	if skip != "" {
		skips = strings.Split(skip, ",")
	}
	pkgs, err := ix.Resolve(names, skips...)
	if err != nil {
		return err
	}
	paths, err := debdeps.Download(ctx, pkgs, arch, debDir)
	if err != nil {
		return err
	}
	links := map[string]string{}
	for _, p := range pkgs {
		if p.Name == "iptables" {
			links = debdeps.NodeNetworkingLinks
		}
	}
	m, err := debdeps.Extract(paths, out, debdeps.ExtractOptions{Links: links})
	if err != nil {
		return err
	}
	slog.Info("debdeps: extracted", "arch", arch, "packages", len(m.Packages), "tree", out)
	return nil
}
