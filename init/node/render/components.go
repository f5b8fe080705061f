package render

import (
	"bytes"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/cairn-os/cairn/config"
)

// Kine returns kine's command when the datastore is SQL (postgres, mysql,
// sqlite), and nil otherwise (embedded or external etcd need no kine).
// The endpoint, password included, travels in KINE_ENDPOINT.
func Kine(cfg *config.Config, node Node) (*Command, error) {
	k := &cfg.Kubernetes
	if err := requireServer(k, "kine"); err != nil {
		return nil, err
	}
	ds, err := k.Datastore()
	if err != nil {
		return nil, fmt.Errorf("rendering kine: kubernetes.datastore-endpoint: %w", err)
	}
	switch ds.Kind {
	case config.DatastorePostgres, config.DatastoreMySQL, config.DatastoreSQLite:
	default:
		return nil, nil
	}
	l := node.layout()
	// kine keeps its defaults for polling (1 s) and compaction (off: the
	// apiserver compacts). Issue 28's crash loop after restarts ("Too large
	// resource version") was not about those, nor about the stop order: it
	// came from the current revision kine caches, which fell behind with two
	// kines on one database. The components build fixes it (dceoverlay's
	// KineRevision; test/kine_restart_test.go).
	var f flags
	f.set("listen-address", "unix://"+l.KineSocket)
	f.set("metrics-bind-address", "127.0.0.1:2381")
	if k.DatastoreCAFile != "" {
		f.set("ca-file", k.DatastoreCAFile)
	}
	if k.DatastoreCertFile != "" {
		f.set("cert-file", k.DatastoreCertFile)
		f.set("key-file", k.DatastoreKeyFile)
	}
	endpoint := ds.Endpoint
	if ds.Kind == config.DatastoreSQLite && ds.Query == "" {
		// Without these the apiserver's start-up load fails with
		// "database is locked (SQLITE_BUSY)": kine's own defaults for
		// the database it makes when given none.
		endpoint += "?" + SQLiteParams
	}
	c := &Command{Name: "kine", Args: f.args(), Env: []string{"KINE_ENDPOINT=" + endpoint}, PrivateOutput: true}
	return c, checkNoSecrets(c, secretsOf(cfg, node)...)
}

// SQLiteParams are the parameters kine's SQLite database is opened with
// when the endpoint gives none: a write-ahead log, a 30 s wait for a lock,
// and transactions that take the write lock at once.
const SQLiteParams = "_journal_mode=WAL&_busy_timeout=30000&_synchronous=NORMAL&_txlock=immediate"

// Etcd returns embedded etcd's command when there is no datastore-endpoint,
// and nil otherwise: this server's member, its data in Layout.EtcdDir.
// Clients and peers alike speak TLS and show a certificate of the etcd CA
// (loopback is open to every hostNetwork pod): the apiserver and the init
// on loopback, the other members and joining servers at the node's
// address, where it also takes its peers. A node given
// EtcdCluster joins the cluster that names; otherwise it starts a new
// cluster of one (a member with data ignores both).
func Etcd(cfg *config.Config, node Node) (*Command, error) {
	k := &cfg.Kubernetes
	if err := requireServer(k, "etcd"); err != nil {
		return nil, err
	}
	ds, err := k.Datastore()
	if err != nil {
		return nil, fmt.Errorf("rendering etcd: kubernetes.datastore-endpoint: %w", err)
	}
	if ds.Kind != config.DatastoreEmbedded {
		return nil, nil
	}
	l := node.layout()
	name := node.Name
	if name == "" {
		name = "default"
	}
	local := "https://" + l.DatastoreListen
	client := EtcdClientURL(node)
	listen := local
	if client != local {
		listen += "," + client
	}
	host, _, _ := strings.Cut(l.DatastoreListen, ":")
	peer := EtcdPeerURL(node)
	var f flags
	f.set("name", name)
	f.set("data-dir", l.EtcdDir)
	f.set("listen-client-urls", listen)
	// etcd's HTTP API (its JSON gateway, /version) on a loopback port of
	// its own: the client port then serves gRPC on gRPC's own transport
	// rather than through net/http's HTTP/2 server, which costs a
	// goroutine per stream and per frame written.
	f.set("listen-client-http-urls", "https://"+net.JoinHostPort(host, strconv.Itoa(EtcdHTTPPort)))
	f.set("advertise-client-urls", client)
	f.set("listen-peer-urls", peer)
	f.set("initial-advertise-peer-urls", peer)
	if node.EtcdCluster != "" {
		f.set("initial-cluster", node.EtcdCluster)
		f.set("initial-cluster-state", "existing")
	} else {
		f.set("initial-cluster", name+"="+peer)
		f.set("initial-cluster-state", "new")
	}
	f.set("listen-metrics-urls", "http://"+net.JoinHostPort(host, strconv.Itoa(EtcdMetricsPort)))
	f.set("client-cert-auth", "true")
	f.set("trusted-ca-file", l.Cert("etcd/ca.crt"))
	f.set("cert-file", l.Cert("etcd/server.crt"))
	f.set("key-file", l.Cert("etcd/server.key"))
	f.set("peer-client-cert-auth", "true")
	f.set("peer-trusted-ca-file", l.Cert("etcd/ca.crt"))
	f.set("peer-cert-file", l.Cert("etcd/peer.crt"))
	f.set("peer-key-file", l.Cert("etcd/peer.key"))
	// Two and a half times etcd's default heartbeat and election
	// timeout: members on busy small machines (or emulated ones) would
	// otherwise elect a new leader whenever one of them stalls for a
	// second; a leader that dies stalls writes for about 3 s.
	f.set("heartbeat-interval", "250")
	f.set("election-timeout", "2500")
	// bbolt commits its batch of applied writes every 500 ms rather than
	// every 100 ms: at rest the 100 ms timer was a tenth of what woke
	// etcd. Durability is the WAL's, fsynced before every reply as
	// before; reads see applied, uncommitted writes through etcd's read
	// buffer; a snapshot, a defragmentation and a stop commit first.
	f.set("backend-batch-interval", "500ms")
	// Compaction keeps the history from growing without bound.
	f.set("auto-compaction-mode", "periodic")
	f.set("auto-compaction-retention", "1h")
	c := &Command{Name: "etcd", Args: f.args()}
	return c, checkNoSecrets(c, secretsOf(cfg, node)...)
}

// EtcdPort and EtcdPeerPort are where embedded etcd's member takes
// clients (at the node's address; on loopback, Layout.DatastoreListen)
// and its peers; EtcdMetricsPort (/metrics, /health) and EtcdHTTPPort
// (its HTTP API) are on loopback only.
const (
	EtcdPort        = 2379
	EtcdPeerPort    = 2380
	EtcdMetricsPort = 2381
	EtcdHTTPPort    = 2382
)

// etcdHost is the address a member is reached at by the others: the
// node's (first) address, or DatastoreListen's host on a node without one.
func etcdHost(node Node) string {
	if ip := firstOf(node.IP); ip != "" {
		return ip
	}
	host, _, _ := strings.Cut(node.layout().DatastoreListen, ":")
	return host
}

// EtcdPeerURL is where embedded etcd's member listens for its peers: the
// node's address.
func EtcdPeerURL(node Node) string {
	return "https://" + net.JoinHostPort(etcdHost(node), strconv.Itoa(EtcdPeerPort))
}

// EtcdClientURL is where the other members and joining servers reach the
// member's client port: the node's address (DatastoreListen on a node
// without one).
func EtcdClientURL(node Node) string {
	if firstOf(node.IP) == "" {
		return "https://" + node.layout().DatastoreListen
	}
	return "https://" + net.JoinHostPort(etcdHost(node), strconv.Itoa(EtcdPort))
}

// etcdFlags sets the apiserver's --etcd-servers and its TLS flags.
func etcdFlags(f *flags, k *config.Kubernetes, l Layout) error {
	ds, err := k.Datastore()
	if err != nil {
		return fmt.Errorf("kubernetes.datastore-endpoint: %w", err)
	}
	switch ds.Kind {
	case config.DatastoreEmbedded:
		f.set("etcd-servers", "https://"+l.DatastoreListen)
		f.set("etcd-cafile", l.Cert("etcd/ca.crt"))
		f.set("etcd-certfile", l.Cert("apiserver-etcd-client.crt"))
		f.set("etcd-keyfile", l.Cert("apiserver-etcd-client.key"))
	case config.DatastoreEtcd:
		f.set("etcd-servers", strings.Join(ds.URLs, ","))
		if k.DatastoreCAFile != "" {
			f.set("etcd-cafile", k.DatastoreCAFile)
		}
		if k.DatastoreCertFile != "" {
			f.set("etcd-certfile", k.DatastoreCertFile)
			f.set("etcd-keyfile", k.DatastoreKeyFile)
		}
	default: // kine, on a unix socket
		f.set("etcd-servers", "unix://"+l.KineSocket)
	}
	return nil
}

// APIServer returns kube-apiserver's command.
func APIServer(cfg *config.Config, node Node) (*Command, error) {
	k := &cfg.Kubernetes
	if err := requireServer(k, "kube-apiserver"); err != nil {
		return nil, err
	}
	l := node.layout()
	var f flags
	if node.IP != "" {
		f.set("advertise-address", firstOf(node.IP))
	}
	f.set("allow-privileged", "true")
	f.set("authorization-mode", "Node,RBAC")
	f.set("client-ca-file", l.Cert("client-ca.crt"))
	f.set("enable-admission-plugins", "NodeRestriction")
	// Aggregated APIs (metrics-server) are reached at their endpoints'
	// pod addresses, which flannel routes, rather than at a Service IP,
	// which a server without a default route cannot even start to dial
	// ("network is unreachable" before kube-proxy's DNAT); k3s does the same.
	f.set("enable-aggregator-routing", "true")
	f.set("enable-bootstrap-token-auth", "true")
	if err := etcdFlags(&f, k, l); err != nil {
		return nil, fmt.Errorf("rendering kube-apiserver: %w", err)
	}
	f.set("kubelet-client-certificate", l.Cert("apiserver-kubelet-client.crt"))
	f.set("kubelet-client-key", l.Cert("apiserver-kubelet-client.key"))
	f.set("kubelet-preferred-address-types", "InternalIP,ExternalIP,Hostname")
	f.set("profiling", "false")
	f.set("proxy-client-cert-file", l.Cert("front-proxy-client.crt"))
	f.set("proxy-client-key-file", l.Cert("front-proxy-client.key"))
	f.set("requestheader-allowed-names", "front-proxy-client")
	f.set("requestheader-client-ca-file", l.Cert("front-proxy-ca.crt"))
	f.set("requestheader-extra-headers-prefix", "X-Remote-Extra-")
	f.set("requestheader-group-headers", "X-Remote-Group")
	f.set("requestheader-username-headers", "X-Remote-User")
	f.set("secure-port", fmt.Sprint(config.APIServerPort))
	f.set("service-account-issuer", "https://kubernetes.default.svc."+k.ClusterDomain)
	f.set("service-account-key-file", l.Cert("sa.pub"))
	f.set("service-account-signing-key-file", l.Cert("sa.key"))
	f.set("service-cluster-ip-range", k.ServiceCIDR)
	// A stopping apiserver (a reboot, an upgrade, the supervisor's restart)
	// answers 429 with Retry-After until its short requests are done, then
	// closes every connection within 2 s. Without it, its HTTP server
	// waits --request-timeout (60 s) for the watch streams of other nodes
	// to end, and the supervisor kills it at its 30 s stop budget.
	f.set("shutdown-send-retry-after", "true")
	f.set("tls-cert-file", l.Cert("apiserver.crt"))
	f.set("tls-private-key-file", l.Cert("apiserver.key"))
	c := &Command{Name: "kube-apiserver"}
	enc, err := EncryptionConfig(cfg, node)
	if err != nil {
		return nil, err
	}
	if enc != nil {
		// The file changes while the apiserver runs (a new key, the
		// write key moving): it reads it again within a minute.
		f.set("encryption-provider-config", enc.Path)
		f.set("encryption-provider-config-automatic-reload", "true")
		c.Files = append(c.Files, *enc)
	}
	f.extra(k.KubeAPIServerArg)
	c.Args = f.args()
	return c, checkNoSecrets(c, secretsOf(cfg, node)...)
}

// ControllerManager returns kube-controller-manager's command.
func ControllerManager(cfg *config.Config, node Node) (*Command, error) {
	k := &cfg.Kubernetes
	if err := requireServer(k, "kube-controller-manager"); err != nil {
		return nil, err
	}
	l := node.layout()
	kc := l.Kubeconfig("controller-manager")
	var f flags
	f.set("allocate-node-cidrs", "true")
	f.set("authentication-kubeconfig", kc)
	f.set("authorization-kubeconfig", kc)
	f.set("bind-address", "127.0.0.1")
	f.set("cluster-cidr", k.ClusterCIDR)
	// Client certificates (kubelets', admins') from the client CA, serving
	// certificates (kubelets') from the serving CA, as the apiserver and
	// kubelets trust them.
	f.set("cluster-signing-kube-apiserver-client-cert-file", l.Cert("client-ca.crt"))
	f.set("cluster-signing-kube-apiserver-client-key-file", l.Cert("client-ca.key"))
	f.set("cluster-signing-kubelet-client-cert-file", l.Cert("client-ca.crt"))
	f.set("cluster-signing-kubelet-client-key-file", l.Cert("client-ca.key"))
	f.set("cluster-signing-kubelet-serving-cert-file", l.Cert("server-ca.crt"))
	f.set("cluster-signing-kubelet-serving-key-file", l.Cert("server-ca.key"))
	f.set("cluster-signing-legacy-unknown-cert-file", l.Cert("server-ca.crt"))
	f.set("cluster-signing-legacy-unknown-key-file", l.Cert("server-ca.key"))
	f.set("controllers", "*,bootstrapsigner,tokencleaner")
	// Its start asks for a ServiceAccount and a token for each of ~45
	// controllers, and for discovery, through one client: ~135 requests
	// that upstream's burst of 30 at 20 a second spreads over 5 s before
	// node-ipam gives the first node its pod CIDR. A burst of 150 lets
	// them through at once; the sustained rate stays upstream's 20.
	f.set("kube-api-burst", "150")
	f.set("kubeconfig", kc)
	leaderElection(&f)
	f.set("profiling", "false")
	f.set("root-ca-file", l.Cert("server-ca.crt"))
	f.set("service-account-private-key-file", l.Cert("sa.key"))
	f.set("service-cluster-ip-range", k.ServiceCIDR)
	f.set("use-service-account-credentials", "true")
	f.extra(k.KubeControllerManagerArg)
	c := &Command{Name: "kube-controller-manager", Args: f.args()}
	return c, checkNoSecrets(c, secretsOf(cfg, node)...)
}

// leaderElection sets the leader election of kube-controller-manager and
// kube-scheduler: twice upstream's periods (lease 15 s, renew deadline
// 10 s, retry 2 s). The leader writes its Lease half as often, and a slow
// apiserver (a TCG VM starting, a Pi under load) no longer makes it miss
// the renew deadline, exit and start again; a dead leader's place is taken
// after 30 s instead of 15 (docs/performance.md). kube-*-arg can set them
// back.
func leaderElection(f *flags) {
	f.set("leader-elect", "true")
	f.set("leader-elect-lease-duration", "30s")
	f.set("leader-elect-renew-deadline", "20s")
	f.set("leader-elect-retry-period", "5s")
}

// Scheduler returns kube-scheduler's command.
func Scheduler(cfg *config.Config, node Node) (*Command, error) {
	k := &cfg.Kubernetes
	if err := requireServer(k, "kube-scheduler"); err != nil {
		return nil, err
	}
	l := node.layout()
	kc := l.Kubeconfig("scheduler")
	var f flags
	f.set("authentication-kubeconfig", kc)
	f.set("authorization-kubeconfig", kc)
	f.set("bind-address", "127.0.0.1")
	f.set("kubeconfig", kc)
	leaderElection(&f)
	f.set("profiling", "false")
	f.extra(k.KubeSchedulerArg)
	c := &Command{Name: "kube-scheduler", Args: f.args()}
	return c, checkNoSecrets(c, secretsOf(cfg, node)...)
}

// taint is a node-taint as KubeletConfiguration spells it.
type taint struct {
	Key    string `yaml:"key"`
	Value  string `yaml:"value,omitempty"`
	Effect string `yaml:"effect"`
}

func parseTaint(s string) taint {
	i := strings.LastIndex(s, ":")
	kv, effect := s, ""
	if i >= 0 {
		kv, effect = s[:i], s[i+1:]
	}
	key, val, _ := strings.Cut(kv, "=")
	return taint{Key: key, Value: val, Effect: effect}
}

// kubeletConfig is the subset of KubeletConfiguration (v1beta1) cairn sets.
type kubeletConfig struct {
	APIVersion     string `yaml:"apiVersion"`
	Kind           string `yaml:"kind"`
	Authentication struct {
		Anonymous struct {
			Enabled bool `yaml:"enabled"`
		} `yaml:"anonymous"`
		Webhook struct {
			Enabled bool `yaml:"enabled"`
		} `yaml:"webhook"`
		X509 struct {
			ClientCAFile string `yaml:"clientCAFile"`
		} `yaml:"x509"`
	} `yaml:"authentication"`
	Authorization struct {
		Mode string `yaml:"mode"`
	} `yaml:"authorization"`
	CgroupDriver             string   `yaml:"cgroupDriver"`
	ClusterDNS               []string `yaml:"clusterDNS"`
	ClusterDomain            string   `yaml:"clusterDomain"`
	ContainerRuntimeEndpoint string   `yaml:"containerRuntimeEndpoint"`
	FailCgroupV1             bool     `yaml:"failCgroupV1"`
	FailSwapOn               bool     `yaml:"failSwapOn"`
	HealthzBindAddress       string   `yaml:"healthzBindAddress"`
	ReadOnlyPort             int      `yaml:"readOnlyPort"`
	RegisterWithTaints       []taint  `yaml:"registerWithTaints,omitempty"`
	ResolvConf               string   `yaml:"resolvConf"`
	RotateCertificates       bool     `yaml:"rotateCertificates"`
	ServerTLSBootstrap       bool     `yaml:"serverTLSBootstrap"`
}

// Kubelet returns the kubelet's command and its config file. Node labels
// and taints come from kubernetes.node-label and node-taint.
func Kubelet(cfg *config.Config, node Node) (*Command, error) {
	k := &cfg.Kubernetes
	l := node.layout()
	var kcfg kubeletConfig
	kcfg.APIVersion = "kubelet.config.k8s.io/v1beta1"
	kcfg.Kind = "KubeletConfiguration"
	kcfg.Authentication.Webhook.Enabled = true
	kcfg.Authentication.X509.ClientCAFile = l.Cert("client-ca.crt")
	kcfg.Authorization.Mode = "Webhook"
	kcfg.CgroupDriver = "cgroupfs"
	for _, d := range strings.Split(k.ClusterDNS, ",") {
		kcfg.ClusterDNS = append(kcfg.ClusterDNS, strings.TrimSpace(d))
	}
	kcfg.ClusterDomain = k.ClusterDomain
	kcfg.ContainerRuntimeEndpoint = l.ContainerRuntimeEndpoint
	kcfg.HealthzBindAddress = "127.0.0.1"
	kcfg.ResolvConf = l.ResolvConf
	kcfg.RotateCertificates = true
	// The serving certificate comes from a CSR too; the servers approve
	// it when its names are the node's own.
	kcfg.ServerTLSBootstrap = true
	for _, t := range k.NodeTaint {
		kcfg.RegisterWithTaints = append(kcfg.RegisterWithTaints, parseTaint(t))
	}
	data, err := marshal(&kcfg)
	if err != nil {
		return nil, fmt.Errorf("rendering the kubelet config: %w", err)
	}
	configPath := filepath.Join(l.KubeletDir, "config.yaml")

	var f flags
	f.set("bootstrap-kubeconfig", l.Kubeconfig("bootstrap-kubelet"))
	f.set("cert-dir", filepath.Join(l.KubeletDir, "pki"))
	f.set("config", configPath)
	if node.Name != "" {
		f.set("hostname-override", node.Name)
	}
	f.set("kubeconfig", l.Kubeconfig("kubelet"))
	if node.IP != "" {
		f.set("node-ip", node.IP)
	}
	if len(k.NodeLabel) > 0 {
		f.set("node-labels", strings.Join(slices.Sorted(slices.Values(k.NodeLabel)), ","))
	}
	f.set("root-dir", l.KubeletDir)
	f.extra(k.KubeletArg)
	c := &Command{Name: "kubelet", Args: f.args(), Files: []File{{Path: configPath, Mode: 0o644, Data: data}}}
	return c, checkNoSecrets(c, secretsOf(cfg, node)...)
}

// KubeProxy returns kube-proxy's command and its config file.
func KubeProxy(cfg *config.Config, node Node) (*Command, error) {
	k := &cfg.Kubernetes
	l := node.layout()
	hostname := ""
	if node.Name != "" {
		hostname = "hostnameOverride: " + node.Name + "\n"
	}
	doc := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
clusterCIDR: %s
conntrack:
  maxPerCore: 0
healthzBindAddress: 127.0.0.1:10256
%smetricsBindAddress: 127.0.0.1:10249
mode: iptables
`, l.Kubeconfig("node"), k.ClusterCIDR, hostname)
	configPath := filepath.Join(l.DataDir, "kube-proxy.yaml")
	var f flags
	f.set("config", configPath)
	f.extra(k.KubeProxyArg)
	c := &Command{Name: "kube-proxy", Args: f.args(), Files: []File{{Path: configPath, Mode: 0o644, Data: []byte(doc)}}}
	return c, checkNoSecrets(c, secretsOf(cfg, node)...)
}

// K3s returns the k3s command (k3s server|agent) and its config file,
// for kubernetes.distribution k3s. The file holds the token and the
// datastore password, so its mode is 0600. An agent's token is its
// agent-token when it has one. The VIP becomes a tls-san on
// servers; agents already have server set from it by config.Load.
// kubernetes.registries becomes registries.yaml beside the config (0600:
// it may hold credentials), named by private-registry; k3s reads a
// private-registry file itself.
func K3s(cfg *config.Config, node Node) (*Command, error) {
	k := cfg.Kubernetes // a copy: fields are cleared below
	l := node.layout()
	var files []File
	if k.Registries != nil {
		data, err := marshal(k.Registries)
		if err != nil {
			return nil, fmt.Errorf("rendering k3s's registries.yaml: %w", err)
		}
		path := filepath.Join(filepath.Dir(l.K3sConfig), "registries.yaml")
		files = append(files, File{Path: path, Mode: 0o600, Data: data})
		k.Registries, k.PrivateRegistry = nil, path
	}
	role := k.Role
	if role != "server" && role != "agent" {
		return nil, fmt.Errorf("rendering k3s: kubernetes.role %q is not server or agent", role)
	}
	if role == "server" && k.VIP != "" && !slices.Contains(k.TLSSAN, k.VIP) {
		k.TLSSAN = append(append([]string(nil), k.TLSSAN...), k.VIP)
	}
	if k.NodeName == "" {
		k.NodeName = node.Name
	}
	if on := k.EncryptSecrets(); role == "server" {
		// cairn's default is on, k3s's off: say it.
		k.SecretsEncryption = &on
	}
	// cairn's own keys; k3s does not know them.
	k.Role, k.Distribution, k.VIP = "", "", ""
	k.VIPInterface, k.VIPLeaseDuration, k.VIPRenewDeadline, k.VIPRetryPeriod = "", "", "", ""
	if role == "agent" {
		// Agents take only agent flags. k3s's agent has no agent-token:
		// it joins with token, which takes the servers' agent token as
		// well as their server token; agent-token wins, as it does for
		// cairn's own agent.
		tok, tokFile := k.Token, k.TokenFile
		if k.AgentToken != "" || k.AgentTokenFile != "" {
			tok, tokFile = k.AgentToken, k.AgentTokenFile
		}
		k = config.Kubernetes{
			Token: tok, TokenFile: tokFile, Server: k.Server,
			NodeName: k.NodeName, NodeIP: k.NodeIP, NodeLabel: k.NodeLabel, NodeTaint: k.NodeTaint, FlannelIface: k.FlannelIface,
			KubeletArg: k.KubeletArg, KubeProxyArg: k.KubeProxyArg,
			PrivateRegistry: k.PrivateRegistry, DisableDefaultRegistryEndpoint: k.DisableDefaultRegistryEndpoint,
		}
	}
	data, err := marshal(&k)
	if err != nil {
		return nil, fmt.Errorf("rendering the k3s config: %w", err)
	}
	c := &Command{Name: "k3s", Args: []string{role}, Files: append([]File{{Path: l.K3sConfig, Mode: 0o600, Data: data}}, files...), PrivateOutput: true}
	return c, checkNoSecrets(c, secretsOf(cfg, node)...)
}

// marshal renders YAML with two-space indents, as the other files are.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func firstOf(list string) string {
	first, _, _ := strings.Cut(list, ",")
	return strings.TrimSpace(first)
}
