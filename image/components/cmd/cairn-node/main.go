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

import "github.com/cairn-os/cairn/image/components/internal/multicall"

func main() {
	multicall.Binary{
		Name: "cairn-node",
		Applets: map[string]func() int{
			"kube-apiserver":          kubeAPIServer,
			"kube-controller-manager": kubeControllerManager,
			"kube-scheduler":          kubeScheduler,
			"kubelet":                 kubelet,
			"kube-proxy":              kubeProxy,
			"kubectl":                 kubectl,
			"kine":                    kine,
			"etcd":                    etcd,
			"etcdctl":                 etcdctl,
			"containerd":              containerd,
			"ctr":                     ctr,
			"flannel":                 flannelApplet,
		},
		SeeAlso: "What runs per pod (bridge, host-local, loopback, portmap, containerd-shim-runc-v2, mount, umount) is in cairn-pod.",
	}.Main()
}
