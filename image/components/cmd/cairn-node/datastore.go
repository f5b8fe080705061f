package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	kineapp "github.com/k3s-io/kine/pkg/app"
	"github.com/urfave/cli/v2"
	"go.etcd.io/etcd/server/v3/etcdmain"
)

// kine serves the etcd API over SQL (PostgreSQL, MySQL, SQLite).
func kine() int {
	// urfave/cli's version printer is a package global that containerd's
	// App() replaces; kine must print its own.
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintf(c.App.Writer, "%s version %s\n", c.App.Name, c.App.Version) }
	if err := kineapp.New().Run(os.Args); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "kine: %v\n", err)
		return 1
	}
	return 0
}

// etcd is the embedded default datastore (and an external etcd member).
func etcd() int {
	etcdmain.Main(os.Args)
	return 0
}
