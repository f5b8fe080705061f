package config

import (
	"fmt"
	"slices"
	"strings"
)

// What cairn does with each key of k3s's config file that it does not
// implement, so that a pasted k3s config gets a specific answer for every
// key. The list is k3s's server and agent flags (pkg/cli/cmds/server.go
// and agent.go of k3s-io/k3s, with the log flags they share), kept as test
// data in testdata/k3s-keys.txt; the keys cairn implements are the fields
// of Kubernetes.
//
// A warning means ignoring the key leaves the cluster as the user meant it;
// an error means ignoring it would change the cluster.
type k3sKey struct {
	sev Severity
	// unsupported: cairn may implement it; otherwise it has no meaning on
	// an appliance.
	unsupported bool
	why         string
}

var (
	noMeaning = func(why string) k3sKey { return k3sKey{Warning, false, why} }
	notYet    = func(why string) k3sKey { return k3sKey{Error, true, why} }
	notYetOK  = func(why string) k3sKey { return k3sKey{Warning, true, why} }
	refused   = func(why string) k3sKey { return k3sKey{Error, false, why} }
)

var k3sKeys = map[string]k3sKey{
	// Logging and the process itself.
	"config":                  noMeaning("the cloud-config is the node's only config file"),
	"debug":                   noMeaning("cairn logs to the console"),
	"v":                       noMeaning("cairn logs to the console; raise a component's verbosity with its *-arg, like kubelet-arg: [v=4]"),
	"vmodule":                 noMeaning("cairn logs to the console"),
	"log":                     noMeaning("cairn logs to the console"),
	"alsologtostderr":         noMeaning("cairn logs to the console"),
	"data-dir":                noMeaning("cairn keeps its state in /var/lib/cairn on the STATE partition"),
	"rootless":                noMeaning("the node's components run as root on their own machine"),
	"prefer-bundled-bin":      noMeaning("the image holds every binary the node runs"),
	"selinux":                 noMeaning("the image has no SELinux policy"),
	"disable-selinux":         noMeaning("the image has no SELinux policy"),
	"enable-pprof":            noMeaning("cairn serves no profiling endpoint"),
	"protect-kernel-defaults": noMeaning("cairn sets the kernel parameters the kubelet needs itself"),

	// The admin kubeconfig.
	"write-kubeconfig":       noMeaning("nobody logs into a node; get an admin kubeconfig with `cairn kubeconfig --server URL --token T`"),
	"write-kubeconfig-mode":  noMeaning("nobody logs into a node; get an admin kubeconfig with `cairn kubeconfig --server URL --token T`"),
	"write-kubeconfig-group": noMeaning("nobody logs into a node; get an admin kubeconfig with `cairn kubeconfig --server URL --token T`"),

	// Listeners and addresses.
	"bind-address":      notYet("the API server listens on every address"),
	"https-listen-port": notYet("the API server listens on 6443"),
	"advertise-address": notYet("servers advertise their node-ip"),
	"advertise-port":    notYet("servers advertise port 6443"),
	"tls-san-security":  notYetOK("the certificate holds exactly the node's addresses, vip and tls-san"),
	"node-external-ip":  notYet("nodes have only their node-ip"),
	"lb-server-port":    notYetOK("agents reach the servers through the vip"),

	// Cluster networking.
	"service-node-port-range": notYet("NodePorts come from 30000-32767; set it with kube-apiserver-arg: [service-node-port-range=...] on every server"),
	"flannel-ipv6-masq":       notYet("cairn runs its own pod network"),
	"flannel-external-ip":     notYet("cairn runs its own pod network"),
	"flannel-conf":            notYet("cairn runs its own pod network"),
	"flannel-cni-conf":        notYet("cairn runs its own pod network"),
	"egress-selector-mode":    notYet("the API server reaches kubelets directly"),
	"vpn-auth":                notYet("nodes join over their own network"),
	"vpn-auth-file":           notYet("nodes join over their own network"),
	"servicelb-namespace":     noMeaning("cairn's servicelb runs no pods: the servers set each LoadBalancer Service's addresses themselves, and its Events go to the Service's own namespace"),

	// Tokens and membership.
	"cluster-init": noMeaning("a server without datastore-endpoint and server starts embedded etcd as the cluster's first; one with server joins it"),
	"with-node-id": notYet("the node name is node-name or the host name"),

	// Components.
	"etcd-arg":                          notYet("cairn passes no extra flags to etcd"),
	"kube-cloud-controller-manager-arg": notYet("cairn runs no cloud controller manager"),
	"disable-scheduler":                 notYet("every server runs kube-scheduler"),
	"disable-cloud-controller":          noMeaning("cairn runs no cloud controller manager, so there is nothing to disable"),
	"disable-kube-proxy":                notYet("every node runs kube-proxy"),
	"disable-network-policy":            notYet("cairn's network policy follows its pod network"),
	"disable-helm-controller":           noMeaning("cairn runs no Helm controller, so there is nothing to disable"),
	"disable-apiserver":                 notYet("every server runs the whole control plane"),
	"disable-controller-manager":        notYet("every server runs the whole control plane"),
	"disable-etcd":                      notYet("every server runs the whole control plane"),
	"disable-agent":                     notYet("every server also runs a kubelet"),
	"embedded-registry":                 notYet("cairn runs no registry mirror"),
	"helm-job-image":                    notYetOK("cairn runs no Helm controller"),

	// etcd snapshots.
	"etcd-expose-metrics": notYetOK("etcd serves no metrics to clients"),

	// The container runtime and images.
	"docker":                            refused("the node runs its own containerd"),
	"container-runtime-endpoint":        refused("the node runs its own containerd"),
	"default-runtime":                   notYet("containers run with runc"),
	"image-service-endpoint":            refused("the node runs its own containerd"),
	"snapshotter":                       notYetOK("containerd uses the overlayfs snapshotter"),
	"pause-image":                       notYetOK("containerd uses its default sandbox image"),
	"system-default-registry":           notYet("system images come from their own registries"),
	"airgap-extra-registry":             notYetOK("cairn imports no airgap images"),
	"image-credential-provider-bin-dir": notYet("the kubelet runs no image credential providers"),
	"image-credential-provider-config":  notYet("the kubelet runs no image credential providers"),
	"resolv-conf":                       notYetOK("the kubelet uses the resolv.conf cairn writes from network.nameservers or DHCP"),
}

// renamedKeys are names of older k3s releases (v0.10 and hidden aliases)
// and the name to write instead.
var renamedKeys = map[string]string{
	"storage-endpoint":          "datastore-endpoint",
	"storage-cafile":            "datastore-cafile",
	"storage-certfile":          "datastore-certfile",
	"storage-keyfile":           "datastore-keyfile",
	"cluster-secret":            "token",
	"no-deploy":                 "disable",
	"no-flannel":                "flannel-backend",
	"kube-controller-arg":       "kube-controller-manager-arg",
	"kube-cloud-controller-arg": "kube-cloud-controller-manager-arg",
}

// envKeys are k3s environment variables whose key is not their name with
// K3S_ dropped.
var envKeys = map[string]string{
	"K3S_URL":               "server",
	"K3S_CLUSTER_SECRET":    "token",
	"K3S_KUBECONFIG_OUTPUT": "write-kubeconfig",
	"K3S_KUBECONFIG_MODE":   "write-kubeconfig-mode",
	"K3S_KUBECONFIG_GROUP":  "write-kubeconfig-group",
}

// k3sDefaults are k3s's default values of the keys above: set to one of
// them, a key asks for what cairn does anyway, and ignoring it is harmless.
var k3sDefaults = map[string]string{
	"https-listen-port": "6443", "flannel-backend": "vxlan", "service-node-port-range": "30000-32767",
	"egress-selector-mode": "agent", "lb-server-port": "6444", "tls-san-security": "true",
}

// k3sBools are the keys above that are on/off switches, off by default.
var k3sBools = strings.Fields(`debug alsologtostderr rootless prefer-bundled-bin selinux enable-pprof
	protect-kernel-defaults flannel-ipv6-masq flannel-external-ip cluster-init cluster-reset with-node-id
	disable-scheduler disable-cloud-controller disable-kube-proxy disable-network-policy
	disable-helm-controller disable-apiserver disable-controller-manager disable-etcd disable-agent
	embedded-registry etcd-expose-metrics etcd-disable-snapshots etcd-snapshot-compress docker`)

// isK3sDefault reports whether val is k3s's default for key.
func isK3sDefault(key, val string) bool {
	if d, ok := k3sDefaults[key]; ok {
		return val == d
	}
	if slices.Contains(k3sBools, key) {
		switch strings.ToLower(val) {
		case "false", "no", "off":
			return true
		}
	}
	return false
}

// k3sKeyMessage says what cairn does with key of k3s's config file, set
// to val (a scalar, or "" for anything else); ok is false when key is none
// of k3s's. implemented lists cairn's own keys.
func k3sKeyMessage(key, val string, implemented map[string][]int) (sev Severity, msg string, ok bool) {
	if k, found := k3sKeys[key]; found {
		if isK3sDefault(key, val) {
			return Warning, fmt.Sprintf("k3s key %q is set to k3s's default, which is what cairn does; it is ignored", key), true
		}
		if k.unsupported {
			msg = fmt.Sprintf("k3s key %q is not supported by cairn yet (%s)", key, k.why)
		} else {
			msg = fmt.Sprintf("k3s key %q has no meaning on an appliance: %s", key, k.why)
		}
		if k.sev == Error {
			return Error, msg + "; remove it", true
		}
		return Warning, msg + "; it is ignored", true
	}
	if to, found := renamedKeys[key]; found {
		if _, impl := implemented[to]; impl {
			return Error, fmt.Sprintf("%q is an old k3s name; write %s instead", key, to), true
		}
		sev, msg, _ := k3sKeyMessage(to, val, implemented)
		return sev, fmt.Sprintf("%q is an old k3s name of %s; %s", key, to, msg), true
	}
	if strings.HasPrefix(key, "INSTALL_K3S_") {
		return Error, fmt.Sprintf("%s is a setting of k3s's install script, and cairn installs nothing: write the flags of INSTALL_K3S_EXEC as keys under kubernetes (tls-san: [...] for --tls-san=...)", key), true
	}
	if name, found := strings.CutPrefix(key, "K3S_"); found {
		to, mapped := envKeys[key]
		if !mapped {
			to = strings.ReplaceAll(strings.ToLower(name), "_", "-")
		}
		if _, impl := implemented[to]; impl {
			return Error, fmt.Sprintf("%s is k3s's environment variable for %s; write %s: under kubernetes", key, to, to), true
		}
		if sev, msg, ok := k3sKeyMessage(to, val, implemented); ok {
			return sev, fmt.Sprintf("%s is k3s's environment variable for %s; %s", key, to, msg), true
		}
	}
	return Error, "", false
}

// keySplits are the kubernetes keys whose entries k3s splits at commas
// ("tls-san: a,b" is two names); other lists keep their entries whole
// (a kube-apiserver-arg value may hold commas).
var keySplits = map[string]bool{
	"kubernetes.tls-san": true,
	"kubernetes.disable": true,
}

// keyJoins are the kubernetes keys cairn reads as one comma-separated
// string that k3s also takes as a list (cluster-cidr: [v4, v6]).
var keyJoins = map[string]bool{
	"kubernetes.cluster-cidr": true,
	"kubernetes.service-cidr": true,
	"kubernetes.cluster-dns":  true,
	"kubernetes.node-ip":      true,
}
