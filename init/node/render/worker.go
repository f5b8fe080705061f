package render

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-os/cairn/config"
)

// ContainerdSocket is where containerd serves the kubelet and ctr.
const ContainerdSocket = "/run/containerd/containerd.sock"

// CNIConfDir is where flannel writes the pod network's CNI config and
// containerd reads it.
const CNIConfDir = "/etc/cni/net.d"

// ContainerStatsPeriod is how often containerd's CRI plugin samples every
// running container's CPU (a Stats call into its shim, and a read of its
// pod's cgroup) for the usageNanoCores of the kubelet's summary: 1 s by
// containerd's default, the largest part of an idle node's shims' and
// containerd's work. 10 s is the kubelet's own cAdvisor housekeeping
// period, and the summary is read every 10 s (eviction) or 15 s
// (metrics-server, which computes its rates from the cumulative counters
// anyway): the figure becomes a 10 s average instead of a 1 s one.
const ContainerStatsPeriod = "10s"

// Containerd returns containerd's command and config: the CRI plugin with
// the runc shim on cgroupfs, overlayfs snapshots, the CNI plugins from
// the multicall binary's directory, and no AppArmor (the appliance loads
// no profiles). Registries (kubernetes.registries, or the private-registry
// file, read here) become hosts.toml files under RegistryHostsDir, mode
// 0600; see RegistryHosts.
func Containerd(cfg *config.Config, node Node) (*Command, error) {
	k := &cfg.Kubernetes
	regs, err := k.RegistryConfig()
	if err != nil {
		return nil, fmt.Errorf("rendering containerd: %w", err)
	}
	hosts, err := RegistryHosts(regs, k.DisableDefaultRegistryEndpoint)
	if err != nil {
		return nil, err
	}
	l := node.layout()
	bin := node.Bin
	if bin == "" {
		bin = "/usr/bin"
	}
	doc := fmt.Sprintf(`version = 4
root = %q
state = "/run/containerd"

[plugins.'io.containerd.server.v1.grpc']
  address = %q

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"

[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = %q

[plugins.'io.containerd.cri.v1.runtime']
  disable_apparmor = true
  enable_selinux = false
  restrict_oom_score_adj = %t
  stats_collect_period = %q

[plugins.'io.containerd.cri.v1.runtime'.containerd]
  default_runtime_name = "runc"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  BinaryName = %q
  SystemdCgroup = false

[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = [%q]
  conf_dir = %q
`, l.ContainerdDir, ContainerdSocket, RegistryHostsDir, node.NoLowerOOMScore, ContainerStatsPeriod, filepath.Join(bin, "runc"), bin, CNIConfDir)
	path := "/etc/containerd/config.toml"
	c := &Command{Name: "containerd", Args: []string{"--config", path}, Files: append([]File{{Path: path, Mode: 0o644, Data: []byte(doc)}}, hosts...)}
	if err := checkNoSecrets(c, secretsOf(cfg, node)...); err != nil {
		return nil, err
	}
	// Registry credentials go into hosts.toml files (0600) only, never
	// into the arguments or the environment.
	if err := checkNoSecrets(&Command{Name: c.Name, Args: append(slices.Clone(c.Args), c.Env...)}, registrySecrets(regs)...); err != nil {
		return nil, err
	}
	return c, nil
}

// FlannelSubnetFile is where flannel records the node's pod subnet.
const FlannelSubnetFile = "/run/flannel/subnet.env"

// Flannel returns the pod network's command: the flannel applet with the
// node's own credentials (the kubelet's client certificate), nil when
// flannel-backend is none.
func Flannel(cfg *config.Config, node Node) (*Command, error) {
	k := &cfg.Kubernetes
	if k.FlannelBackend == "none" {
		return nil, nil
	}
	l := node.layout()
	var f flags
	f.set("kubeconfig", l.Kubeconfig("node"))
	f.set("node-name", node.Name)
	f.set("cluster-cidr", k.ClusterCIDR)
	// Pod traffic between nodes leaves by flannel-iface, else by the
	// interface holding the address the kubelet registers (node-ip, else
	// the node's first address), so flannel and the Node object agree.
	switch {
	case k.FlannelIface != "":
		f.set("iface", k.FlannelIface)
	case node.IP != "":
		f.set("iface", node.IP)
	}
	f.set("backend", cmp.Or(k.FlannelBackend, config.DefaultFlannelBackend))
	f.set("ip-masq", "true")
	f.set("subnet-file", FlannelSubnetFile)
	f.set("cni-conf", filepath.Join(CNIConfDir, "10-flannel.conflist"))
	c := &Command{Name: "flannel", Args: f.args()}
	return c, checkNoSecrets(c, secretsOf(cfg, node)...)
}

// NodeKubeconfig is the kubeconfig kube-proxy and flannel use: the
// kubelet's client certificate (kubelet-client-current.pem, which the
// kubelet renews in place), the serving CA, and server, the address this
// node reaches the control plane by.
func NodeKubeconfig(node Node, server string) File {
	l := node.layout()
	pem := filepath.Join(l.KubeletDir, "pki", "kubelet-client-current.pem")
	doc := KubeconfigDoc(server, l.Cert("server-ca.crt"), "node", "client-certificate: "+pem, "client-key: "+pem)
	return File{Path: l.Kubeconfig("node"), Mode: 0o600, Data: doc}
}

// KubeconfigDoc is a kubeconfig for one cluster (server, trusting the CA
// file caPath) and one user, whose fields are YAML lines like
// "token: ID.SECRET" or "client-certificate: PATH".
func KubeconfigDoc(server, caPath, user string, fields ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Config\nclusters:\n- name: cairn\n  cluster:\n    server: %s\n    certificate-authority: %s\n", server, caPath)
	fmt.Fprintf(&b, "users:\n- name: %s\n  user:\n", user)
	for _, f := range fields {
		fmt.Fprintf(&b, "    %s\n", f)
	}
	fmt.Fprintf(&b, "contexts:\n- name: cairn\n  context:\n    cluster: cairn\n    user: %s\ncurrent-context: cairn\n", user)
	return []byte(b.String())
}
