package flannel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/flannel-io/flannel/pkg/backend"
	_ "github.com/flannel-io/flannel/pkg/backend/hostgw" // registers host-gw
	_ "github.com/flannel-io/flannel/pkg/backend/vxlan"  // registers vxlan
	"github.com/flannel-io/flannel/pkg/ip"
	"github.com/flannel-io/flannel/pkg/ipmatch"
	"github.com/flannel-io/flannel/pkg/subnet/kube"
	"github.com/flannel-io/flannel/pkg/trafficmngr/iptables"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"
)

// Timing of the waits. The rules flannel installs are checked by
// ruleKeeper (rules.go), not by flannel's own loop.
const (
	pollEvery = 2 * time.Second
	logEvery  = 10 * time.Second
	stopBound = 10 * time.Second
)

// Run sets up the node's pod network and keeps it in sync with the other
// nodes until ctx ends: it waits for the node's spec.podCIDR, starts the
// backend (which annotates the node so peers find it), installs the
// forward and masquerade rules, writes the subnet file and then the CNI
// conflist. It returns nil when ctx ends, an error when something fails.
func Run(ctx context.Context, o Options, log *slog.Logger) error {
	clusterCIDR, err := o.check()
	if err != nil {
		return err
	}
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil {
		log.Warn("br_netfilter is not loaded: traffic between pods on this node's bridge bypasses iptables (services, network policy)")
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return fmt.Errorf("reading the kubeconfig %s: %w", o.Kubeconfig, err)
	}
	cfg.UserAgent = "cairn-flannel"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	podCIDR, err := waitForPodCIDR(ctx, client.CoreV1().Nodes(), o.NodeName, clusterCIDR, log)
	if err != nil || ctx.Err() != nil {
		return err
	}

	// flannel's subnet manager reads its network configuration from a file
	// and the node's name from $NODE_NAME.
	conf, err := netConf(clusterCIDR, o.Backend)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "cairn-flannel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	confPath := filepath.Join(dir, "net-conf.json")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		return err
	}
	if err := os.Setenv("NODE_NAME", o.NodeName); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		waitBounded(&wg, stopBound)
	}()

	sm, err := kube.NewSubnetManager(ctx, "", o.Kubeconfig, annotationPrefix, confPath, false)
	if err != nil {
		return fmt.Errorf("kube subnet manager: %w", err)
	}
	config, err := sm.GetNetworkConfig(ctx)
	if err != nil {
		return err
	}
	stack, err := ipmatch.GetIPFamily(config.EnableIPv4, config.EnableIPv6)
	if err != nil {
		return err
	}
	ext, err := ipmatch.LookupExtIface(o.Iface, "", "", stack, ipmatch.PublicIPOpts{})
	if err != nil {
		if o.Iface == "" {
			return fmt.Errorf("no interface for traffic between nodes (none has the default route; give --iface): %w", err)
		}
		return fmt.Errorf("--iface %s: %w", o.Iface, err)
	}

	be, err := backend.NewManager(ctx, sm, ext).GetBackend(config.BackendType)
	if err != nil {
		return err
	}
	bn, err := be.RegisterNetwork(ctx, &wg, config)
	if err != nil {
		return fmt.Errorf("%s backend on %s: %w", o.Backend, ext.Iface.Name, err)
	}
	lease := bn.Lease()

	// flannel's own check of its rules runs only where there is no
	// iptables-save to check them more cheaply with (rules.go).
	save, err := iptablesSave()
	resync := flannelNoResync
	if err != nil {
		resync = int(rulesEvery / time.Second)
		log.Warn("flannel checks its iptables rules itself, with 20 execs of iptables each time", "every", rulesEvery, "err", err)
	}
	// install installs the rules; its goroutines (flannel's check loop,
	// which never comes round) last as long as ictx.
	install := func(ictx context.Context, prevSubnet, prevNet ip.IP4Net) error {
		tm := &iptables.IPTablesManager{}
		if err := tm.Init(ictx); err != nil {
			return err
		}
		if o.IPMasq {
			if err := tm.SetupAndEnsureMasqRules(ictx, config.Network, prevSubnet, prevNet,
				ip.IP6Net{}, ip.IP6Net{}, ip.IP6Net{}, lease, resync, false); err != nil {
				return fmt.Errorf("masquerade rules: %w", err)
			}
		}
		tm.SetupAndEnsureForwardRules(ictx, config.Network, config.IPv6Network, resync)
		return nil
	}
	prevNet, prevSubnet := previousNetworks(o.SubnetFile)
	if err := install(ctx, ip4(prevSubnet), ip4(prevNet)); err != nil {
		return err
	}
	if save != nil {
		k := &ruleKeeper{save: save, masq: o.IPMasq, log: log, install: func(ctx context.Context) error {
			ictx, cancel := context.WithCancel(ctx)
			defer cancel()
			// The rules of this subnet replace themselves: nothing older
			// to remove.
			return install(ictx, lease.Subnet, config.Network)
		}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			k.run(ctx, rulesEvery)
		}()
	}

	if err := sm.HandleSubnetFile(o.SubnetFile, config, o.IPMasq, lease.Subnet, lease.IPv6Subnet, bn.MTU()); err != nil {
		return fmt.Errorf("writing %s: %w", o.SubnetFile, err)
	}
	list, err := CNIConfList(lease.Subnet.ToIPNet(), bn.MTU())
	if err != nil {
		return err
	}
	if err := writeAtomic(o.CNIConf, list, 0o644); err != nil {
		return err
	}
	log.Info("ready", "subnet", podCIDR.String(), "backend", o.Backend, "iface", ext.Iface.Name, "mtu", bn.MTU())

	done := make(chan struct{})
	go func() {
		bn.Run(ctx)
		close(done)
	}()
	if err := sm.CompleteLease(ctx, lease, &wg); err != nil && ctx.Err() == nil {
		log.Warn("completing the lease", "err", err)
	}
	select {
	case <-ctx.Done():
		cancel()
		select {
		case <-done:
		case <-time.After(stopBound):
		}
		log.Info("stopped")
		return nil
	case <-done:
		return errors.New("the backend stopped watching the other nodes")
	}
}

// waitForPodCIDR polls the node until kube-controller-manager has given it
// a pod CIDR inside the cluster CIDR, logging every logEvery while it waits.
func waitForPodCIDR(ctx context.Context, nodes corev1client.NodeInterface, name string, cluster *net.IPNet, log *slog.Logger) (*net.IPNet, error) {
	var lastLog time.Time
	for {
		why := ""
		node, err := nodes.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			why = "the node is not registered yet"
		case err != nil:
			why = err.Error()
		case node.Spec.PodCIDR == "":
			why = "spec.podCIDR is empty (kube-controller-manager --allocate-node-cidrs assigns it)"
		default:
			_, cidr, err := net.ParseCIDR(node.Spec.PodCIDR)
			if err != nil || cidr.IP.To4() == nil {
				return nil, fmt.Errorf("node %s has pod CIDR %q, not an IPv4 network", name, node.Spec.PodCIDR)
			}
			if !contains(cluster, cidr) {
				return nil, fmt.Errorf("node %s has pod CIDR %s, outside --cluster-cidr %s", name, cidr, cluster)
			}
			return cidr, nil
		}
		if time.Since(lastLog) >= logEvery {
			log.Info("waiting for the node's pod CIDR", "node", name, "reason", why)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(pollEvery):
		}
	}
}

func ip4(n *net.IPNet) ip.IP4Net {
	if n == nil {
		return ip.IP4Net{}
	}
	return ip.FromIPNet(n)
}

// waitBounded waits for wg, at most d: flannel's goroutines end with the
// context, and a stop must not hang on one that does not.
func waitBounded(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}
