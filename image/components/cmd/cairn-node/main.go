// Command cairn-node is the node's multicall binary: kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl, kine,
// etcd, containerd, containerd-shim-runc-v2, ctr, the CNI plugins the node
// uses and flannel, built from pinned upstream modules and chosen by the name
// it is run as (argv[0], a symlink in /usr/bin), the way busybox and k3s do it.
//
// `cairn-node APPLET ARGS...` works too, and `cairn-node` alone lists the
// applets. A child re-executed through os.Executable() (the runc shim starts
// itself that way, and the link is resolved to cairn-node) finds its applet
// in $CAIRN_NODE_APPLET.
package main

import (
	"fmt"
	"os"
	"sort"

	"github.com/cairn-os/cairn/image/components/internal/multicall"
)

// appletEnv carries the applet name across re-execs of os.Executable().
const appletEnv = "CAIRN_NODE_APPLET"

// applets maps each name cairn-node answers to to its entry point. Every
// entry point gets os.Args with os.Args[0] set to the applet name and
// returns the process exit status.
var applets = map[string]func() int{
	"kube-apiserver":          kubeAPIServer,
	"kube-controller-manager": kubeControllerManager,
	"kube-scheduler":          kubeScheduler,
	"kubelet":                 kubelet,
	"kube-proxy":              kubeProxy,
	"kubectl":                 kubectl,
	"kine":                    kine,
	"etcd":                    etcd,
	"containerd":              containerd,
	"containerd-shim-runc-v2": containerdShimRuncV2,
	"ctr":                     ctr,
	"bridge":                  cniBridge,
	"host-local":              cniHostLocal,
	"loopback":                cniLoopback,
	"portmap":                 cniPortmap,
	"flannel":                 flannelApplet,
	"mount":                   mount,
	"umount":                  umount,
}

func main() {
	name, args := multicall.Pick(os.Args, os.Getenv(appletEnv), func(n string) bool { _, ok := applets[n]; return ok })
	run, ok := applets[name]
	if !ok || args == nil {
		usage(name)
		os.Exit(2)
	}
	os.Args = args
	os.Exit(run())
}

func usage(name string) {
	if name != "" {
		fmt.Fprintf(os.Stderr, "cairn-node: %q is not an applet of this binary\n", name)
	}
	names := make([]string, 0, len(applets))
	for n := range applets {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: cairn-node APPLET [ARGS...], or run it through a link named after the applet")
	fmt.Fprintln(os.Stderr, "applets:")
	for _, n := range names {
		fmt.Fprintln(os.Stderr, "  "+n)
	}
}
