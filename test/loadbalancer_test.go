//go:build qemu

package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/qemu"
)

// The LoadBalancer Services of TestLoadBalancer: a pool on the bridge's
// subnet, its first address the one the pool's Service gets.
const (
	lbPool = "192.168.77.200-192.168.77.209"
	lbAddr = "192.168.77.200"
)

// lbApp is test/e2eapp on every node (three replicas that never share
// one), and three LoadBalancer Services of it: one from the pool (no
// class), one on the nodes' addresses (the servicelb class), and one on
// a port the nodes serve themselves, which servicelb refuses.
const lbApp = `apiVersion: apps/v1
kind: Deployment
metadata: {name: lbweb, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: lbweb}}
  template:
    metadata: {labels: {app: lbweb}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - labelSelector: {matchLabels: {app: lbweb}}
              topologyKey: kubernetes.io/hostname
      containers:
        - name: web
          image: ` + appRef + `
          imagePullPolicy: Never
          command: ["/app", "serve"]
          ports: [{containerPort: 8080}]
          readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: lbweb, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: lbweb}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: lbweb-nodes, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerClass: cairn-os.github.io/servicelb
  selector: {app: lbweb}
  ports: [{port: 8088, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: lbweb-apiport, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerClass: cairn-os.github.io/servicelb
  selector: {app: lbweb}
  ports: [{port: 6443, targetPort: 8080}]
`

// TestLoadBalancer: two servers on PostgreSQL with a loadbalancer-pool
// and one agent, test/e2eapp on all three. The Service without a class
// gets the pool's first address, which one server announces, and
// answers HTTP on it from the bridge; that server is killed (SIGKILL and
// its link cut at once, as TestVIP does) and the address answers again
// from the other server: the gap is the figure, the VIP's failover the
// bar. The Service of the servicelb class lists the three nodes'
// addresses and answers on the agent's; the one on port 6443 gets no
// address and a Warning Event saying why. No two servers answer ARP for
// the address at once.
func TestLoadBalancer(t *testing.T) {
	ctx := context.Background()
	ns := bridgeNS(t)
	// The bridge keeps its MAC when a killed server's port goes.
	pinBridgeMAC(t, ns)
	pg := startPostgres(t, ns, dsAddr)
	pgKeepalives(t, ns)
	img := appImage(t)
	b := &vipBed{t: t, ns: ns, addrs: newAddrWatch(t)}
	for i := range 2 {
		name := fmt.Sprintf("s%d", i+1)
		addr := fmt.Sprintf("192.168.77.%d", 11+i)
		s := &vipServer{machine{name: name, addr: addr, root: withImage(t, nodeRoot(t, serverConfig(name, addr, clusterToken, pg.endpoint(),
			"  loadbalancer-pool: "+lbPool)), img)}}
		b.servers = append(b.servers, s)
		b.boot(s)
	}
	a1 := startPeer(t, ns, "a1", withImage(t, nodeRoot(t, agentConfig("a1", "192.168.77.21", clusterToken, "https://192.168.77.11:6443")), img))
	for _, s := range b.servers {
		s.n.expect(t, nodeReady, `node: (\S+) is Ready`)
		s.n.expect(t, time.Minute, `servicelb: a candidate to decide the LoadBalancer Services' addresses: the pool 192\.168\.77\.200-192\.168\.77\.209 for Services without a class`)
	}
	a1.expect(t, nodeReady, `node: a1 is Ready`)

	// A kubeconfig per server: whichever is killed, the other's answers.
	tok, _ := join.ParseToken(clusterToken)
	kcs := map[string]string{}
	for _, s := range b.servers {
		data, err := (&join.Client{Server: "https://" + s.addr + ":6443", Token: tok, DialContext: ns.DialContext}).AdminKubeconfig(ctx)
		if err != nil {
			t.Fatalf("cairn kubeconfig from %s: %v", s.name, err)
		}
		kcs[s.name] = filepath.Join(t.TempDir(), "kubeconfig")
		os.WriteFile(kcs[s.name], data, 0o600)
	}
	kc := kcs["s1"]
	manifest := filepath.Join(t.TempDir(), "lbweb.yaml")
	os.WriteFile(manifest, []byte(lbApp), 0o644)
	applied := time.Now()
	if out, err := kubectl(t, ns, kc, "apply", "-f", manifest); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	if nodes := lbPodNodes(t, ns, kc, 5*time.Minute); len(nodes) != 3 {
		t.Fatalf("the lbweb pods run on %v; want one on each of s1, s2, a1", nodes)
	}

	// The pool's Service: its first address, answering from the bridge.
	if got := lbIngress(t, ns, kc, "lbweb", 3*time.Minute); got != lbAddr {
		t.Fatalf("Service lbweb's status lists %q; want the pool's first address %s", got, lbAddr)
	}
	arp := watchARP(t, ns, netip.MustParseAddr(lbAddr))
	poll := pollHTTP(t, ns, "http://"+lbAddr+"/")
	first := poll.waitAfter(t, applied, 2*time.Minute)
	t.Logf("figures: loadbalancer: the pool's address answered HTTP %.1fs after kubectl apply (pods started, address given, announced)", first.Sub(applied).Seconds())

	// The announcing server, by the address's Lease.
	holder := lbHolder(t, ns, kc, b.servers)
	took := `servicelb: took 192\.168\.77\.200 on eth0`
	holder.n.expect(t, time.Minute, took)
	var other *vipServer
	for _, s := range b.servers {
		if s != holder {
			other = s
		}
	}
	before := countLines(other.n, took)
	t.Logf("%s announces %s; killing it", holder.name, lbAddr)
	killed := time.Now()
	b.powerOff(holder)
	// Only requests sent once the holder is gone count: one sent while it
	// was being killed may still have been answered by it.
	again := poll.waitAfter(t, time.Now(), 2*time.Minute)
	gap := again.Sub(killed).Seconds()
	deadline := time.Now().Add(time.Minute)
	for countLines(other.n, took) == before {
		if time.Now().After(deadline) {
			t.Fatalf("%s never took %s after %s was killed; its console:\n%s", other.name, lbAddr, holder.name, other.n.tail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	line := fmt.Sprintf("loadbalancer failover: the pool's address %s answered HTTP again %.1f s after its announcing server %s was killed (from %s; the VIP's bar: about 2 s)",
		lbAddr, gap, holder.name, other.name)
	t.Logf("figures: %s", line)
	fmt.Println(line)
	for _, o := range arp.overlaps() {
		t.Errorf("two servers announced %s: %s", lbAddr, o)
	}

	// The servicelb Service: the nodes' addresses, answering on the
	// agent's.
	kc = kcs[other.name]
	if got := lbIngress(t, ns, kc, "lbweb-nodes", time.Minute); !strings.Contains(got, "192.168.77.21") {
		t.Errorf("Service lbweb-nodes lists %q; want the nodes' addresses, the agent's 192.168.77.21 among them", got)
	}
	nodes := pollHTTP(t, ns, "http://192.168.77.21:8088/")
	nodes.waitAfter(t, time.Now(), time.Minute)
	t.Logf("Service lbweb-nodes answers on the agent's address 192.168.77.21:8088")

	// Port 6443 is the servers' own: no address, and the Event says why.
	var why string
	for deadline := time.Now().Add(time.Minute); why == ""; time.Sleep(2 * time.Second) {
		out, _ := kubectl(t, ns, kc, "get", "events", "--field-selector", "involvedObject.name=lbweb-apiport,reason=PortReserved",
			"-o", `jsonpath={range .items[*]}{.type} {.message}{"\n"}{end}`)
		why = strings.TrimSpace(out)
		if why == "" && time.Now().After(deadline) {
			t.Fatalf("no PortReserved Event for Service lbweb-apiport within a minute")
		}
	}
	if !strings.HasPrefix(why, "Warning port TCP/6443 is kube-apiserver's port on every server") {
		t.Errorf("the Event of lbweb-apiport: %q", why)
	}
	if got := lbIngress(t, ns, kc, "lbweb-apiport", 0); got != "" {
		t.Errorf("Service lbweb-apiport, on port 6443, lists %q; want no address", got)
	}
	noSecretOnConsole(t, []*containerNode{other.n, a1}, clusterToken, pgPassword)
}

// lbPodNodes waits until the three lbweb pods are ready and returns
// their nodes.
func lbPodNodes(t *testing.T, ns *qemu.Netns, kc string, d time.Duration) []string {
	t.Helper()
	var last string
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(3 * time.Second) {
		out, err := kubectl(t, ns, kc, "get", "pods", "-l", "app=lbweb", "-o",
			`jsonpath={range .items[*]}{.spec.nodeName} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		last = out
		var nodes []string
		if err == nil {
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if f := strings.Fields(l); len(f) == 2 && f[1] == "True" {
					nodes = append(nodes, f[0])
				}
			}
		}
		if len(nodes) == 3 {
			return nodes
		}
	}
	desc, _ := kubectl(t, ns, kc, "describe", "pods", "-l", "app=lbweb")
	t.Fatalf("the lbweb pods are not all ready after %s:\n%s\n%s", d, last, desc)
	return nil
}

// lbIngress is the Service's status.loadBalancer.ingress IPs, space
// separated, once it has any (or at once when d is 0).
func lbIngress(t *testing.T, ns *qemu.Netns, kc, name string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		out, err := kubectl(t, ns, kc, "get", "service", name, "-o", `jsonpath={.status.loadBalancer.ingress[*].ip}`)
		if err == nil && strings.TrimSpace(out) != "" || time.Now().After(deadline) {
			return strings.TrimSpace(out)
		}
		time.Sleep(2 * time.Second)
	}
}

// lbHolder is the server whose identity the address's Lease holds.
func lbHolder(t *testing.T, ns *qemu.Netns, kc string, servers []*vipServer) *vipServer {
	t.Helper()
	o := waitObject(t, ns, kc, time.Minute, "lease", "kube-system", "cairn-lb-"+lbAddr)
	for _, s := range servers {
		if strings.HasPrefix(o.Spec.HolderIdentity, s.name+"_") {
			return s
		}
	}
	t.Fatalf("the Lease cairn-lb-%s names %q, no server of the test", lbAddr, o.Spec.HolderIdentity)
	return nil
}

// rePodName is what test/e2eapp answers: its pod's name.
var rePodName = regexp.MustCompile(`^lbweb-\S+\n$`)

// pollHTTP polls url from the bridge: an answer is a 200 from test/e2eapp
// naming its pod.
func pollHTTP(t *testing.T, ns *qemu.Netns, url string) *poller {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: ns.DialContext, DisableKeepAlives: true}}
	return startPolling(t, hc, url, func(resp *http.Response) (string, bool) {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return "", resp.StatusCode == http.StatusOK && rePodName.Match(body)
	})
}
