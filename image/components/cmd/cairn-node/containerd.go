package main

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/manager"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/task/plugin" // the shim's task service
	"github.com/containerd/containerd/v2/cmd/containerd/command"
	ctrapp "github.com/containerd/containerd/v2/cmd/ctr/app"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/plugin/registry"
)

func containerd() int {
	if err := command.App().Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "containerd: %s\n", err)
		return 1
	}
	return 0
}

// ctr is containerd's client; the node uses it to import the images it
// carries (the pause image) into containerd at boot.
func ctr() int {
	if err := ctrapp.New().Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "ctr: %s\n", err)
		return 1
	}
	return 0
}

// containerdShimRuncV2 is the runc shim. The daemon's plugins share the
// process-wide plugin registry with the shim's; the shim would try to load
// them all, so only the shim's own task service is kept. The shim starts
// its long-running copy through os.Executable(), which is cairn-node, so
// the applet name goes along in the environment.
func containerdShimRuncV2() int {
	if err := os.Setenv(appletEnv, "containerd-shim-runc-v2"); err != nil {
		fmt.Fprintf(os.Stderr, "containerd-shim-runc-v2: setting %s: %v\n", appletEnv, err)
		return 1
	}
	keepShimPlugins()
	shim.RunShim(context.Background(), manager.NewShimManager("io.containerd.runc.v2"))
	return 0
}

// keepShimPlugins empties the plugin registry except for the shim's task
// service; RunShim registers the event publisher and shutdown service itself.
func keepShimPlugins() {
	all := registry.Graph(nil)
	registry.Reset()
	for i := range all {
		r := all[i]
		if r.Type == plugins.TTRPCPlugin && r.ID == "task" {
			registry.Register(&r)
		}
	}
}
