package node

import (
	"context"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/render"
)

// startKine runs the components' kine on SQLite for one test; it skips
// when the components are not built (make components, or
// $CAIRN_COMPONENTS). kine takes only the transactions the apiserver
// sends, which etcd does not check.
func startKine(t *testing.T) *clientv3.Client {
	t.Helper()
	d := os.Getenv("CAIRN_COMPONENTS")
	if d == "" {
		d = "../../out/components"
	}
	bin := filepath.Join(d, "linux-"+runtime.GOARCH, "usr/bin/kine")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no kine in %s (make components)", bin)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "kine.sock")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--listen-address=unix://"+sock, "--metrics-bind-address=127.0.0.1:0")
	cmd.Env = append(os.Environ(), "KINE_ENDPOINT=sqlite://"+filepath.Join(dir, "db")+"?"+render.SQLiteParams)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"unix://" + sock}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		c, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Get(c, "probe")
		cancel()
		if err == nil {
			return cli
		}
		if time.Now().After(deadline) {
			t.Fatalf("kine did not answer: %v\n%s", err, out.String())
		}
	}
}

// On kine, as on etcd: the key is added to an older cairn's record, each
// step's compare-and-swap is taken, and a server's stale ack is deleted.
func TestSecretsAtRestOnKine(t *testing.T) {
	cli := startKine(t)
	ctx := context.Background()
	settings := maps.Clone(testSettings)
	settings["secrets-encryption"] = "true"
	putOldRecord(t, cli, settings)
	res, err := claim(ctx, cli, "s3cret", testSettings)
	if err != nil || !res.Keyed {
		t.Fatalf("claim: %v, keyed %v", err, res != nil && res.Keyed)
	}
	var lines []string
	cfg := &config.Config{Kubernetes: config.Kubernetes{Role: "server"}}
	s := atRestServer(t, cli, res, cfg, &lines)
	fake := &fakeAPI{t: t, file: render.EncryptionFile(s.l), hosts: []string{"s1"}, loaded: true, secrets: map[string]string{"a": ""}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	api := kube.New(srv.URL, kube.Options{})
	for range 4 {
		if err := s.atRestStep(ctx, api, cli, "s1"); err != nil {
			t.Fatalf("step: %v", err)
		}
	}
	if !strings.HasPrefix(fake.status["state"], "settled") || fake.secrets["a"] != "key-1" {
		t.Errorf("after the steps: status %q, a stored with %q", fake.status, fake.secrets["a"])
	}
	if err := deleteKey(ctx, cli, ackPrefix+"s1"); err != nil {
		t.Fatal(err)
	}
	if r, err := cli.Get(ctx, ackPrefix+"s1"); err != nil || len(r.Kvs) != 0 {
		t.Errorf("the ack is still there: %v %v", r, err)
	}
}
