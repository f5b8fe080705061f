package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/init/node/pki"
)

// startEtcd runs Debian's etcd on loopback ports for one test; it skips
// when etcd is not installed (make deps installs etcd-server).
func startEtcd(t *testing.T) *clientv3.Client {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd is not installed (make deps installs etcd-server)")
	}
	ports := freePorts(t, 2)
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--name=t", "--data-dir="+t.TempDir(),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer, "--initial-cluster=t="+peer,
		"--log-level=error")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Get(c, "probe")
		cancel()
		if err == nil {
			return cli
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd did not answer: %v\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePorts(t *testing.T, n int) []int {
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out
}

var testSettings = mustMatch(&config.Kubernetes{ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local"})

// Two servers that start at the same moment against an empty datastore
// end with one cluster: the same CA, one of them its creator.
func TestClaimRace(t *testing.T) {
	cli := startEtcd(t)
	for run := range 5 {
		if _, err := cli.Delete(context.Background(), bootstrapKey); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		results := make([]*claimResult, 2)
		errs := make([]error, 2)
		start := make(chan struct{})
		for i := range 2 {
			wg.Go(func() {
				<-start
				results[i], errs[i] = claim(context.Background(), cli, "s3cret", testSettings)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("run %d: server %d: %v", run, i, err)
			}
		}
		if a, b := results[0].PKI[pki.ServerCA].Cert, results[1].PKI[pki.ServerCA].Cert; string(a) != string(b) {
			t.Fatalf("run %d: the two servers hold different CAs", run)
		}
		if results[0].Created == results[1].Created {
			t.Fatalf("run %d: created = %v and %v; exactly one server must create the cluster", run, results[0].Created, results[1].Created)
		}
	}
}

// A server with another token learns that, and the cluster's record is
// left as it was.
func TestClaimWrongToken(t *testing.T) {
	cli := startEtcd(t)
	if _, err := claim(context.Background(), cli, "right", testSettings); err != nil {
		t.Fatal(err)
	}
	before, _ := cli.Get(context.Background(), bootstrapKey)
	_, err := claim(context.Background(), cli, "wrong", testSettings)
	if !errors.Is(err, errWrongToken) {
		t.Fatalf("claim with the wrong token: err = %v, want errWrongToken", err)
	}
	if !strings.Contains(err.Error(), "different token") {
		t.Errorf("the message does not say what is wrong: %v", err)
	}
	after, _ := cli.Get(context.Background(), bootstrapKey)
	if before.Kvs[0].ModRevision != after.Kvs[0].ModRevision {
		t.Errorf("a server with the wrong token wrote the cluster record")
	}
}

// The sealed record holds no key material in clear.
func TestRecordIsSealed(t *testing.T) {
	c, err := pki.NewCluster(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, err := newRecord("s3cret", c, testSettings)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(r.Sealed), "PRIVATE KEY") {
		t.Fatal("the record holds a private key in clear")
	}
	got, err := r.open("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if string(got[pki.ClientCA].Key) != string(c[pki.ClientCA].Key) {
		t.Error("the opened record differs from the sealed one")
	}
	r.Sealed[0] ^= 1
	if _, err := r.open("s3cret"); err == nil {
		t.Error("a tampered record was opened")
	}
}

func TestSettingsDiffer(t *testing.T) {
	mine := mustMatch(&config.Kubernetes{ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.99.0.0/16", ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local"})
	got := settingsDiffer(mine, testSettings)
	want := `kubernetes.service-cidr is "10.99.0.0/16" on this server but "10.43.0.0/16" in the cluster (set by its first server)`
	if len(got) != 1 || got[0] != want {
		t.Errorf("differences = %q, want [%q]", got, want)
	}
	if d := settingsDiffer(testSettings, testSettings); len(d) != 0 {
		t.Errorf("equal settings differ: %q", d)
	}
	// disable must match in servicelb only: manifests' names and the
	// other add-ons may differ and change, in a cluster recorded by an
	// older cairn (which recorded every packaged name) too.
	withManifest := mustMatch(&config.Kubernetes{ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local", Disable: []string{"my-app", "metrics-server"}})
	old := maps.Clone(testSettings)
	old["disable"] = "old-app,traefik"
	if d := settingsDiffer(withManifest, old); len(d) != 0 {
		t.Errorf("settings that differ in manifests and add-ons only differ: %q", d)
	}
	old["disable"] = "servicelb,traefik"
	if d := settingsDiffer(testSettings, old); len(d) != 1 || !strings.Contains(d[0], `kubernetes.disable is "" on this server but "servicelb" in the cluster`) {
		t.Errorf("differences in disable's servicelb = %q", d)
	}
}
