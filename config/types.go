package config

// Config is one node's configuration: the cloud-init keys cairn implements
// plus its own kubernetes section. Field names follow cloud-init and the k3s
// config file so users can paste theirs.
type Config struct {
	// Hostname of the node; meta-data's local-hostname is used when empty.
	Hostname string `yaml:"hostname,omitempty"`
	// WriteFiles are written atomically before any service starts.
	WriteFiles []WriteFile `yaml:"write_files,omitempty"`
	// NTP servers and pools; DHCP option 42 is used when both are empty.
	NTP *NTP `yaml:"ntp,omitempty"`
	// Network is cloud-init network config version 2; DHCPv4 on every
	// physical link when absent.
	Network *Network `yaml:"network,omitempty"`
	// Sysctl is applied before services start ("net.ipv4.ip_forward": "1").
	// A cairn extension, as k3OS had.
	Sysctl map[string]string `yaml:"sysctl,omitempty"`
	// Kubernetes is the node's role and cluster settings.
	Kubernetes Kubernetes `yaml:"kubernetes,omitempty"`

	// locs remembers where each key was set, for diagnostics after merging.
	locs map[string]pos
	// files names the sources, in order.
	files []string
}

// WriteFile is one entry of write_files.
type WriteFile struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content,omitempty"`
	Encoding    string `yaml:"encoding,omitempty"`    // text | b64 | base64 | gzip | gz | gz+b64 | gzip+base64 | gz+base64
	Permissions string `yaml:"permissions,omitempty"` // octal, "0644" by default
	Owner       string `yaml:"owner,omitempty"`       // "user:group" or numeric, root:root by default
	Append      bool   `yaml:"append,omitempty"`
}

// NTP names time sources.
type NTP struct {
	Servers []string `yaml:"servers,omitempty"`
	Pools   []string `yaml:"pools,omitempty"`
}

// Network is the netplan-style v2 subset cairn implements.
type Network struct {
	Version   int                 `yaml:"version"`
	Ethernets map[string]Ethernet `yaml:"ethernets,omitempty"`
	VLANs     map[string]VLAN     `yaml:"vlans,omitempty"`
	Bonds     map[string]Bond     `yaml:"bonds,omitempty"`
}

// Interface holds what every kind of link shares: addressing and DNS.
type Interface struct {
	DHCP4       bool         `yaml:"dhcp4,omitempty"`
	Addresses   []string     `yaml:"addresses,omitempty"` // CIDR, "192.168.1.11/24"
	Gateway4    string       `yaml:"gateway4,omitempty"`  // deprecated netplan key, still accepted
	Routes      []Route      `yaml:"routes,omitempty"`
	Nameservers *Nameservers `yaml:"nameservers,omitempty"`
	MTU         int          `yaml:"mtu,omitempty"`
}

// Ethernet is a physical link, matched by MAC or name glob; the map key is
// the name when match is empty.
type Ethernet struct {
	Match     *Match `yaml:"match,omitempty"`
	SetName   string `yaml:"set-name,omitempty"`
	Interface `yaml:",inline"`
}

// Match selects physical links.
type Match struct {
	MACAddress string `yaml:"macaddress,omitempty"`
	Name       string `yaml:"name,omitempty"` // glob, "en*"
}

// VLAN is an 802.1Q link on top of Link.
type VLAN struct {
	ID        int    `yaml:"id"`
	Link      string `yaml:"link"`
	Interface `yaml:",inline"`
}

// Bond aggregates Interfaces.
type Bond struct {
	Interfaces []string          `yaml:"interfaces"`
	Parameters map[string]string `yaml:"parameters,omitempty"` // mode, mii-monitor-interval, primary, ...
	Interface  `yaml:",inline"`
}

// Route is a static route; To is "default" or a CIDR.
type Route struct {
	To     string `yaml:"to"`
	Via    string `yaml:"via"`
	Metric int    `yaml:"metric,omitempty"`
}

// Nameservers for /etc/resolv.conf.
type Nameservers struct {
	Addresses []string `yaml:"addresses,omitempty"`
	Search    []string `yaml:"search,omitempty"`
}

// Kubernetes is the node's role and cluster settings, spelled as in the
// k3s config file.
type Kubernetes struct {
	Role              string   `yaml:"role,omitempty"` // server (default) | agent
	Token             string   `yaml:"token,omitempty"`
	TokenFile         string   `yaml:"token-file,omitempty"`
	AgentToken        string   `yaml:"agent-token,omitempty"`        // agents join with it: it can bootstrap a kubelet and nothing more
	AgentTokenFile    string   `yaml:"agent-token-file,omitempty"`   // a file holding agent-token
	DatastoreEndpoint string   `yaml:"datastore-endpoint,omitempty"` // empty: embedded etcd
	DatastoreCAFile   string   `yaml:"datastore-cafile,omitempty"`
	DatastoreCertFile string   `yaml:"datastore-certfile,omitempty"`
	DatastoreKeyFile  string   `yaml:"datastore-keyfile,omitempty"`
	VIP               string   `yaml:"vip,omitempty"`
	VIPInterface      string   `yaml:"vip-interface,omitempty"`      // the link servers hold the VIP on: a network key or set-name; default: the one whose subnet holds it
	VIPLeaseDuration  string   `yaml:"vip-lease-duration,omitempty"` // 2s: the others take the VIP after seeing no renewal this long
	VIPRenewDeadline  string   `yaml:"vip-renew-deadline,omitempty"` // 1500ms: the holder drops it when it has not renewed this long
	VIPRetryPeriod    string   `yaml:"vip-retry-period,omitempty"`   // 500ms: how often the holder renews and the others look
	Server            string   `yaml:"server,omitempty"`             // agents; https://<vip>:6443 by default
	TLSSAN            []string `yaml:"tls-san,omitempty"`
	NodeName          string   `yaml:"node-name,omitempty"`
	NodeIP            string   `yaml:"node-ip,omitempty"`
	NodeLabel         []string `yaml:"node-label,omitempty"`
	NodeTaint         []string `yaml:"node-taint,omitempty"`
	ClusterCIDR       string   `yaml:"cluster-cidr,omitempty"`   // 10.42.0.0/16
	ServiceCIDR       string   `yaml:"service-cidr,omitempty"`   // 10.43.0.0/16
	ClusterDNS        string   `yaml:"cluster-dns,omitempty"`    // 10.43.0.10
	ClusterDomain     string   `yaml:"cluster-domain,omitempty"` // cluster.local
	Disable           []string `yaml:"disable,omitempty"`
	FlannelBackend    string   `yaml:"flannel-backend,omitempty"` // vxlan (default) | host-gw | none
	FlannelIface      string   `yaml:"flannel-iface,omitempty"`   // the link pod traffic between nodes uses; default: the one with the default route
	SecretsEncryption *bool    `yaml:"secrets-encryption,omitempty"`
	Distribution      string   `yaml:"distribution,omitempty"` // builtin (default) | k3s

	// DefaultLocalStoragePath is where the local-storage add-on makes
	// volumes on every node (k3s's key); DefaultLocalStoragePath when empty.
	DefaultLocalStoragePath string `yaml:"default-local-storage-path,omitempty"`

	// Registries are containerd's mirrors and per-host credentials and
	// TLS, in the shape of k3s's registries.yaml; PrivateRegistry names
	// such a file on the node instead (k3s's default path when write_files
	// writes it). DisableDefaultRegistryEndpoint: a registry with mirrors
	// is pulled from its mirrors only, never from itself.
	Registries                     *Registries `yaml:"registries,omitempty"`
	PrivateRegistry                string      `yaml:"private-registry,omitempty"`
	DisableDefaultRegistryEndpoint bool        `yaml:"disable-default-registry-endpoint,omitempty"`

	// Manifests are Kubernetes objects the servers keep applied, each
	// list entry named, as k3s applies the files of its manifests
	// directory (the files of layout.ManifestsDir are applied too).
	Manifests []Manifest `yaml:"manifests,omitempty"`

	// LoadBalancerPool are the addresses LoadBalancer Services get, one
	// each, announced by one server at a time (ranges FIRST-LAST, CIDRs
	// or single addresses); without it a Service gets the nodes' own
	// addresses, as k3s's servicelb gives them.
	LoadBalancerPool []string `yaml:"loadbalancer-pool,omitempty"`

	// Embedded etcd's snapshots, as k3s spells them (etcdsnapshot.go):
	// each server on embedded etcd snapshots its member on a schedule
	// into a directory on STATE and keeps the newest.
	EtcdDisableSnapshots     bool   `yaml:"etcd-disable-snapshots,omitempty"`
	EtcdSnapshotScheduleCron string `yaml:"etcd-snapshot-schedule-cron,omitempty"`
	EtcdSnapshotRetention    int    `yaml:"etcd-snapshot-retention,omitempty"`
	EtcdSnapshotDir          string `yaml:"etcd-snapshot-dir,omitempty"`
	EtcdSnapshotName         string `yaml:"etcd-snapshot-name,omitempty"`
	EtcdSnapshotCompress     string `yaml:"etcd-snapshot-compress,omitempty"` // false | true (zip, as k3s) | zip | zstd
	// EtcdS3 copies every snapshot to EtcdS3Bucket (under EtcdS3Folder)
	// as well, and keeps the newest there too (etcds3.go); the secret key
	// is a secret, EtcdS3SecretKeyFile (cairn's own) a file holding it.
	EtcdS3              bool   `yaml:"etcd-s3,omitempty"`
	EtcdS3Endpoint      string `yaml:"etcd-s3-endpoint,omitempty"`    // host[:port]; s3.amazonaws.com
	EtcdS3EndpointCA    string `yaml:"etcd-s3-endpoint-ca,omitempty"` // a PEM file of the CAs that sign the endpoint's certificate
	EtcdS3SkipSSLVerify bool   `yaml:"etcd-s3-skip-ssl-verify,omitempty"`
	EtcdS3AccessKey     string `yaml:"etcd-s3-access-key,omitempty"`
	EtcdS3SecretKey     string `yaml:"etcd-s3-secret-key,omitempty"`
	EtcdS3SecretKeyFile string `yaml:"etcd-s3-secret-key-file,omitempty"`
	EtcdS3Bucket        string `yaml:"etcd-s3-bucket,omitempty"`
	EtcdS3Region        string `yaml:"etcd-s3-region,omitempty"` // us-east-1
	EtcdS3Folder        string `yaml:"etcd-s3-folder,omitempty"`
	EtcdS3Insecure      bool   `yaml:"etcd-s3-insecure,omitempty"` // plain HTTP
	EtcdS3Timeout       string `yaml:"etcd-s3-timeout,omitempty"`  // 5m
	// ClusterReset makes this server's embedded etcd a cluster of one
	// member, from ClusterResetRestorePath (a snapshot file) when given,
	// once: a marker on STATE keeps the next boot from doing it again.
	ClusterReset            bool   `yaml:"cluster-reset,omitempty"`
	ClusterResetRestorePath string `yaml:"cluster-reset-restore-path,omitempty"`

	// Extra flags for one component, "name=value" or "name", as k3s's
	// --kube-apiserver-arg and friends; they come after cairn's own flags.
	KubeAPIServerArg         []string `yaml:"kube-apiserver-arg,omitempty"`
	KubeControllerManagerArg []string `yaml:"kube-controller-manager-arg,omitempty"`
	KubeSchedulerArg         []string `yaml:"kube-scheduler-arg,omitempty"`
	KubeletArg               []string `yaml:"kubelet-arg,omitempty"`
	KubeProxyArg             []string `yaml:"kube-proxy-arg,omitempty"`
}

// Registries is k3s's registries.yaml: where containerd pulls each
// registry's images from, and how it talks to each host.
type Registries struct {
	// Mirrors maps a registry as image names spell it ("docker.io",
	// "registry.example.com:5000", or "*" for every registry without an
	// entry under mirrors or configs) to the endpoints tried before the
	// registry itself.
	Mirrors map[string]RegistryMirror `yaml:"mirrors,omitempty"`
	// Configs maps a host[:port] (a registry or a mirror endpoint's host,
	// or "*" for every registry without an entry of its own) to its
	// credentials and TLS.
	Configs map[string]RegistryConfig `yaml:"configs,omitempty"`
}

// RegistryMirror is one registry's mirrors.
type RegistryMirror struct {
	// Endpoints are http:// or https:// URLs, tried in order.
	Endpoints []string `yaml:"endpoint,omitempty"`
	// Rewrites map a regular expression over the repository to its
	// replacement on the mirrors; only k3s's own containerd applies them.
	Rewrites map[string]string `yaml:"rewrite,omitempty"`
}

// RegistryConfig is how containerd talks to one host.
type RegistryConfig struct {
	Auth *RegistryAuth `yaml:"auth,omitempty"`
	TLS  *RegistryTLS  `yaml:"tls,omitempty"`
}

// RegistryAuth are a host's credentials: username and password, or auth
// (base64 of username:password), or identitytoken. All but the username
// are secrets.
type RegistryAuth struct {
	Username      string `yaml:"username,omitempty"`
	Password      string `yaml:"password,omitempty"`
	Auth          string `yaml:"auth,omitempty"`
	IdentityToken string `yaml:"identitytoken,omitempty"`
}

// RegistryTLS are the files that verify a host and the client certificate
// presented to it.
type RegistryTLS struct {
	CAFile             string `yaml:"ca_file,omitempty"`
	CertFile           string `yaml:"cert_file,omitempty"`
	KeyFile            string `yaml:"key_file,omitempty"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify,omitempty"`
}
