package node

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/render"
	"github.com/cairn-os/cairn/init/supervise"
)

// A process read the config as cairn wrote it when cairn wrote that
// content before the process started, both on the boot clock; anything
// unknown says no.
func TestLoadedAtStart(t *testing.T) {
	const h = "sha256:aa"
	at := 90 * time.Second
	for _, tt := range []struct {
		name    string
		w       configWrite
		hash    string
		started time.Duration
		want    bool
	}{
		{"written at boot, the apiserver started after its datastore", configWrite{h, at}, h, at + 4*time.Second, true},
		{"written while it runs", configWrite{h, at + time.Hour}, h, at, false},
		{"written in the tick it started in", configWrite{h, at}, h, at, false},
		{"written before it started, rewritten since by another hand", configWrite{h, at}, "sha256:bb", at + time.Second, false},
		{"not written by cairn in this boot", configWrite{}, h, at, false},
		{"no apiserver running", configWrite{h, at}, h, 0, false},
	} {
		if got := loadedAtStart(tt.w, tt.hash, tt.started); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestProcessStart(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "42"), 0o755)
	// A command name with spaces and ") (" in it.
	stat := "42 (kube) (api server) S 1 42 42 0 -1 4194560 5137 0 0 0 12 7 0 0 20 0 9 0 123456 1000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
	os.WriteFile(filepath.Join(dir, "42", "stat"), []byte(stat), 0o644)
	since, ppid, err := processStart(dir, 42)
	if err != nil || since != 1234560*time.Millisecond || ppid != 1 {
		t.Errorf("processStart: %v, parent %d, %v; want 20m34.56s, 1", since, ppid, err)
	}
	os.WriteFile(filepath.Join(dir, "42", "stat"), []byte("42 (kube-apiserver) S 1 42"), 0o644)
	if _, _, err := processStart(dir, 42); err == nil {
		t.Error("a short stat was read")
	}
	// This process, for real: it started after boot and before now, on
	// the clock cairn stamps its writes with.
	since, ppid, err = processStart("/proc", os.Getpid())
	now, cerr := bootClock()
	if err != nil || cerr != nil || since <= 0 || since > now || ppid != os.Getppid() {
		t.Errorf("this process: started %v, boot clock now %v (%v), parent %d (want %d), %v", since, now, cerr, ppid, os.Getppid(), err)
	}
}

// ackRig is a server with its fake apiserver and a supervisor to run a
// stand-in kube-apiserver under.
type ackRig struct {
	t    *testing.T
	s    *server
	fake *fakeAPI
	api  *kube.Client
	sup  *supervise.Supervisor
	kv   *clientv3.Client
	host string
}

func newAckRig(t *testing.T, cli *clientv3.Client, host string) *ackRig {
	t.Helper()
	res, err := claim(context.Background(), cli, "s3cret", testSettings)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	s := atRestServer(t, cli, res, &config.Config{Kubernetes: config.Kubernetes{Role: "server"}}, &lines)
	sup := supervise.New(supervise.Options{Log: func(l string) { t.Log(l) }, Raw: func(string) {}})
	s.o.Services = sup
	fake := &fakeAPI{t: t, file: render.EncryptionFile(s.l), hosts: []string{host}}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		sup.Stop(ctx)
	})
	return &ackRig{t: t, s: s, fake: fake, api: kube.New(srv.URL, kube.Options{}), sup: sup, kv: cli, host: host}
}

// startAPIServer runs a stand-in kube-apiserver, a child of this process
// as the real one is of PID 1, and waits for its PID.
func (r *ackRig) startAPIServer() {
	r.t.Helper()
	if err := r.sup.Start(supervise.Service{Name: "kube-apiserver", Path: "/bin/sleep", Args: []string{"600"}}); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := r.sup.Wait(ctx, "kube-apiserver", func(st supervise.Status) bool { return st.PID > 0 }); err != nil {
		r.t.Fatal(err)
	}
}

// step takes a step and says whether this server's ack is published,
// and how often the metrics were read in all.
func (r *ackRig) step() (acked bool, metrics int) {
	r.t.Helper()
	ctx := context.Background()
	if err := r.s.atRestStep(ctx, r.api, r.kv, r.host); err != nil {
		r.t.Fatal(err)
	}
	resp, err := r.kv.Get(ctx, ackPrefix+r.host)
	if err != nil {
		r.t.Fatal(err)
	}
	r.fake.mu.Lock()
	defer r.fake.mu.Unlock()
	return len(resp.Kvs) == 1, r.fake.metrics
}

// bootConfig is the encryption config as the server writes it at boot,
// before it starts the apiserver.
func (r *ackRig) bootConfig() render.File {
	r.t.Helper()
	f, err := render.EncryptionConfig(r.s.o.Config, r.s.renderNode())
	if err != nil {
		r.t.Fatal(err)
	}
	if err := writeFiles([]render.File{*f}); err != nil {
		r.t.Fatal(err)
	}
	return *f
}

// At boot: a config cairn wrote before it started the apiserver is
// acked without reading the apiserver's metrics (which here never say
// it loaded); one on disk that cairn did not write in this boot, however
// much older than the apiserver it is, is not taken on its age.
func TestSecretsAtRestAckAtBoot(t *testing.T) {
	cli := startEtcd(t)
	written, found := newAckRig(t, cli, "s1"), newAckRig(t, cli, "s2")
	written.s.wroteFiles([]render.File{written.bootConfig()})
	found.bootConfig()
	// Well older than the apiserver by any clock.
	time.Sleep(1100 * time.Millisecond)
	written.startAPIServer()
	found.startAPIServer()
	if acked, metrics := written.step(); !acked || metrics != 0 {
		t.Errorf("the config cairn wrote before the apiserver started: acked %v after %d reads of the metrics; want the ack, none", acked, metrics)
	}
	if acked, metrics := found.step(); acked || metrics != 1 {
		t.Errorf("a config cairn did not write in this boot: acked %v after %d reads of the metrics; want no ack after one", acked, metrics)
	}
	found.fake.mu.Lock()
	found.fake.loaded = true
	found.fake.mu.Unlock()
	if acked, _ := found.step(); !acked {
		t.Error("a config cairn did not write in this boot: no ack once the metrics say it is loaded")
	}
}

// While the apiserver runs: with no apiserver, nothing is assumed; one
// started after cairn wrote the config has loaded it; a config cairn
// rewrites under it (a rotation's step) is acked only once the metrics
// say so, even when the wall clock is then stepped forward and the
// file's times look older than the apiserver.
func TestSecretsAtRestAckFromStart(t *testing.T) {
	cli := startEtcd(t)
	r := newAckRig(t, cli, "s1")
	if acked, metrics := r.step(); acked || metrics != 1 {
		t.Fatalf("with no apiserver running: acked %v after %d reads of the metrics; want no ack after one", acked, metrics)
	}
	time.Sleep(2 * time.Second / userHZ) // a start in the write's tick is not taken as after it
	r.startAPIServer()
	if acked, metrics := r.step(); !acked || metrics != 1 {
		t.Fatalf("with the apiserver started after the write: acked %v after %d reads of the metrics; want the ack, no more reads", acked, metrics)
	}
	// A rotation: the next step adds a key, the one after writes it.
	r.fake.mu.Lock()
	r.fake.rotate = "1"
	r.fake.mu.Unlock()
	acked := r.s.rest.acked
	r.step()
	r.step()
	if r.s.rest.current().Keys[0].Name != "key-2" {
		t.Fatalf("no key added: %v", r.s.rest.current().names())
	}
	// NTP steps the clock forward: the file now looks an hour older than
	// the apiserver.
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(r.fake.file, past, past); err != nil {
		t.Fatal(err)
	}
	_, metrics := r.step()
	if r.s.rest.acked != acked || metrics < 3 {
		t.Fatalf("with the config rewritten while the apiserver runs: ack changed %v after %d reads of the metrics; want it unchanged, the metrics read", r.s.rest.acked != acked, metrics)
	}
	r.fake.mu.Lock()
	r.fake.loaded = true
	r.fake.mu.Unlock()
	r.step()
	if r.s.rest.acked == acked {
		t.Error("the ack did not move once the metrics say the new config is loaded")
	}
}
