package main

import (
	"context"
	"maps"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/init/boot"
	"github.com/cairn-os/cairn/init/node"
	"github.com/cairn-os/cairn/init/node/render"
)

// startNode starts the node's role from the loaded config, if the image
// has the components to run it.
func (st *initState) startNode(ctx context.Context, cfg *config.Config, loaded time.Time) {
	if ctx.Err() != nil {
		return
	}
	if _, err := os.Stat("/usr/bin/cairn-node"); err != nil && cfg.Kubernetes.Distribution != "k3s" {
		st.log.Printf("node: nothing to run: this image has no node components")
		return
	}
	layout := render.DefaultLayout()
	if err := os.MkdirAll(layout.DataDir, 0o700); err == nil && !boot.Persistent(layout.DataDir) {
		st.log.Printf("node: %s is in RAM (no STATE partition): this node's state is lost when it stops", layout.DataDir)
	}
	hostname, _ := unixHostname()
	err := node.Start(ctx, node.Options{
		Config:       cfg,
		Services:     st.services,
		Printf:       st.log.Printf,
		Hostname:     hostname,
		Addresses:    st.addresses,
		Layout:       layout,
		ConfigLoaded: loaded,
		Debug:        st.cmdline.Has("cairn.debug"),
	})
	if err != nil && ctx.Err() == nil {
		st.log.Printf("node: %v", err)
	}
}

// addresses lists the node's addresses on every link, in link-name order.
func (st *initState) addresses() []netip.Addr {
	if st.net == nil {
		return nil
	}
	byLink := st.net.Addresses()
	var out []netip.Addr
	for _, link := range slices.Sorted(maps.Keys(byLink)) {
		for _, p := range byLink[link] {
			out = append(out, p.Addr())
		}
	}
	return out
}
