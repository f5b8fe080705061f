// Package render turns a loaded config into what each node component is
// started with: the argument lists of kube-apiserver, kube-controller-manager,
// kube-scheduler, kubelet, kube-proxy and kine for the builtin distribution,
// and /etc/rancher/k3s/config.yaml for distribution k3s.
//
// Every function here is pure: the same config and node give the same
// commands and files, except that Containerd reads the file
// kubernetes.private-registry names. Secrets never appear in a command's
// arguments (/proc/PID/cmdline is world-readable); they go into files of
// mode 0600 or into the child's environment (registry credentials: files
// only).
package render

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/layout"
)

// File is a file a component needs before it starts. The caller writes it
// atomically with Mode (0600 for anything secret) and creates its
// directory with mode 0700.
type File struct {
	Path string
	Mode fs.FileMode
	Data []byte
}

// Command is one component's invocation.
type Command struct {
	// Name is the applet (argv[0]) of the multicall binary.
	Name string
	// Args are the arguments after the name; never secret.
	Args []string
	// Env is added to the child's environment and may hold secrets
	// (/proc/PID/environ is readable only by the process's owner).
	Env []string
	// Files are written before the command starts.
	Files []File
	// PrivateOutput: the program's output may hold a secret (kine's and
	// k3s's quote the datastore endpoint, password included), so none of it
	// reaches the console, not even as the reason in its exit line.
	PrivateOutput bool
}

// Layout is where a node keeps its state and certificates. The PKI and
// kubeconfig writers use the same names (see the path methods).
type Layout struct {
	// DataDir holds cairn's node state (/var/lib/cairn).
	DataDir string
	// CertDir holds the cluster PKI (DataDir/pki).
	CertDir string
	// KubeconfigDir holds the components' kubeconfigs (DataDir/kubeconfig).
	KubeconfigDir string
	// KubeletDir is the kubelet's root directory (/var/lib/kubelet).
	KubeletDir string
	// ContainerdDir is containerd's root (images, snapshots).
	ContainerdDir string
	// ContainerRuntimeEndpoint is containerd's CRI socket.
	ContainerRuntimeEndpoint string
	// ResolvConf is the resolv.conf pods inherit.
	ResolvConf string
	// DatastoreListen is where embedded etcd serves the apiserver, on
	// loopback, with client certificates.
	DatastoreListen string
	// KineSocket is the unix socket where kine serves the apiserver (in a
	// directory only root can enter).
	KineSocket string
	// EtcdDir is embedded etcd's data directory.
	EtcdDir string
	// K3sConfig is where distribution k3s reads its config.
	K3sConfig string
}

// DefaultLayout is the layout of a cairn node.
func DefaultLayout() Layout {
	return Layout{}.withDefaults()
}

func (l Layout) withDefaults() Layout {
	if l.DataDir == "" {
		l.DataDir = layout.StateDir
	}
	if l.CertDir == "" {
		l.CertDir = filepath.Join(l.DataDir, "pki")
	}
	if l.KubeconfigDir == "" {
		l.KubeconfigDir = filepath.Join(l.DataDir, "kubeconfig")
	}
	if l.KubeletDir == "" {
		l.KubeletDir = "/var/lib/kubelet"
	}
	if l.ContainerdDir == "" {
		l.ContainerdDir = "/var/lib/containerd"
	}
	if l.ContainerRuntimeEndpoint == "" {
		l.ContainerRuntimeEndpoint = "unix://" + ContainerdSocket
	}
	if l.ResolvConf == "" {
		l.ResolvConf = "/etc/resolv.conf"
	}
	if l.DatastoreListen == "" {
		l.DatastoreListen = "127.0.0.1:2379"
	}
	if l.KineSocket == "" {
		l.KineSocket = "/run/cairn/kine.sock"
	}
	if l.EtcdDir == "" {
		l.EtcdDir = filepath.Join(l.DataDir, "etcd")
	}
	if l.K3sConfig == "" {
		l.K3sConfig = "/etc/rancher/k3s/config.yaml"
	}
	return l
}

// Cert is the path of a PKI file by name: "server-ca.crt", "apiserver.key",
// "sa.pub", "etcd/ca.crt".
func (l Layout) Cert(name string) string { return filepath.Join(l.CertDir, name) }

// Kubeconfig is the path of a component's kubeconfig: "admin",
// "controller-manager", "scheduler", "kubelet", "bootstrap-kubelet",
// "kube-proxy".
func (l Layout) Kubeconfig(name string) string {
	return filepath.Join(l.KubeconfigDir, name+".conf")
}

// Node is what render needs to know about this machine.
type Node struct {
	// Name is the node name: kubernetes.node-name, else the hostname.
	Name string
	// IP is the node's address (kubernetes.node-ip, else the address of
	// the interface with the default route).
	IP string
	// Token is the cluster token (Kubernetes.JoinToken, or the one a first
	// server generated).
	Token  string
	Layout Layout
	// EtcdCluster is embedded etcd's initial cluster when this server
	// joins a running one (name=peer-URL pairs, as etcd takes them); ""
	// starts a new cluster of one.
	EtcdCluster string
	// Encryption is the cluster's keys for Secrets at rest (a server's,
	// read from the sealed cluster record); nil renders no encryption
	// config.
	Encryption *Encryption
	// Bin is the directory of the applets, runc and the CNI plugins
	// (/usr/bin when empty).
	Bin string
	// NoLowerOOMScore says processes here cannot lower their OOM score
	// (no CAP_SYS_RESOURCE, as in some sandboxes hosting the container
	// platform); containerd then keeps containers' scores at or above its
	// own instead of failing to start them.
	NoLowerOOMScore bool
}

func (n Node) layout() Layout { return n.Layout.withDefaults() }

// flags is an ordered flag list where a later value for the same name
// replaces the earlier one in place (so user *-arg entries override
// cairn's defaults, as in k3s).
type flags struct {
	names []string
	vals  map[string][]string
}

func (f *flags) set(name, val string) {
	if f.vals == nil {
		f.vals = map[string][]string{}
	}
	if _, ok := f.vals[name]; !ok {
		f.names = append(f.names, name)
	}
	f.vals[name] = []string{val}
}

// extra applies user arguments "name=value", "--name=value" or "name".
// A name given twice by the user is passed twice.
func (f *flags) extra(args []string) {
	seen := map[string]bool{}
	for _, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasVal {
			val = "true"
		}
		if seen[name] {
			f.vals[name] = append(f.vals[name], val)
			continue
		}
		seen[name] = true
		f.set(name, val)
	}
}

func (f *flags) args() []string {
	var out []string
	for _, n := range f.names {
		for _, v := range f.vals[n] {
			out = append(out, "--"+n+"="+v)
		}
	}
	return out
}

func requireServer(k *config.Kubernetes, what string) error {
	if k.Role != "server" {
		return fmt.Errorf("rendering %s: this node's role is %q; only servers run it", what, k.Role)
	}
	return nil
}

// checkNoSecrets is the last guard before a command leaves this package:
// no argument may contain the token or the datastore password.
func checkNoSecrets(c *Command, secrets ...string) error {
	for _, a := range c.Args {
		for _, s := range secrets {
			if s != "" && strings.Contains(a, s) {
				return fmt.Errorf("rendering %s: a secret would appear on the command line; refusing", c.Name)
			}
		}
	}
	return nil
}

// secretsOf is every secret render is given: the server token and the
// agent token as the config spells them and their secret parts (a K10
// token's part after "::server:", alone, is the whole secret), the
// node's token, and the datastore password. Token files are not here:
// render never reads them, so their content cannot reach an argument.
func secretsOf(cfg *config.Config, node Node) []string {
	k := &cfg.Kubernetes
	out := []string{node.Token}
	for _, raw := range []string{k.Token, k.AgentToken} {
		out = append(out, raw)
		if t, err := join.ParseToken(raw); err == nil {
			out = append(out, t.Secret)
		}
	}
	if ds, err := k.Datastore(); err == nil {
		out = append(out, ds.Password)
	}
	return out
}

// Components returns the commands a node of cfg's role runs, in start
// order: kine or etcd (when the datastore needs one), kube-apiserver,
// kube-controller-manager, kube-scheduler on servers; then containerd,
// kubelet, kube-proxy and flannel on every node.
func Components(cfg *config.Config, node Node) ([]Command, error) {
	var out []Command
	add := func(c *Command, err error) error {
		if err != nil {
			return err
		}
		if c != nil {
			out = append(out, *c)
		}
		return nil
	}
	if cfg.Kubernetes.Role == "server" {
		for _, f := range []func(*config.Config, Node) (*Command, error){Kine, Etcd, APIServer, ControllerManager, Scheduler} {
			if err := add(f(cfg, node)); err != nil {
				return nil, err
			}
		}
	}
	for _, f := range []func(*config.Config, Node) (*Command, error){Containerd, Kubelet, KubeProxy, Flannel} {
		if err := add(f(cfg, node)); err != nil {
			return nil, err
		}
	}
	return out, nil
}
