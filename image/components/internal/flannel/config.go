// Package flannel runs flannel's Kubernetes subnet manager with its vxlan or
// host-gw backend for one node, as flanneld --kube-subnet-mgr does, and
// writes the subnet file and the CNI configuration the node's pods use.
package flannel

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// Options are the applet's flags.
type Options struct {
	Kubeconfig  string // the kubelet's kubeconfig (user system:node:NAME)
	NodeName    string
	ClusterCIDR string // the cluster's pod network, IPv4
	Iface       string // interface (name or address) for traffic between nodes; default: the default route's
	Backend     string // BackendVXLAN or BackendHostGW
	IPMasq      bool   // masquerade pod traffic that leaves the cluster CIDR
	SubnetFile  string // flannel's subnet.env
	CNIConf     string // the CNI conflist written for containerd
}

// The backends offered, as flannel names them.
const (
	BackendVXLAN  = "vxlan"
	BackendHostGW = "host-gw"
)

// vxlan settings: VNI 1 on UDP port 8472, as k3s sets them (flannel's own
// default port is the kernel's, 0, which means 8472 on Linux anyway).
const (
	vxlanVNI  = 1
	vxlanPort = 8472
)

// annotationPrefix is flannel's: peers read each other's VTEP address and
// MAC from these node annotations.
const annotationPrefix = "flannel.alpha.coreos.com"

// CNINetworkName is the name of the network in the CNI conflist, as k3s and
// flannel's own manifests call it.
const CNINetworkName = "cbr0"

// check validates the options and returns the cluster CIDR.
func (o *Options) check() (*net.IPNet, error) {
	switch {
	case o.Kubeconfig == "":
		return nil, errors.New("--kubeconfig is required")
	case o.NodeName == "":
		return nil, errors.New("--node-name is required")
	case o.ClusterCIDR == "":
		return nil, errors.New("--cluster-cidr is required")
	case o.SubnetFile == "":
		return nil, errors.New("--subnet-file is required")
	case o.CNIConf == "":
		return nil, errors.New("--cni-conf is required")
	}
	if o.Backend == "" {
		o.Backend = BackendVXLAN
	}
	if o.Backend != BackendVXLAN && o.Backend != BackendHostGW {
		return nil, fmt.Errorf("--backend %q is not one of %s, %s", o.Backend, BackendVXLAN, BackendHostGW)
	}
	ipAddr, cidr, err := net.ParseCIDR(o.ClusterCIDR)
	if err != nil {
		return nil, fmt.Errorf("--cluster-cidr %q is not a CIDR (like 10.42.0.0/16)", o.ClusterCIDR)
	}
	if ipAddr.To4() == nil {
		return nil, fmt.Errorf("--cluster-cidr %q: only an IPv4 cluster CIDR is supported", o.ClusterCIDR)
	}
	if ones, _ := cidr.Mask.Size(); ones > 28 {
		return nil, fmt.Errorf("--cluster-cidr %q is too small for flannel (at most /28)", o.ClusterCIDR)
	}
	return cidr, nil
}

// netConf is flannel's network configuration (its net-conf.json) for the
// cluster CIDR and backend.
func netConf(cidr *net.IPNet, backend string) ([]byte, error) {
	be := map[string]any{"Type": backend}
	if backend == BackendVXLAN {
		be["VNI"] = vxlanVNI
		be["Port"] = vxlanPort
	}
	return json.Marshal(map[string]any{
		"Network":    cidr.String(),
		"EnableIPv4": true,
		"Backend":    be,
	})
}

// CNIConfList is the CNI configuration for the node's pods: a bridge cni0
// with addresses from the node's pod CIDR (host-local), its gateway the
// default route, and portmap for hostPort. Masquerading is flannel's job
// (--ip-masq), not the bridge's.
func CNIConfList(podCIDR *net.IPNet, mtu int) ([]byte, error) {
	if podCIDR == nil || podCIDR.IP.To4() == nil {
		return nil, fmt.Errorf("pod CIDR %v is not an IPv4 network", podCIDR)
	}
	if mtu < 576 {
		return nil, fmt.Errorf("MTU %d is too small", mtu)
	}
	type rng struct {
		Subnet string `json:"subnet"`
	}
	type route struct {
		Dst string `json:"dst"`
	}
	type ipam struct {
		Type   string  `json:"type"`
		Ranges [][]rng `json:"ranges"`
		Routes []route `json:"routes"`
	}
	type bridge struct {
		Type        string `json:"type"`
		Bridge      string `json:"bridge"`
		IsGateway   bool   `json:"isGateway"`
		IPMasq      bool   `json:"ipMasq"`
		HairpinMode bool   `json:"hairpinMode"`
		MTU         int    `json:"mtu"`
		IPAM        ipam   `json:"ipam"`
	}
	type portmap struct {
		Type         string          `json:"type"`
		Capabilities map[string]bool `json:"capabilities"`
		SNAT         bool            `json:"snat"`
	}
	list := struct {
		Name       string `json:"name"`
		CNIVersion string `json:"cniVersion"`
		Plugins    []any  `json:"plugins"`
	}{
		Name:       CNINetworkName,
		CNIVersion: "1.0.0",
		Plugins: []any{
			bridge{
				Type: "bridge", Bridge: "cni0", IsGateway: true, IPMasq: false, HairpinMode: true, MTU: mtu,
				IPAM: ipam{
					Type:   "host-local",
					Ranges: [][]rng{{{Subnet: (&net.IPNet{IP: podCIDR.IP.Mask(podCIDR.Mask), Mask: podCIDR.Mask}).String()}}},
					Routes: []route{{Dst: "0.0.0.0/0"}},
				},
			},
			portmap{Type: "portmap", Capabilities: map[string]bool{"portMappings": true}, SNAT: true},
		},
	}
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// writeAtomic writes data to path through a temporary file in the same
// directory and a rename, so a reader (containerd watches the CNI
// directory) sees the old file or the new one, never a part.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// previousNetworks reads FLANNEL_NETWORK and FLANNEL_SUBNET from a subnet
// file an earlier run wrote, so masquerade rules for a network that changed
// can be removed. Missing or unreadable values are nil.
func previousNetworks(path string) (network, subnet *net.IPNet) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 64<<10))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		_, n, err := net.ParseCIDR(strings.Trim(v, `"`))
		if err != nil || n.IP.To4() == nil {
			continue
		}
		switch k {
		case "FLANNEL_NETWORK":
			network = n
		case "FLANNEL_SUBNET":
			subnet = n
		}
	}
	return network, subnet
}

// contains reports whether the network outer holds all of inner.
func contains(outer, inner *net.IPNet) bool {
	o, _ := outer.Mask.Size()
	i, _ := inner.Mask.Size()
	return o <= i && outer.Contains(inner.IP)
}
