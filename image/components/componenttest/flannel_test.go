package componenttest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFlannelUsage: the flannel applet without its required flags says
// which are missing and how to call it, and exits 2.
func TestFlannelUsage(t *testing.T) {
	bin := filepath.Join(tree(t, "amd64"), "usr/bin/flannel")
	out, err := run(t, time.Minute, bin)
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Errorf("flannel with no flags: %v, want exit status 2", err)
	}
	for _, want := range []string{"--kubeconfig, --node-name and --cluster-cidr are required", "usage: flannel --kubeconfig PATH", "-backend"} {
		if !strings.Contains(out, want) {
			t.Errorf("flannel with no flags printed\n%s\nwant it to contain %q", out, want)
		}
	}
	out, err = run(t, time.Minute, bin, "--kubeconfig=k", "--node-name=n", "--cluster-cidr=10.42.0.0/16", "--backend=udp")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || strings.Count(strings.TrimSpace(out), "\n") != 0 ||
		!strings.Contains(out, `flannel: --backend "udp" is not one of vxlan, host-gw`) {
		t.Errorf("flannel --backend=udp: %v, printed\n%s\nwant exit status 1 and one line naming the backend", err, out)
	}
}

// netns is a network namespace made for one test, with a veth pair
// (eth0 192.168.77.2/24, the default route's interface) and loopback up.
type netns struct{ name string }

func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (network namespaces, vxlan, iptables); run `make components-test` as root")
	}
	n := &netns{name: fmt.Sprintf("cairn-ct-%d", os.Getpid())}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", n.name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.name).Run() })
	for _, args := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"},
		{"ip", "addr", "add", "192.168.77.2/24", "dev", "eth0"},
		{"ip", "link", "set", "eth0", "up"},
		{"ip", "link", "set", "eth1", "up"},
		{"ip", "route", "add", "default", "via", "192.168.77.1"},
	} {
		n.run(t, args...)
	}
	return n
}

// cmd is a command that runs in the namespace (ip netns exec execs it, so
// its pid is the command's own).
func (n *netns) cmd(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// run runs a command in the namespace and fails the test when it fails.
func (n *netns) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := n.try(t, args...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (n *netns) try(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return run(t, time.Minute, "ip", append([]string{"netns", "exec", n.name}, args...)...)
}

// The RBAC the init grants the nodes for flannel, and two nodes: node-a
// (flannel's, without a pod CIDR yet) and node-b, a peer that a flannel
// with the vxlan backend has already annotated.
const flannelObjects = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: cairn-test-flannel
rules:
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch, patch]
- apiGroups: [""]
  resources: [nodes/status]
  verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: cairn-test-flannel
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cairn-test-flannel
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: system:nodes
---
apiVersion: v1
kind: Node
metadata:
  name: node-a
---
apiVersion: v1
kind: Node
metadata:
  name: node-b
  annotations:
    flannel.alpha.coreos.com/backend-type: vxlan
    flannel.alpha.coreos.com/backend-data: '{"VNI":1,"VtepMAC":"0a:58:0a:2a:02:00"}'
    flannel.alpha.coreos.com/public-ip: 192.168.77.3
    flannel.alpha.coreos.com/kube-subnet-manager: "true"
spec:
  podCIDR: 10.42.2.0/24
  podCIDRs: [10.42.2.0/24]
`

// TestFlannelOnAPIServer runs kine (SQLite), kube-apiserver and the flannel
// applet in a network namespace. flannel, with the node credentials the
// init gives it and only the RBAC the init grants, waits for node-a's pod
// CIDR; once it is set, it creates flannel.1 (VNI 1, port 8472), annotates
// node-a, installs the masquerade rules, writes subnet.env and the CNI
// conflist for that subnet, and routes node-b's subnet through the vxlan
// device until node-b is deleted. SIGTERM stops it with status 0. Then the
// same with --backend host-gw.
func TestFlannelOnAPIServer(t *testing.T) {
	bin := filepath.Join(tree(t, "amd64"), "usr/bin")
	ns := newNetns(t)
	dir := t.TempDir()

	// kine's default datastore: SQLite in ./db, with WAL and a busy timeout.
	kine := ns.cmd(filepath.Join(bin, "kine"), "--listen-address", "127.0.0.1:2379")
	kine.Dir = dir
	kp := start(t, dir, "kine", kine)
	t.Cleanup(func() { kp.stop(t, syscall.SIGTERM) })

	p := newPKI(t, dir)
	api := start(t, dir, "kube-apiserver", ns.cmd(filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers=http://127.0.0.1:2379",
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=6443",
		"--cert-dir="+dir,
		"--tls-cert-file="+p.serverCert, "--tls-private-key-file="+p.serverKey,
		"--client-ca-file="+p.caFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p.serviceAccPub,
		"--service-account-signing-key-file="+p.serviceAccountKey,
		"--service-cluster-ip-range=10.43.0.0/16",
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--profiling=false",
	))
	t.Cleanup(func() { api.stop(t, syscall.SIGTERM) })

	server := "https://127.0.0.1:6443"
	admin := p.kubeconfig(t, "admin-ns", server, "cairn-admin", "system:masters")
	kubectl := func(args ...string) (string, error) {
		return ns.try(t, append([]string{filepath.Join(bin, "kubectl"), "--kubeconfig=" + admin}, args...)...)
	}
	waitFor(t, "kube-apiserver /readyz", 3*time.Minute, func() error {
		out, err := kubectl("get", "--raw", "/readyz")
		if err != nil || strings.TrimSpace(out) != "ok" {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}, api, kp)
	objects := filepath.Join(dir, "objects.yaml")
	if err := os.WriteFile(objects, []byte(flannelObjects), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl("apply", "-f", objects); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}

	subnetFile := filepath.Join(dir, "run/flannel/subnet.env")
	conflist := filepath.Join(dir, "etc/cni/net.d/10-flannel.conflist")
	fl := start(t, dir, "flannel", ns.cmd(filepath.Join(bin, "flannel"),
		"--kubeconfig", p.kubeconfig(t, "node-a", server, "system:node:node-a", "system:nodes"),
		"--node-name", "node-a", "--cluster-cidr", "10.42.0.0/16", "--ip-masq=true",
		"--subnet-file", subnetFile, "--cni-conf", conflist))
	t.Cleanup(func() { fl.stop(t, syscall.SIGKILL) })

	waitFor(t, "flannel waiting for node-a's pod CIDR", time.Minute, func() error {
		if !strings.Contains(tail(fl.log, 64<<10), "waiting for the node's pod CIDR") {
			return fmt.Errorf("not logged")
		}
		return nil
	}, fl)
	if _, err := os.Stat(conflist); err == nil {
		t.Fatal("flannel wrote the CNI conflist before the node had a pod CIDR")
	}
	if out, err := kubectl("patch", "node", "node-a", "--type=merge",
		"-p", `{"spec":{"podCIDR":"10.42.1.0/24","podCIDRs":["10.42.1.0/24"]}}`); err != nil {
		t.Fatalf("setting node-a's pod CIDR: %v\n%s", err, out)
	}
	waitFor(t, "flannel writing "+conflist, 2*time.Minute, func() error {
		_, err := os.Stat(conflist)
		return err
	}, fl)

	// subnet.env, as flanneld writes it: the network, the node's first
	// address, the vxlan MTU (veth's 1500 less 50), masquerading on.
	data, err := os.ReadFile(subnetFile)
	want := "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
	if err != nil || string(data) != want {
		t.Errorf("subnet.env: %v\n%s\nwant\n%s", err, data, want)
	}
	var list struct {
		Name    string `json:"name"`
		Plugins []struct {
			Type string `json:"type"`
			MTU  int    `json:"mtu"`
			IPAM struct {
				Ranges [][]struct {
					Subnet string `json:"subnet"`
				} `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	data, err = os.ReadFile(conflist)
	if err == nil {
		err = json.Unmarshal(data, &list)
	}
	if err != nil || list.Name != "cbr0" || len(list.Plugins) != 2 || list.Plugins[0].Type != "bridge" ||
		list.Plugins[0].MTU != 1450 || len(list.Plugins[0].IPAM.Ranges) != 1 || len(list.Plugins[0].IPAM.Ranges[0]) != 1 ||
		list.Plugins[0].IPAM.Ranges[0][0].Subnet != "10.42.1.0/24" || list.Plugins[1].Type != "portmap" {
		t.Errorf("conflist: %v\n%s\nwant cbr0: bridge (mtu 1450, subnet 10.42.1.0/24), portmap", err, data)
	}

	// node-a carries what peers need to reach it.
	out, err := kubectl("get", "node", "node-a", "-o", "jsonpath={.metadata.annotations}")
	var ann map[string]string
	if err == nil {
		err = json.Unmarshal([]byte(out), &ann)
	}
	if err != nil || ann["flannel.alpha.coreos.com/backend-type"] != "vxlan" ||
		ann["flannel.alpha.coreos.com/public-ip"] != "192.168.77.2" ||
		ann["flannel.alpha.coreos.com/kube-subnet-manager"] != "true" ||
		!strings.Contains(ann["flannel.alpha.coreos.com/backend-data"], `"VNI":1`) {
		t.Errorf("node-a's annotations: %v\n%s", err, out)
	}

	if out := ns.run(t, "ip", "-d", "link", "show", "flannel.1"); !strings.Contains(out, "vxlan id 1 ") || !strings.Contains(out, "dstport 8472") {
		t.Errorf("flannel.1 is not vxlan id 1, port 8472:\n%s", out)
	}
	waitFor(t, "a route to node-b's pods through flannel.1", time.Minute, func() error {
		out, _ := ns.try(t, "ip", "route", "show", "10.42.2.0/24")
		if !strings.Contains(out, "via 10.42.2.0 dev flannel.1") {
			return fmt.Errorf("ip route show 10.42.2.0/24: %q", out)
		}
		return nil
	}, fl)
	if out, _ := ns.try(t, "bridge", "fdb", "show", "dev", "flannel.1"); !strings.Contains(out, "0a:58:0a:2a:02:00 dst 192.168.77.3") {
		t.Errorf("no forwarding entry for node-b's VTEP:\n%s", out)
	}
	if out, err := ns.try(t, "iptables", "-t", "nat", "-S", "FLANNEL-POSTRTG"); err != nil ||
		!strings.Contains(out, "10.42.0.0/16") || !strings.Contains(out, "MASQUERADE") {
		t.Errorf("masquerade rules: %v\n%s", err, out)
	}

	// A peer that leaves takes its route along.
	if out, err := kubectl("delete", "node", "node-b"); err != nil {
		t.Fatalf("kubectl delete node node-b: %v\n%s", err, out)
	}
	waitFor(t, "node-b's route removed", time.Minute, func() error {
		if out, _ := ns.try(t, "ip", "route", "show", "10.42.2.0/24"); strings.TrimSpace(out) != "" {
			return fmt.Errorf("still routed: %q", out)
		}
		return nil
	}, fl)

	fl.stop(t, syscall.SIGTERM)
	if _, err := fl.exited(); err != nil {
		t.Errorf("flannel exited with %v on SIGTERM, want status 0; its log ends:\n%s", err, tail(fl.log, 3000))
	}

	// The same node again with --backend host-gw: a peer's subnet is routed
	// through its address on the shared segment, no tunnel, the full MTU.
	peer := filepath.Join(dir, "node-b-host-gw.yaml")
	if err := os.WriteFile(peer, []byte(hostGWPeer), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl("apply", "-f", peer); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	gw := start(t, dir, "flannel-host-gw", ns.cmd(filepath.Join(bin, "flannel"),
		"--kubeconfig", filepath.Join(dir, "node-a.kubeconfig"),
		"--node-name", "node-a", "--cluster-cidr", "10.42.0.0/16", "--backend", "host-gw",
		"--subnet-file", subnetFile, "--cni-conf", conflist))
	t.Cleanup(func() { gw.stop(t, syscall.SIGKILL) })
	waitFor(t, "a host-gw route to node-b's pods", time.Minute, func() error {
		out, _ := ns.try(t, "ip", "route", "show", "10.42.2.0/24")
		if !strings.Contains(out, "via 192.168.77.3 dev eth0") {
			return fmt.Errorf("ip route show 10.42.2.0/24: %q", out)
		}
		return nil
	}, gw)
	data, err = os.ReadFile(subnetFile)
	want = "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.1.1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n"
	if err != nil || string(data) != want {
		t.Errorf("subnet.env with host-gw: %v\n%s\nwant\n%s", err, data, want)
	}
	if out, err := kubectl("get", "node", "node-a", "-o", "jsonpath={.metadata.annotations.flannel\\.alpha\\.coreos\\.com/backend-type}"); err != nil || out != "host-gw" {
		t.Errorf("node-a's backend-type: %q, %v; want host-gw", out, err)
	}
	gw.stop(t, syscall.SIGTERM)
	if _, err := gw.exited(); err != nil {
		t.Errorf("flannel (host-gw) exited with %v on SIGTERM, want status 0", err)
	}
}

// hostGWPeer is node-b as a flannel with the host-gw backend annotates it.
const hostGWPeer = `apiVersion: v1
kind: Node
metadata:
  name: node-b
  annotations:
    flannel.alpha.coreos.com/backend-type: host-gw
    flannel.alpha.coreos.com/backend-data: "null"
    flannel.alpha.coreos.com/public-ip: 192.168.77.3
    flannel.alpha.coreos.com/kube-subnet-manager: "true"
spec:
  podCIDR: 10.42.2.0/24
  podCIDRs: [10.42.2.0/24]
`
