package main

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/manager"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/task/plugin" // the shim's task service
	"github.com/containerd/containerd/v2/pkg/shim"

	"github.com/cairn-os/cairn/image/components/internal/multicall"
)

// containerdShimRuncV2 is containerd's runc shim, as upstream's main. It
// starts its long-running copy through os.Executable(), which is
// cairn-pod, so the applet's name goes along in the environment. Only the
// shim's own plugins are linked here, so its plugin registry holds what
// upstream's shim binary's does.
func containerdShimRuncV2() int {
	if err := os.Setenv(multicall.Env, "containerd-shim-runc-v2"); err != nil {
		fmt.Fprintf(os.Stderr, "containerd-shim-runc-v2: setting %s: %v\n", multicall.Env, err)
		return 1
	}
	shim.RunShim(context.Background(), manager.NewShimManager("io.containerd.runc.v2"))
	return 0
}
