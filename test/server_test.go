//go:build qemu

package test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/qemu"
)

// Servers on one bridge 192.168.77.0/24; the datastore at .1.
const (
	dsAddr        = "192.168.77.1"
	clusterToken  = "e2e-cluster-s3cret-Xq7Lm2Rz9Vk4Tp8W"
	controlPlane  = 8 * time.Minute // a server's config loaded to apiserver ready, on a loaded 2-core machine
	reServerReady = `node: (\S+) is a server: addresses (\S+); datastore (.+); kube-apiserver ready on port 6443, ([\d.]+)s after the config was loaded`
)

// cluster is two servers on one datastore, reached from the test.
type cluster struct {
	ns          *qemu.Netns
	nodes       []*containerNode
	urls        []string // https://ADDR:6443 of each server
	kubeconfigs [][]byte // from cairn kubeconfig, one per server
	api         *apiClient
}

// startServers starts two servers on endpoint at the same moment and
// checks what the HA guide promises: both serve, one created the cluster,
// both hand out the same CA through cairn kubeconfig, an object written
// through one is read through the other, kubectl works with the
// kubeconfig, and no secret reaches a console.
func startServers(t *testing.T, ns *qemu.Netns, kind, endpoint, password string, extra ...string) *cluster {
	t.Helper()
	ctx := context.Background()
	c := &cluster{ns: ns}
	for i, addr := range []string{"192.168.77.11", "192.168.77.12"} {
		name := fmt.Sprintf("s%d", i+1)
		c.nodes = append(c.nodes, startPeer(t, ns, name, nodeRoot(t, serverConfig(name, addr, clusterToken, endpoint, extra...))))
		c.urls = append(c.urls, "https://"+addr+":6443")
	}
	for _, n := range c.nodes {
		m := n.expect(t, controlPlane, reServerReady)
		t.Logf("figures: %s: config loaded to kube-apiserver /readyz: %ss (container platform, %s)", m[1], m[4], kind)
	}
	created := 0
	for _, n := range c.nodes {
		if strings.Contains(n.console(), "node: created a new cluster") {
			created++
		}
		if (password != "" && strings.Contains(n.console(), password)) || strings.Contains(n.console(), clusterToken) {
			t.Errorf("%s's console shows a secret", n.name)
		}
	}
	if created != 1 {
		t.Errorf("%d servers say they created the cluster; want exactly 1", created)
	}
	for _, n := range c.nodes {
		t.Logf("figures: %s: PID 1 resident memory with the control plane running: %.1f MiB", n.name, float64(n.initRSS())/1024)
	}

	// cairn kubeconfig, as a user runs it, against each server: the same CA.
	for _, url := range c.urls {
		tok, _ := join.ParseToken(clusterToken)
		jc := &join.Client{Server: url, Token: tok, DialContext: ns.DialContext}
		kc, err := jc.AdminKubeconfig(ctx)
		if err != nil {
			t.Fatalf("cairn kubeconfig from %s: %v", url, err)
		}
		c.kubeconfigs = append(c.kubeconfigs, kc)
	}
	caOf := func(kc []byte) string {
		for l := range strings.SplitSeq(string(kc), "\n") {
			if strings.Contains(l, "certificate-authority-data") {
				return l
			}
		}
		return ""
	}
	if caOf(c.kubeconfigs[0]) == "" || caOf(c.kubeconfigs[0]) != caOf(c.kubeconfigs[1]) {
		t.Fatal("the two servers hand out different CAs")
	}
	c.api = newAPIClient(t, ns, c.kubeconfigs[0])

	// cairn token pin: the K10 form of the token, from either server, pins
	// the CA every server hands out.
	tok, _ := join.ParseToken(clusterToken)
	full, err := (&join.Client{Server: c.urls[1], Token: tok, DialContext: ns.DialContext}).FullToken(ctx)
	if err != nil {
		t.Fatalf("cairn token pin: %v", err)
	}
	if tok, err := join.ParseToken(full); err != nil || tok.Secret != clusterToken || tok.CAHash == nil {
		t.Errorf("cairn token pin gave %v (%v); want a K10 token of the cluster's secret", tok, err)
	} else if _, err := (&join.Client{Server: c.urls[0], Token: tok, DialContext: ns.DialContext}).AdminKubeconfig(ctx); err != nil {
		t.Errorf("cairn kubeconfig with the K10 token from cairn token pin: %v", err)
	}

	// An object written through one server is read through the other.
	cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "e2e", "namespace": "default"}, "data": map[string]string{"written-through": "s1"}}
	if code, body, err := c.api.do("POST", c.urls[0]+"/api/v1/namespaces/default/configmaps", cm); code != 201 {
		t.Fatalf("creating a ConfigMap through s1: %d %v %s", code, err, body)
	}
	if code, body, err := c.api.do("GET", c.urls[1]+"/api/v1/namespaces/default/configmaps/e2e", nil); code != 200 || !strings.Contains(string(body), `"written-through":"s1"`) {
		t.Fatalf("reading it through s2: %d %v %s", code, err, body)
	}

	// kubectl with the kubeconfig cairn kubeconfig wrote for s2.
	kcFile := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kcFile, c.kubeconfigs[1], 0o600)
	kubectl := filepath.Join(componentsDir(t), "usr/bin/cairn-node")
	out, err := ns.Command(ctx, kubectl, "kubectl", "--kubeconfig", kcFile, "get", "--raw", "/readyz").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Errorf("kubectl get --raw /readyz: %v: %s", err, out)
	}
	return c
}

// stop shuts every server down in order and checks it said so.
func (c *cluster) stop(t *testing.T) {
	for _, n := range c.nodes {
		n.stop(t)
		if !strings.Contains(n.console(), "shutdown: all services stopped") {
			t.Errorf("%s: no orderly stop:\n%s", n.name, n.tail(20))
		}
	}
}

// TestServersPostgres is the HA guide on the container platform: two
// servers on PostgreSQL started at the same moment, one cluster, one CA;
// a server with the wrong token and one with another service-cidr refused
// with their reasons on their consoles; the datastore stopped for 30 s and
// the servers serving again without a restart.
func TestServersPostgres(t *testing.T) {
	ns := bridgeNS(t)
	pg := startPostgres(t, ns, dsAddr)
	c := startServers(t, ns, "postgres", pg.endpoint(), pgPassword)
	api, s1, s2 := c.api, c.urls[0], c.urls[1]
	nodes := c.nodes

	// A third server with the wrong token: refused, the cluster unharmed.
	t.Run("wrong token", func(t *testing.T) {
		n := startPeer(t, ns, "s3", nodeRoot(t, serverConfig("s3", "192.168.77.13", "not-the-"+clusterToken, pg.endpoint())))
		n.expect(t, controlPlane, `node: the datastore holds a cluster created with a different token; this server's token is wrong \(nothing was written\); retrying in 1m0s`)
		if strings.Contains(n.console(), "service kube-apiserver: starting") {
			t.Errorf("s3 started kube-apiserver with the wrong token")
		}
		n.kill()
	})
	// A server with a different service-cidr: refused, naming both values.
	t.Run("different service-cidr", func(t *testing.T) {
		cfg := serverConfig("s4", "192.168.77.14", clusterToken, pg.endpoint(), "  service-cidr: 10.99.0.0/16", "  cluster-dns: 10.99.0.10")
		n := startPeer(t, ns, "s4", nodeRoot(t, cfg))
		n.expect(t, controlPlane, `node: kubernetes.service-cidr is "10.99.0.0/16" on this server but "10.43.0.0/16" in the cluster \(set by its first server\)`)
		n.expect(t, time.Minute, `node: every server of a cluster must agree on these settings; fix this server's config. kube-apiserver is not started`)
		n.kill()
	})
	for _, s := range []string{s1, s2} {
		api.waitReady(t, s, time.Minute)
	}

	// PostgreSQL away for 30 s: the servers serve again, with no restart
	// of the node.
	t.Run("datastore outage", func(t *testing.T) {
		pg.stop()
		stopped := time.Now()
		time.Sleep(25 * time.Second)
		for _, s := range []string{s1, s2} {
			if code, _, _ := api.do("GET", s+"/readyz", nil); code == 200 {
				t.Errorf("%s/readyz answers 200 with its datastore down for 25 s", s)
			}
		}
		for _, n := range nodes {
			n.expect(t, time.Minute, `datastore: postgres at 192\.168\.77\.1:5432/kine stopped answering: `)
		}
		time.Sleep(time.Until(stopped.Add(30 * time.Second)))
		bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
		pg.start(t, filepath.Dir(bins[len(bins)-1]))
		var wg sync.WaitGroup
		for _, s := range []string{s1, s2} {
			wg.Go(func() {
				d := api.waitReady(t, s, 5*time.Minute)
				t.Logf("figures: %s /readyz again %.1fs after PostgreSQL came back (%.1fs after it stopped)", s, d.Seconds(), time.Since(stopped).Seconds())
			})
		}
		wg.Wait()
		for _, n := range nodes {
			n.expect(t, time.Minute, `datastore: postgres at 192\.168\.77\.1:5432/kine answers again after \d+s`)
		}
		if code, body, err := api.do("GET", s2+"/api/v1/namespaces/default/configmaps/e2e", nil); code != 200 {
			t.Errorf("after the outage, reading the ConfigMap through s2: %d %v %s", code, err, body)
		}
		for _, n := range nodes {
			select {
			case <-n.done:
				t.Errorf("%s stopped during the datastore outage", n.name)
			default:
			}
		}
	})
	c.stop(t)
}

// TestServerEmbeddedQEMU boots the default image (a single server on the
// embedded etcd) with the node components in QEMU, per architecture, and
// reaches its apiserver the way the README says: the forwarded port and
// cairn kubeconfig with the token.
func TestServerEmbeddedQEMU(t *testing.T) {
	for _, ab := range archBoards {
		t.Run(ab.arch, func(t *testing.T) {
			ctx := context.Background()
			comps := filepath.Dir(componentsDir(t))
			if _, err := os.Stat(filepath.Join(comps, "linux-"+ab.arch, "usr/bin/cairn-node")); err != nil {
				t.Fatalf("no %s node components in %s: run `make components`", ab.arch, comps)
			}
			dir := image(t, ab.board, "-components", comps)
			seed := filepath.Join(t.TempDir(), "seed.iso")
			if err := qemu.MakeSeedISO(ctx, seed, qemu.Seed{UserData: []byte("#cloud-config\nkubernetes:\n  token: " + clusterToken + "\n")}); err != nil {
				t.Fatal(err)
			}
			port := freePort(t)
			m := boot(t, ctx, ab.board, dir, qemu.Config{
				Seed: seed, Memory: 3072, SMP: 2,
				NICs: []qemu.NIC{{Forwards: []qemu.Forward{{HostPort: port, GuestPort: 6443}}}},
			})
			start := waitFor(t, ctx, m, bootTimeout, reInitStarting)
			ready := waitFor(t, ctx, m, 30*time.Minute, regexp.MustCompile(`cairn: \[\d+\.\d+\] `+reServerReady))
			t.Logf("figures: %s (TCG, 2 vCPUs): init starting to kube-apiserver /readyz: %s; %s",
				ab.board, secs(guestClock(ready)-guestClock(start)), ready.Text)
			if !strings.Contains(ready.Text, "datastore embedded etcd") {
				t.Errorf("the default image's server does not say it runs the embedded etcd: %s", ready.Text)
			}
			tok, _ := join.ParseToken(clusterToken)
			c := &join.Client{Server: fmt.Sprintf("https://127.0.0.1:%d", port), Token: tok, Timeout: time.Minute}
			kc, err := c.AdminKubeconfig(ctx)
			if err != nil {
				t.Fatalf("cairn kubeconfig through the forwarded port: %v", err)
			}
			kcFile := filepath.Join(t.TempDir(), "kubeconfig")
			os.WriteFile(kcFile, kc, 0o600)
			out, err := exec.Command(filepath.Join(componentsDir(t), "usr/bin/cairn-node"), "kubectl", "--kubeconfig", kcFile, "get", "--raw", "/readyz").CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "ok" {
				t.Errorf("kubectl get --raw /readyz: %v: %s", err, out)
			}
			// The server is a node too: containerd, the kubelet, kube-proxy
			// and flannel on the real kernel, cgroup v2.
			nodeReady := waitFor(t, ctx, m, 30*time.Minute, regexp.MustCompile(`cairn: \[\d+\.\d+\] node: (\S+) is Ready`))
			t.Logf("figures: %s (TCG, 2 vCPUs): init starting to node Ready: %s", ab.board, secs(guestClock(nodeReady)-guestClock(start)))
			out, err = exec.Command(filepath.Join(componentsDir(t), "usr/bin/cairn-node"), "kubectl", "--kubeconfig", kcFile, "get", "nodes", "--no-headers").CombinedOutput()
			if f := strings.Fields(string(out)); err != nil || len(f) < 2 || f[1] != "Ready" {
				t.Errorf("kubectl get nodes: %v: %s", err, out)
			}
		})
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestServersMariaDB and TestServersEtcd are the two-server check of
// TestServersPostgres on the HA guide's other datastores.
func TestServersMariaDB(t *testing.T) {
	ns := bridgeNS(t)
	c := startServers(t, ns, "mariadb", startMariaDB(t, ns, dsAddr), pgPassword)
	c.stop(t)
}

func TestServersEtcd(t *testing.T) {
	ns := bridgeNS(t)
	endpoint, tlsConfig := startExternalEtcd(t, ns, dsAddr)
	c := startServers(t, ns, "etcd", endpoint, "", tlsConfig...)
	c.stop(t)
}

// TestKineCompaction is the soak of the HA guide's datastore: two servers
// on PostgreSQL, Lease and ConfigMap churn through both for
// $CAIRN_SOAK (20m by default), the rows of kine's table counted every
// minute. kine's compaction must keep the table from growing without
// bound (k3s#10619 saw 8.7 M lease rows): the peak of the last third stays
// within 1.5 times the peak of the middle third.
func TestKineCompaction(t *testing.T) {
	soak := 20 * time.Minute
	if v := os.Getenv("CAIRN_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CAIRN_SOAK=%q: %v", v, err)
		}
		soak = d
	}
	ns := bridgeNS(t)
	pg := startPostgres(t, ns, dsAddr)
	c := startServers(t, ns, "postgres", pg.endpoint(), pgPassword)
	rows := func() int {
		out, err := pg.psql("SELECT count(*) FROM kine")
		if err != nil {
			t.Fatalf("counting kine's rows: %v: %s", err, out)
		}
		var n int
		fmt.Sscan(strings.TrimSpace(out), &n)
		return n
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ops, failed int64
	var mu sync.Mutex
	for w, url := range c.urls {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("churn-%d-%d", w, i%50)
				lease := map[string]any{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
					"metadata": map[string]any{"name": name, "namespace": "default"},
					"spec":     map[string]any{"holderIdentity": fmt.Sprint(i), "leaseDurationSeconds": 10}}
				cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
					"metadata": map[string]any{"name": name, "namespace": "default"}, "data": map[string]string{"i": fmt.Sprint(i)}}
				var codes []int
				for _, req := range []struct {
					path string
					body any
				}{{"/apis/coordination.k8s.io/v1/namespaces/default/leases/", lease}, {"/api/v1/namespaces/default/configmaps/", cm}} {
					code, _, _ := c.api.do("DELETE", url+req.path+name, nil)
					codes = append(codes, code)
					code, _, _ = c.api.do("POST", url+req.path, req.body)
					codes = append(codes, code)
				}
				mu.Lock()
				ops += int64(len(codes))
				for _, code := range codes {
					if code >= 500 || code == 0 {
						failed++
					}
				}
				mu.Unlock()
			}
		})
	}
	var counts []int
	for range int(soak / time.Minute) {
		time.Sleep(time.Minute)
		counts = append(counts, rows())
		mu.Lock()
		t.Logf("figures: soak minute %d: %d rows in kine's table, %d requests (%d failed)", len(counts), counts[len(counts)-1], ops, failed)
		mu.Unlock()
	}
	close(stop)
	wg.Wait()
	t.Logf("figures: kine rows per minute over %s of churn on two servers: %v", soak, counts)
	if len(counts) < 6 {
		return // too short to judge; CAIRN_SOAK shortened it
	}
	third := len(counts) / 3
	if mid, last := slices.Max(counts[third:2*third]), slices.Max(counts[2*third:]); float64(last) > 1.5*float64(mid) {
		t.Errorf("kine's table keeps growing: peak %d rows in the last third, %d in the middle third: %v", last, mid, counts)
	}
	c.stop(t)
}

// TestServersSameCA starts two servers at the same moment against an
// empty database five times: each time they end with one CA, created by
// exactly one of them (startServers checks both).
func TestServersSameCA(t *testing.T) {
	ns := bridgeNS(t)
	pg := startPostgres(t, ns, dsAddr)
	for run := range 5 {
		endpoint := strings.Replace(pg.endpoint(), "/kine?", fmt.Sprintf("/race%d?", run), 1)
		c := startServers(t, ns, "postgres", endpoint, pgPassword)
		c.stop(t)
	}
}

// TestServersPostgresQEMU is the HA guide with real machines: two x86_64
// VMs on TAP devices of one bridge, PostgreSQL on the bridge, both
// servers serving one cluster.
func TestServersPostgresQEMU(t *testing.T) {
	ctx := context.Background()
	ns := bridgeNS(t)
	pg := startPostgres(t, ns, dsAddr)
	dir := image(t, "qemu-x86_64", "-components", filepath.Dir(componentsDir(t)))
	addrs := []string{"192.168.77.21", "192.168.77.22"}
	var machines []*qemu.Machine
	for i, addr := range addrs {
		machines = append(machines, startServerVM(t, ctx, ns, dir, i, addr, fmt.Sprintf("  datastore-endpoint: %q\n", pg.endpoint())))
	}
	reReady := regexp.MustCompile(`cairn: \[\d+\.\d+\] ` + reServerReady)
	for _, m := range machines {
		start := waitFor(t, ctx, m, bootTimeout, reInitStarting)
		ready := waitFor(t, ctx, m, 25*time.Minute, reReady)
		t.Logf("figures: qemu-x86_64 on PostgreSQL (TCG, 2 vCPUs, two VMs at once): init starting to kube-apiserver /readyz: %s", secs(guestClock(ready)-guestClock(start)))
	}
	mustKubeconfig(t, ctx, ns, addrs[1]) // vm2 proves it knows the token too
	api := newAPIClient(t, ns, mustKubeconfig(t, ctx, ns, addrs[0]))
	cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "e2e-qemu", "namespace": "default"}, "data": map[string]string{"written-through": "vm1"}}
	if code, body, err := api.do("POST", "https://"+addrs[0]+":6443/api/v1/namespaces/default/configmaps", cm); code != 201 {
		t.Fatalf("creating a ConfigMap through vm1: %d %v %s", code, err, body)
	}
	if code, body, err := api.do("GET", "https://"+addrs[1]+":6443/api/v1/namespaces/default/configmaps/e2e-qemu", nil); code != 200 {
		t.Fatalf("reading it through vm2 (with vm1's kubeconfig: one CA): %d %v %s", code, err, body)
	}
}

// startServerVM boots the server vmN (N = i+1) of the qemu-x86_64 build
// dir on a TAP device of ns's bridge, at addr with the MAC
// 52:54:00:77:00:(0x21+i); its cloud-config gives the hostname and the
// cluster token, and kubernetes: more lines of that section.
func startServerVM(t *testing.T, ctx context.Context, ns *qemu.Netns, dir string, i int, addr, kubernetes string) *qemu.Machine {
	t.Helper()
	name := fmt.Sprintf("vm%d", i+1)
	tap, err := ns.AddTAP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(t.TempDir(), "seed.iso")
	err = qemu.MakeSeedISO(ctx, seed, qemu.Seed{
		UserData:      []byte(fmt.Sprintf("#cloud-config\nhostname: %s\nkubernetes:\n  token: %s\n%s", name, clusterToken, kubernetes)),
		NetworkConfig: []byte("version: 2\nethernets:\n  eth0:\n    addresses: [" + addr + "/24]\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return boot(t, ctx, "qemu-x86_64", dir, qemu.Config{
		Name: name, Seed: seed, Netns: ns, Memory: 3072, SMP: 2,
		NICs: []qemu.NIC{{TAP: tap, MAC: fmt.Sprintf("52:54:00:77:00:%02x", 0x21+i)}},
	})
}

// TestServersEmbeddedQEMU is HA without an external datastore on real
// machines: two x86_64 VMs, vm1 creating the cluster on its embedded etcd
// and vm2, given only `server:` = vm1 and the token, joining it as a
// member through the real boot path (learner, promoted), one cluster.
// vm2 boots once vm1 serves: two TCG VMs starting at once would not leave
// either the CPU its etcd needs.
func TestServersEmbeddedQEMU(t *testing.T) {
	ctx := context.Background()
	ns := bridgeNS(t)
	dir := image(t, "qemu-x86_64", "-components", filepath.Dir(componentsDir(t)))
	addrs := []string{"192.168.77.21", "192.168.77.22"}
	reReady := regexp.MustCompile(`cairn: \[\d+\.\d+\] ` + reServerReady)
	vm1 := startServerVM(t, ctx, ns, dir, 0, addrs[0], "")
	waitFor(t, ctx, vm1, bootTimeout, reInitStarting)
	ready := waitFor(t, ctx, vm1, 25*time.Minute, reReady)
	if !strings.Contains(ready.Text, "datastore embedded etcd") {
		t.Fatalf("vm1 does not say it runs the embedded etcd: %s", ready.Text)
	}
	vm2 := startServerVM(t, ctx, ns, dir, 1, addrs[1], "  server: https://"+addrs[0]+":6443\n")
	reVoter := regexp.MustCompile(`etcd: this server is a voting member of embedded etcd \((\d+) voting members\): joined in ([\d.]+)s, ([\d.]+)s after the config was loaded`)
	voter := waitFor(t, ctx, vm2, 25*time.Minute, reVoter)
	m := reVoter.FindStringSubmatch(voter.Text)
	if m[1] != "2" {
		t.Errorf("vm2 is a voting member among %s, want 2: %s", m[1], voter.Text)
	}
	t.Logf("figures: qemu-x86_64 on embedded etcd (TCG, 2 vCPUs, vm1 serving): vm2 config loaded to voting member %ss, of which joining (learner added to promoted) %ss", m[3], m[2])
	ready2 := waitFor(t, ctx, vm2, 25*time.Minute, reReady)
	if !strings.Contains(ready2.Text, "datastore embedded etcd") {
		t.Errorf("vm2 does not say it runs the embedded etcd: %s", ready2.Text)
	}
	api := newAPIClient(t, ns, mustKubeconfig(t, ctx, ns, addrs[1]))
	cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "e2e-qemu-etcd", "namespace": "default"}, "data": map[string]string{"written-through": "vm2"}}
	if code, body, err := api.do("POST", "https://"+addrs[1]+":6443/api/v1/namespaces/default/configmaps", cm); code != 201 {
		t.Fatalf("creating a ConfigMap through vm2: %d %v %s", code, err, body)
	}
	if code, body, err := api.do("GET", "https://"+addrs[0]+":6443/api/v1/namespaces/default/configmaps/e2e-qemu-etcd", nil); code != 200 {
		t.Fatalf("reading it through vm1 (one etcd cluster, one CA): %d %v %s", code, err, body)
	}
	for _, vm := range []*qemu.Machine{vm1, vm2} {
		for _, l := range vm.Lines() {
			if strings.Contains(l.Text, clusterToken) {
				t.Errorf("%s's console shows the token: %s", vm.Name(), l.Text)
			}
		}
	}
}

// mustKubeconfig is cairn kubeconfig against addr: each request may take
// 3 minutes, and the certificate 10 (two TCG servers on embedded etcd
// share 2 host cores: their kube-controller-managers lose the leader lease
// and start again for minutes after both are ready, and only the leader
// signs; the CLI's own wait is 2 minutes).
func mustKubeconfig(t *testing.T, ctx context.Context, ns *qemu.Netns, addr string) []byte {
	t.Helper()
	tok, _ := join.ParseToken(clusterToken)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	kc, err := (&join.Client{Server: "https://" + addr + ":6443", Token: tok, DialContext: ns.DialContext, Timeout: 3 * time.Minute}).AdminKubeconfig(ctx)
	if err != nil {
		t.Fatalf("cairn kubeconfig from %s: %v", addr, err)
	}
	return kc
}

// TestK3sServer runs distribution k3s with a real k3s binary given in
// $K3S_BINARY (none can be had where cairn is developed): the init renders
// /etc/rancher/k3s/config.yaml and supervises `k3s server` until it serves.
func TestK3sServer(t *testing.T) {
	bin := os.Getenv("K3S_BINARY")
	if bin == "" {
		t.Skip("K3S_BINARY is not set: this test needs a k3s binary, which the machines cairn is developed on cannot download; set K3S_BINARY=/path/to/k3s to run it")
	}
	ns := bridgeNS(t)
	root := nodeRoot(t, serverConfig("k1", "192.168.77.31", clusterToken, "", "  distribution: k3s"))
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/k3s"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	n := startPeer(t, ns, "k1", root)
	n.expect(t, controlPlane, `service k3s: ready`)
	n.stop(t)
}

// TestServerDatastoreDownAtBoot: a server whose datastore is down at boot
// says why, without the password, and comes up once it is there; one with
// a wrong password is told so.
func TestServerDatastoreDownAtBoot(t *testing.T) {
	ns := bridgeNS(t)
	pg := startPostgres(t, ns, dsAddr)
	pg.stop()
	n := startPeer(t, ns, "s1", nodeRoot(t, serverConfig("s1", "192.168.77.11", clusterToken, pg.endpoint())))
	n.expect(t, controlPlane, `datastore: postgres at 192\.168\.77\.1:5432/kine is not ready: connection refused: is the database running and listening on that address\?; retrying in \d+s`)
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	pg.start(t, filepath.Dir(bins[len(bins)-1]))
	back := time.Now()
	// kine creates its database when it starts; the init restarts it.
	n.expect(t, controlPlane, `datastore: the database "kine" does not exist yet; restarting kine, which creates it when it starts`)
	n.expect(t, controlPlane, reServerReady)
	t.Logf("figures: a server whose PostgreSQL was down at boot: kube-apiserver /readyz %.1fs after PostgreSQL came up", time.Since(back).Seconds())

	wrong := strings.Replace(pg.endpoint(), pgPassword, "not-the-password", 1)
	w := startPeer(t, ns, "s2", nodeRoot(t, serverConfig("s2", "192.168.77.12", clusterToken, wrong)))
	w.expect(t, controlPlane, `datastore: postgres at 192\.168\.77\.1:5432/kine is not ready: authentication failed: check the user and password in datastore-endpoint; retrying in`)
	for _, node := range []*containerNode{n, w} {
		if c := node.console(); strings.Contains(c, pgPassword) || strings.Contains(c, "not-the-password") {
			t.Errorf("%s's console shows a datastore password", node.name)
		}
	}
}

// bridgeNS is a network namespace with the bridge 192.168.77.1/24 for one
// test, deleted after everything the test started in it.
func bridgeNS(t *testing.T) *qemu.Netns {
	t.Helper()
	ns, err := qemu.NewNetns(context.Background(), dsAddr+"/24")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// startPeer starts a node on root in a namespace of its own on ns's bridge.
func startPeer(t *testing.T, ns *qemu.Netns, name, root string) *containerNode {
	t.Helper()
	// A node started again has its address on a new link with a new MAC,
	// while the bridge namespace's neighbour entry for the address still
	// names the old one: the test's connections to it went nowhere until
	// the entry expired, up to a minute (TestEtcdSnapshot's restarts).
	if out, err := ns.Command(context.Background(), "ip", "neigh", "flush", "all").CombinedOutput(); err != nil {
		t.Fatalf("flushing the bridge's neighbours: %v: %s", err, out)
	}
	netns, err := ns.AddPeer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return startNode(t, name, root, netns)
}
