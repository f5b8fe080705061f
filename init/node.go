package main

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/layout"
	"github.com/cairn-os/cairn/init/boot"
	"github.com/cairn-os/cairn/init/node"
	"github.com/cairn-os/cairn/init/node/render"
	"github.com/cairn-os/cairn/init/node/upgrader"
	"github.com/cairn-os/cairn/init/shutdown"

	"golang.org/x/sys/unix"
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
	hostname := st.nodeHostname()
	err := node.Start(ctx, node.Options{
		Config:       cfg,
		Services:     st.services,
		Printf:       st.log.Printf,
		Hostname:     hostname,
		Addresses:    st.addresses,
		Layout:       layout,
		ConfigLoaded: loaded,
		Debug:        st.cmdline.Has("cairn.debug"),
		System:       st.system(),
		Reboot:       st.reboot,
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

// nodeHostname is the host name, or, when the config gave none (the
// kernel's "(none)"), one made from the first link's MAC address and set:
// a Kubernetes node needs a name that is stable across boots and unique
// on its network.
func (st *initState) nodeHostname() string {
	h, _ := unixHostname()
	if h != "" && h != "(none)" && h != "localhost" {
		return h
	}
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 || len(i.HardwareAddr) < 3 {
			continue
		}
		mac := i.HardwareAddr
		name := fmt.Sprintf("cairn-%02x%02x%02x", mac[len(mac)-3], mac[len(mac)-2], mac[len(mac)-1])
		if err := unix.Sethostname([]byte(name)); err != nil {
			st.log.Printf("node: setting the host name %s: %v", name, err)
		} else {
			boot.WriteHostname("/", name)
			st.log.Printf("node: no hostname was given; this node is %s (from %s's MAC address)", name, i.Name)
		}
		return name
	}
	return "cairn"
}

// system describes the running system for upgrades: its slot (none for
// live images and container-platform nodes without a node directory),
// board and version.
func (st *initState) system() upgrader.System {
	sys := upgrader.System{Version: version}
	if b, err := boot.ReadBoard(layout.BoardFile); err == nil {
		sys.Board = b.Name
	}
	sys.Slot = st.slot()
	return sys
}

// slot is the slot this system runs from: the command line's on a machine
// booted from a disk and on the container platform with a node directory
// (-disk); none otherwise, whatever the command line says (a -root
// container has no slots, and the host's disks are not its own).
func (st *initState) slot() string {
	if st.cmdline.Get(layout.SystemParam) != layout.SystemDisk || (st.platform != Metal && !st.disk) {
		return ""
	}
	return st.cmdline.Get(layout.SlotParam)
}

// reboot asks the init for an orderly restart.
func (st *initState) reboot(by string) {
	select {
	case st.requests <- shutdown.Request{Action: shutdown.Reboot, By: by}:
	default:
	}
}
