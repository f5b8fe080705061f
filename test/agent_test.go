//go:build qemu

package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/qemu"
)

// nodeReady is how long a node may take from its config to Ready on a
// loaded 2-core machine.
const nodeReady = 10 * time.Minute

// agentConfig is an agent's cloud-config on the test bridge.
func agentConfig(name, addr, token, server string, extra ...string) string {
	return fmt.Sprintf(`#cloud-config
hostname: %s
network:
  version: 2
  ethernets:
    eth0:
      addresses: [%s/24]
      routes: [{to: default, via: %s}]
kubernetes:
  role: agent
  token: %s
  server: %s
%s`, name, addr, dsAddr, token, server, strings.Join(extra, "\n"))
}

// bridgeCNI is write_files for a node-local bridge network on subnet,
// for flannel-backend: none.
func bridgeCNI(subnet string) string {
	return "write_files:\n" + bridgeCNIFile(subnet)
}

// bridgeCNIFile is bridgeCNI's entry of a write_files list.
func bridgeCNIFile(subnet string) string {
	return fmt.Sprintf(`  - path: /etc/cni/net.d/10-bridge.conflist
    permissions: "0644"
    content: |
      {"cniVersion": "1.0.0", "name": "cbr0", "plugins": [
        {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": true}}]}
`, subnet)
}

// nodes lists the cluster's nodes as name -> Ready status and taints.
func (c *apiClient) nodes(t *testing.T, server string) map[string]string {
	t.Helper()
	code, body, err := c.do("GET", server+"/api/v1/nodes", nil)
	if code != 200 {
		t.Fatalf("listing nodes: %d %v %s", code, err, body)
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name string }
			Spec     struct {
				Taints []struct{ Key, Value, Effect string }
			}
			Status struct {
				Conditions []struct{ Type, Status string }
			}
		}
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range list.Items {
		st := "NotReady"
		for _, c := range n.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				st = "Ready"
			}
		}
		for _, tn := range n.Spec.Taints {
			st += fmt.Sprintf(" %s=%s:%s", tn.Key, tn.Value, tn.Effect)
		}
		out[n.Metadata.Name] = st
	}
	return out
}

// TestAgentJoinsEmbedded: one server on embedded etcd and one agent with
// the token; both become Ready nodes, the server's taint as configured.
func TestAgentJoinsEmbedded(t *testing.T) {
	ns := bridgeNS(t)
	s1 := startPeer(t, ns, "s1", nodeRoot(t, serverConfig("s1", "192.168.77.11", clusterToken, "",
		"  node-taint: [example.com/role=server:NoSchedule]", "  flannel-backend: none", bridgeCNI("10.88.1.0/24"))))
	s1.expect(t, controlPlane, reServerReady)
	a1 := startPeer(t, ns, "a1", nodeRoot(t, agentConfig("a1", "192.168.77.21", clusterToken, "https://192.168.77.11:6443",
		"  flannel-backend: none", bridgeCNI("10.88.2.0/24"))))
	for _, n := range []*containerNode{s1, a1} {
		m := n.expect(t, nodeReady, `node: (\S+) is Ready, ([\d.]+)s after the config was loaded`)
		t.Logf("figures: %s: config loaded to node Ready: %ss (container platform)", m[1], m[2])
	}
	tok, _ := join.ParseToken(clusterToken)
	kc, err := (&join.Client{Server: "https://192.168.77.11:6443", Token: tok, DialContext: ns.DialContext}).AdminKubeconfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	api := newAPIClient(t, ns, kc)
	nodes := api.nodes(t, "https://192.168.77.11:6443")
	want := map[string]string{"s1": "Ready example.com/role=server:NoSchedule", "a1": "Ready"}
	for n, w := range want {
		if nodes[n] != w {
			t.Errorf("node %s: %q, want %q (all: %v)", n, nodes[n], w, nodes)
		}
	}
}

// appImage builds the tests' workload (test/e2eapp, static) into an image
// with cairn's own ociarchive, once per test binary: no registry is
// reachable here.
func appImage(t *testing.T) string {
	t.Helper()
	return appBuilt.get(t, func() (string, error) {
		// One file each, rewritten by each run of the tests.
		bin := filepath.Join(os.TempDir(), "cairn-e2eapp")
		tar := filepath.Join(os.TempDir(), "cairn-e2eapp.tar")
		if err := goBuild(bin, "./test/e2eapp"); err != nil {
			return "", err
		}
		cmd := exec.Command("go", "run", "./cmd/ociarchive", "-arch", runtime.GOARCH, "-name", appRef,
			"-binary", bin, "-path", "/app", "-o", tar)
		cmd.Dir = filepath.Join(repoRoot(), "image/components")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building the e2eapp image: %v\n%s", err, out)
		}
		return tar, nil
	})
}

const appRef = "cairn.local/e2eapp:test"

var appBuilt built

// withImage adds an image archive to a node root's images directory.
func withImage(t *testing.T, root, archive string) string {
	t.Helper()
	dst := filepath.Join(root, "usr/share/cairn/images", filepath.Base(archive))
	if out, err := exec.Command("cp", archive, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp %s: %v %s", archive, err, out)
	}
	return root
}

// kubectl runs the components' kubectl in ns with a kubeconfig file.
func kubectl(t *testing.T, ns *qemu.Netns, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := filepath.Join(componentsDir(t), "usr/bin/cairn-node")
	out, err := ns.Command(ctx, bin, append([]string{"kubectl", "--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

// webApp is a Deployment of two web servers that never share a
// node, answering with their pod's name, and its Service.
const webApp = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - labelSelector: {matchLabels: {app: web}}
              topologyKey: kubernetes.io/hostname
      containers:
        - name: web
          image: ` + appRef + `
          imagePullPolicy: Never
          command: ["/app", "serve"]
          ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`

// pod is a pod's name, node and IP.
type pod struct{ name, node, ip string }

// webPods waits until both web pods run and have IPs.
func webPods(t *testing.T, ns *qemu.Netns, kc string, d time.Duration) []pod {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		out, err := kubectl(t, ns, kc, "get", "pods", "-l", "app=web", "-o",
			`jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP} {.status.phase}{"\n"}{end}`)
		last = out
		var pods []pod
		if err == nil {
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Fields(l)
				if len(f) == 4 && f[3] == "Running" {
					pods = append(pods, pod{f[0], f[1], f[2]})
				}
			}
		}
		if len(pods) == 2 {
			return pods
		}
		time.Sleep(3 * time.Second)
	}
	desc, _ := kubectl(t, ns, kc, "describe", "pods", "-l", "app=web")
	t.Fatalf("the web pods are not both running after %s:\n%s\n%s", d, last, desc)
	return nil
}

// TestClusterPostgres is the HA guide with agents, on the container
// platform: two servers on PostgreSQL (s1 tainted) and an agent joined
// through s1; three Ready nodes with their taints; two pods on two nodes
// reach each other by pod IP and by Service name through CoreDNS, and
// reach kubernetes.default; an agent with a wrong token never appears;
// s1 killed, the agent stays Ready through s2 and its pod keeps running.
func TestClusterPostgres(t *testing.T) {
	ns := bridgeNS(t)
	pg := startPostgres(t, ns, dsAddr)
	img := appImage(t)
	s1 := startPeer(t, ns, "s1", withImage(t, nodeRoot(t, serverConfig("s1", "192.168.77.11", clusterToken, pg.endpoint(),
		"  node-taint: [example.com/dedicated=db:NoSchedule]")), img))
	s2 := startPeer(t, ns, "s2", withImage(t, nodeRoot(t, serverConfig("s2", "192.168.77.12", clusterToken, pg.endpoint())), img))
	a1 := startPeer(t, ns, "a1", withImage(t, nodeRoot(t, agentConfig("a1", "192.168.77.21", clusterToken, "https://192.168.77.11:6443")), img))
	for _, n := range []*containerNode{s1, s2, a1} {
		m := n.expect(t, nodeReady, `node: (\S+) is Ready, ([\d.]+)s after the config was loaded`)
		t.Logf("figures: %s: config loaded to node Ready: %ss (container platform, postgres)", m[1], m[2])
	}
	// Idle: the nodes settle before their memory is read.
	time.Sleep(30 * time.Second)
	for _, n := range []*containerNode{s1, s2, a1} {
		t.Logf("figures: %s: memory of the idle node's processes (PSS): %.0f MiB; PID 1: %.1f MiB", n.name, n.nodeMemory(), float64(n.initRSS())/1024)
	}
	tok, _ := join.ParseToken(clusterToken)
	kcData, err := (&join.Client{Server: "https://192.168.77.12:6443", Token: tok, DialContext: ns.DialContext}).AdminKubeconfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kc, kcData, 0o600)
	api := newAPIClient(t, ns, kcData)
	s2URL := "https://192.168.77.12:6443"
	nodes := api.nodes(t, s2URL)
	for n, w := range map[string]string{"s1": "Ready example.com/dedicated=db:NoSchedule", "s2": "Ready", "a1": "Ready"} {
		if nodes[n] != w {
			t.Errorf("node %s: %q, want %q (all: %v)", n, nodes[n], w, nodes)
		}
	}

	// Two pods on two nodes (s1's taint keeps them off it).
	manifest := filepath.Join(t.TempDir(), "web.yaml")
	os.WriteFile(manifest, []byte(webApp), 0o644)
	if out, err := kubectl(t, ns, kc, "apply", "-f", manifest); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	pods := webPods(t, ns, kc, 5*time.Minute)
	if pods[0].node == pods[1].node || pods[0].node == "s1" || pods[1].node == "s1" {
		t.Fatalf("pods on %s and %s; want s2 and a1", pods[0].node, pods[1].node)
	}
	exec := func(p pod, args ...string) (string, error) {
		var out string
		var err error
		// DNS and the Service's rules may take a few seconds to settle.
		for try := 0; try < 20; try++ {
			out, err = kubectl(t, ns, kc, append([]string{"exec", p.name, "--", "/app"}, args...)...)
			if err == nil {
				break
			}
			time.Sleep(3 * time.Second)
		}
		return out, err
	}
	for i, p := range pods {
		other := pods[1-i]
		if out, err := exec(p, "get", "http://"+other.ip+":8080/"); err != nil || strings.TrimSpace(out) != other.name {
			t.Errorf("pod on %s -> pod %s on %s by pod IP %s: %v %q", p.node, other.name, other.node, other.ip, err, out)
		}
	}
	seen := map[string]bool{}
	for try := 0; try < 10 && len(seen) < 2; try++ {
		out, err := exec(pods[0], "get", "http://web.default.svc.cluster.local/")
		if err != nil {
			t.Errorf("pod on %s -> Service web by name: %v %q", pods[0].node, err, out)
			break
		}
		seen[strings.TrimSpace(out)] = true
	}
	t.Logf("the Service web answered from %v", seen)
	if out, err := exec(pods[1], "dial", "kubernetes.default.svc.cluster.local:443"); err != nil {
		t.Errorf("pod on %s -> kubernetes.default:443: %v %q", pods[1].node, err, out)
	}

	// An agent with a wrong token never appears; the cluster is unharmed.
	bad := startPeer(t, ns, "a9", nodeRoot(t, agentConfig("a9", "192.168.77.29", "not-the-"+clusterToken, "https://192.168.77.12:6443")))
	bad.expect(t, 2*time.Minute, `node: not joining: the server's CA does not match the token`)
	if strings.Contains(bad.console(), "kubelet") && !strings.Contains(bad.console(), "starts no kubelet") {
		t.Errorf("the agent with a wrong token mentions a kubelet:\n%s", bad.tail(20))
	}

	// s1, which a1 registered through, is killed: a1 reaches s2 and stays
	// Ready past the node monitor's grace period, its pod running.
	s1.kill()
	killed := time.Now()
	a1.expect(t, 2*time.Minute, `node: the control plane is reached through 192\.168\.77\.12:6443 now`)
	t.Logf("figures: a1 switched to s2 %.1fs after s1 was killed", time.Since(killed).Seconds())
	time.Sleep(70*time.Second - time.Since(killed))
	nodes = api.nodes(t, s2URL)
	if !strings.HasPrefix(nodes["a1"], "Ready") {
		t.Errorf("a1 is %q 70 s after s1 was killed; want Ready", nodes["a1"])
	}
	if _, ok := nodes["a9"]; ok {
		t.Errorf("the agent with a wrong token is a node: %v", nodes)
	}
	for _, p := range webPods(t, ns, kc, time.Minute) {
		if p.node == "a1" {
			if out, err := exec(p, "get", "http://127.0.0.1:8080/"); err != nil {
				t.Errorf("the pod on a1 after s1 was killed: %v %s", err, out)
			}
		}
	}
	// a1 restarts with no STATE, so with a new node secret: the name a1
	// belongs to the old one until an admin frees it (docs/security.md),
	// as k3s's node password does; freed, the new machine joins under it.
	a1.stop(t)
	if code, body, err := api.do("DELETE", s2URL+"/api/v1/namespaces/kube-system/secrets/a1.node-password.cairn", nil); err != nil || code != 200 {
		t.Fatalf("deleting a1's node name record: %d %v %s", code, err, body)
	}
	a1 = startPeer(t, ns, "a1", withImage(t, nodeRoot(t, agentConfig("a1", "192.168.77.21", clusterToken, "https://192.168.77.12:6443")), img))
	a1.expect(t, nodeReady, `node: a1 is Ready`)
	// The node lifecycle controller lifts the not-ready taint shortly after.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(2 * time.Second) {
		nodes := api.nodes(t, s2URL)
		if nodes["a1"] == "Ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("a1 a minute after its restart: %q, want Ready (all: %v)", nodes["a1"], nodes)
			break
		}
	}
	for _, n := range []*containerNode{s2, a1, bad} {
		if strings.Contains(n.console(), clusterToken) || strings.Contains(n.console(), pgPassword) {
			t.Errorf("%s's console shows a secret", n.name)
		}
	}
}

// nodeMemory is the proportional set size (PSS) of every process of a
// container node (its PID namespace), in MiB: memory the node's processes
// use, shared pages split between them, files in its tmpfs not counted.
func (n *containerNode) nodeMemory() float64 {
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", n.cmd.Process.Pid, n.cmd.Process.Pid))
	f := strings.Fields(string(kids))
	if err != nil || len(f) == 0 {
		return 0
	}
	nsOf := func(pid string) string { l, _ := os.Readlink("/proc/" + pid + "/ns/pid"); return l }
	want := nsOf(f[0])
	entries, _ := os.ReadDir("/proc")
	kb := 0
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' || nsOf(e.Name()) != want || want == "" {
			continue
		}
		data, _ := os.ReadFile("/proc/" + e.Name() + "/smaps_rollup")
		for l := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "Pss:"); ok {
				var k int
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &k)
				kb += k
			}
		}
	}
	return float64(kb) / 1024
}
