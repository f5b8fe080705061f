// Command cairn-node is the node's multicall binary for its daemons and
// tools: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
// kube-proxy, kubectl, kine, etcd, etcdctl, containerd, ctr and flannel, built from
// pinned upstream modules and chosen by the name it is run as (argv[0], a
// symlink in /usr/bin), the way busybox and k3s do it. What is exec'd per
// pod (the CNI plugins, the runc shim, mount, umount) is in cairn-pod,
// which does not link Kubernetes (docs/components.md, "Two binaries").
//
// `cairn-node APPLET ARGS...` works too, and `cairn-node` alone lists the
// applets.
package main

import (
	"context"

	"github.com/cairn-os/cairn/image/components/internal/multicall"
	"github.com/cairn-os/cairn/image/components/internal/procs"
)

func main() {
	multicall.Binary{
		Name: "cairn-node",
		Applets: map[string]func() int{
			"kube-apiserver":          daemon(kubeAPIServer),
			"kube-controller-manager": daemon(kubeControllerManager),
			"kube-scheduler":          daemon(kubeScheduler),
			"kubelet":                 daemon(kubelet),
			"kube-proxy":              daemon(kubeProxy),
			"kubectl":                 kubectl,
			"kine":                    daemon(kine),
			"etcd":                    daemon(etcd),
			"etcdctl":                 etcdctl,
			"containerd":              daemon(containerd),
			"ctr":                     ctr,
			"flannel":                 daemon(flannelApplet),
		},
		SeeAlso: "What runs per pod (bridge, host-local, loopback, portmap, containerd-shim-runc-v2, mount, umount) is in cairn-pod.",
	}.Main()
}

// daemon runs a long-running applet with one P while it is idle and all
// of them while it works (internal/procs), unless GOMAXPROCS is set in its
// environment. The tools (kubectl, etcdctl, ctr) exit before it would
// matter.
func daemon(applet func() int) func() int {
	return func() int {
		if !procs.Fixed() {
			go procs.Adapt(context.Background(), procs.Default())
		}
		return applet()
	}
}
