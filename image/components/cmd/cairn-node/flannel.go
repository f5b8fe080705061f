package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	flannelversion "github.com/flannel-io/flannel/pkg/version"

	"github.com/cairn-os/cairn/image/components/internal/flannel"
)

// flannelApplet is the node's pod network: flannel's kube subnet manager and
// vxlan (or host-gw) backend, driven by internal/flannel. It runs until
// SIGTERM or SIGINT; a fatal error is one line on stderr and exit status 1.
func flannelApplet() int {
	var o flannel.Options
	fs := flag.NewFlagSet("flannel", flag.ContinueOnError)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig to reach the API server with (the kubelet's)")
	fs.StringVar(&o.NodeName, "node-name", "", "this node's name in Kubernetes")
	fs.StringVar(&o.ClusterCIDR, "cluster-cidr", "", "the cluster's pod network (IPv4 CIDR), as given to kube-controller-manager")
	fs.StringVar(&o.Iface, "iface", "", "interface (name or address) for traffic between nodes (default: the default route's)")
	fs.StringVar(&o.Backend, "backend", flannel.BackendVXLAN, "backend: vxlan (VNI 1, UDP 8472) or host-gw")
	fs.BoolVar(&o.IPMasq, "ip-masq", false, "masquerade pod traffic that leaves the cluster CIDR")
	fs.StringVar(&o.SubnetFile, "subnet-file", "/run/flannel/subnet.env", "where to write flannel's subnet file")
	fs.StringVar(&o.CNIConf, "cni-conf", "/etc/cni/net.d/10-flannel.conflist", "where to write the CNI conflist")
	version := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: flannel --kubeconfig PATH --node-name NAME --cluster-cidr CIDR [--iface IFNAME] [--backend vxlan|host-gw] [--ip-masq] [--subnet-file PATH] [--cni-conf PATH]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		fmt.Println("flannel " + flannelversion.Version)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "flannel: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if o.Kubeconfig == "" || o.NodeName == "" || o.ClusterCIDR == "" {
		fmt.Fprintln(os.Stderr, "flannel: --kubeconfig, --node-name and --cluster-cidr are required")
		fs.Usage()
		return 2
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // the supervisor stamps lines
			}
			return a
		},
	})).With("applet", "flannel")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := flannel.Run(ctx, o, log); err != nil {
		fmt.Fprintln(os.Stderr, "flannel: "+strings.ReplaceAll(err.Error(), "\n", " "))
		return 1
	}
	return 0
}
