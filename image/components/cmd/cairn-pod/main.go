// Command cairn-pod is the node's second multicall binary: the programs
// that run once per pod, container or volume rather than as daemons. The
// CNI plugins the runtime execs to wire a sandbox (bridge, host-local,
// loopback, portmap), containerd's runc shim and the mount and umount the
// kubelet execs for volumes. None of them links Kubernetes, so a start
// pays for their own packages' init() only, not for the 150 MB cairn-node's
// (docs/components.md, "Two binaries").
//
// Links in /usr/bin name the applets as in cairn-node, and `cairn-pod
// APPLET ARGS...` works too; runc stays its own static binary (cgo).
package main

import "github.com/cairn-os/cairn/image/components/internal/multicall"

func main() {
	multicall.Binary{
		Name: "cairn-pod",
		Applets: map[string]func() int{
			"containerd-shim-runc-v2": containerdShimRuncV2,
			"bridge":                  cniBridge,
			"host-local":              cniHostLocal,
			"loopback":                cniLoopback,
			"portmap":                 cniPortmap,
			"mount":                   mount,
			"umount":                  umount,
		},
		SeeAlso: "The node's daemons (kubelet, containerd, kube-apiserver, ...) are applets of cairn-node.",
	}.Main()
}
