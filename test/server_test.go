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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/init/node/join"
	"github.com/cairn-os/cairn/qemu"
)

// Servers on one bridge 192.168.77.0/24; the datastore at .1.
const (
	dsAddr    = "192.168.77.1"
	clusterToken  = "e2e-cluster-s3cret"
	controlPlane  = 8 * time.Minute // a server's config loaded to apiserver ready, on a loaded 2-core machine
	reServerReady = `node: (\S+) is a server: addresses (\S+); datastore (.+); kube-apiserver ready on port 6443, ([\d.]+)s after the config was loaded`
)

// TestServersPostgres is the HA guide on the container platform: two
// servers on PostgreSQL started at the same moment, one cluster, one CA;
// a server with the wrong token and one with another service-cidr refused
// with their reasons on their consoles; the datastore stopped for 30 s and
// the servers serving again without a restart.
func TestServersPostgres(t *testing.T) {
	ctx := context.Background()
	ns, err := qemu.NewNetns(ctx, dsAddr+"/24")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	pg := startPostgres(t, ns, dsAddr)

	addrs := []string{"192.168.77.11", "192.168.77.12"}
	var nodes []*containerNode
	for i, addr := range addrs {
		name := fmt.Sprintf("s%d", i+1)
		netns, err := ns.AddPeer(ctx)
		if err != nil {
			t.Fatal(err)
		}
		root := nodeRoot(t, serverConfig(name, addr, clusterToken, pg.endpoint()))
		nodes = append(nodes, startNode(t, name, root, netns))
	}
	for _, n := range nodes {
		m := n.expect(t, controlPlane, reServerReady)
		t.Logf("figures: %s: config loaded to kube-apiserver /readyz: %ss (container platform, postgres)", m[1], m[4])
		if strings.Contains(m[3], pgPassword) {
			t.Errorf("%s printed the datastore password: %q", n.name, m[0])
		}
	}
	created := 0
	for _, n := range nodes {
		if strings.Contains(n.console(), "node: created a new cluster") {
			created++
		}
		if strings.Contains(n.console(), pgPassword) || strings.Contains(n.console(), clusterToken) {
			t.Errorf("%s's console shows a secret", n.name)
		}
	}
	if created != 1 {
		t.Errorf("%d servers say they created the cluster; want exactly 1", created)
	}

	// cairn kubeconfig, as a user runs it, against each server: the same CA.
	var kubeconfigs [][]byte
	for _, addr := range addrs {
		tok, _ := join.ParseToken(clusterToken)
		c := &join.Client{Server: "https://" + addr + ":6443", Token: tok, DialContext: ns.DialContext}
		kc, err := c.AdminKubeconfig(ctx)
		if err != nil {
			t.Fatalf("cairn kubeconfig from %s: %v", addr, err)
		}
		kubeconfigs = append(kubeconfigs, kc)
	}
	caOf := func(kc []byte) string {
		for l := range strings.SplitSeq(string(kc), "\n") {
			if strings.Contains(l, "certificate-authority-data") {
				return l
			}
		}
		return ""
	}
	if caOf(kubeconfigs[0]) == "" || caOf(kubeconfigs[0]) != caOf(kubeconfigs[1]) {
		t.Fatal("the two servers hand out different CAs")
	}
	api := newAPIClient(t, ns, kubeconfigs[0])
	s1, s2 := "https://"+addrs[0]+":6443", "https://"+addrs[1]+":6443"

	// An object written through one server is read through the other.
	cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "e2e", "namespace": "default"}, "data": map[string]string{"written-through": "s1"}}
	if code, body, err := api.do("POST", s1+"/api/v1/namespaces/default/configmaps", cm); code != 201 {
		t.Fatalf("creating a ConfigMap through s1: %d %v %s", code, err, body)
	}
	if code, body, err := api.do("GET", s2+"/api/v1/namespaces/default/configmaps/e2e", nil); code != 200 || !strings.Contains(string(body), `"written-through":"s1"`) {
		t.Fatalf("reading it through s2: %d %v %s", code, err, body)
	}

	// kubectl with the kubeconfig from cairn kubeconfig.
	kcFile := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kcFile, kubeconfigs[1], 0o600)
	kubectl := filepath.Join(componentsDir(t), "usr/bin/cairn-node")
	out, err := ns.Command(ctx, kubectl, "kubectl", "--kubeconfig", kcFile, "get", "--raw", "/readyz").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Errorf("kubectl get --raw /readyz: %v: %s", err, out)
	}

	// A third server with the wrong token: refused, the cluster unharmed.
	t.Run("wrong token", func(t *testing.T) {
		netns, err := ns.AddPeer(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := startNode(t, "s3", nodeRoot(t, serverConfig("s3", "192.168.77.13", "not-the-token", pg.endpoint())), netns)
		n.expect(t, controlPlane, `node: the datastore holds a cluster created with a different token; this server's token is wrong \(nothing was written\); retrying in 1m0s`)
		if strings.Contains(n.console(), "kube-apiserver") && strings.Contains(n.console(), "service kube-apiserver") {
			t.Errorf("s3 started kube-apiserver with the wrong token")
		}
		n.kill()
	})
	// A server with a different service-cidr: refused, naming both values.
	t.Run("different service-cidr", func(t *testing.T) {
		netns, err := ns.AddPeer(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cfg := serverConfig("s4", "192.168.77.14", clusterToken, pg.endpoint(), "  service-cidr: 10.99.0.0/16", "  cluster-dns: 10.99.0.10")
		n := startNode(t, "s4", nodeRoot(t, cfg), netns)
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
		time.Sleep(30 * time.Second)
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
	for _, n := range nodes {
		n.stop(t)
		if !strings.Contains(n.console(), "shutdown: all services stopped") {
			t.Errorf("%s: no orderly stop:\n%s", n.name, n.tail(20))
		}
	}
}

// TestServerEmbeddedQEMU boots the default image (a single server on the
// embedded etcd) with the node components in QEMU, x86_64, and reaches its
// apiserver the way the README says: the forwarded port and cairn
// kubeconfig with the token kept beside the image.
func TestServerEmbeddedQEMU(t *testing.T) {
	ctx := context.Background()
	comps := filepath.Dir(componentsDir(t))
	dir := image(t, "qemu-x86_64", "-components", comps)
	tokenPath := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenPath, []byte(clusterToken+"\n"), 0o600)
	seed := filepath.Join(t.TempDir(), "seed.iso")
	if err := qemu.MakeSeedISO(ctx, seed, qemu.Seed{UserData: []byte("#cloud-config\nkubernetes:\n  token: " + clusterToken + "\n")}); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	m := boot(t, ctx, "qemu-x86_64", dir, qemu.Config{
		Seed: seed, Memory: 3072, SMP: 2,
		NICs: []qemu.NIC{{Forwards: []qemu.Forward{{HostPort: port, GuestPort: 6443}}}},
	})
	start := waitFor(t, ctx, m, bootTimeout, reInitStarting)
	ready := waitFor(t, ctx, m, 25*time.Minute, regexp.MustCompile(`cairn: \[\d+\.\d+\] `+reServerReady))
	t.Logf("figures: qemu-x86_64 (TCG, 2 vCPUs): init starting to kube-apiserver /readyz: %s; %s",
		secs(guestClock(ready)-guestClock(start)), ready.Text)
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
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
