package node

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/render"
	"github.com/cairn-os/cairn/init/supervise"
)

// A process read the file as it is when the file last changed more than
// startMargin before the process started; anything unknown says no.
func TestLoadedAtStart(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name             string
		changed, started time.Time
		want             bool
	}{
		{"written at boot, the apiserver started after its datastore", at, at.Add(4 * time.Second), true},
		{"written while it runs", at.Add(time.Hour), at, false},
		{"written as it started", at, at.Add(startMargin / 2), false},
		{"written exactly the margin before", at, at.Add(startMargin), false},
		{"no file", time.Time{}, at, false},
		{"no apiserver running", at, time.Time{}, false},
	} {
		if got := loadedAtStart(tt.changed, tt.started); got != tt.want {
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
	// This process, for real: it started after boot and before now.
	since, ppid, err = processStart("/proc", os.Getpid())
	if err != nil || since <= 0 || ppid != os.Getppid() {
		t.Errorf("this process: %v, parent %d (want %d), %v", since, ppid, os.Getppid(), err)
	}
}

// With the encryption config written before the apiserver started, its
// ack is published without reading the apiserver's metrics (which here
// never say it loaded); a file changed after it started is confirmed
// from the metrics, as before; with no apiserver running, nothing is
// assumed.
func TestSecretsAtRestAckFromStart(t *testing.T) {
	defer func(m time.Duration) { startMargin = m }(startMargin)
	startMargin = 20 * time.Millisecond
	cli := startEtcd(t)
	res, err := claim(context.Background(), cli, "s3cret", testSettings)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	cfg := &config.Config{Kubernetes: config.Kubernetes{Role: "server"}}
	s := atRestServer(t, cli, res, cfg, &lines)
	sup := supervise.New(supervise.Options{Log: func(l string) { t.Log(l) }, Raw: func(string) {}})
	s.o.Services = sup
	fake := &fakeAPI{t: t, file: render.EncryptionFile(s.l), hosts: []string{"s1"}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	api := kube.New(srv.URL, kube.Options{})
	ctx := context.Background()
	acked := func() bool {
		t.Helper()
		resp, err := cli.Get(ctx, ackPrefix+"s1")
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Kvs) == 1
	}

	// No apiserver yet: the metrics are asked, and do not say it.
	if err := s.atRestStep(ctx, api, cli, "s1"); err != nil {
		t.Fatal(err)
	}
	if acked() || fake.metrics != 1 {
		t.Fatalf("with no apiserver running: acked %v after %d reads of the metrics; want no ack after one", acked(), fake.metrics)
	}
	// The apiserver starts after the file was written.
	time.Sleep(2 * startMargin)
	if err := sup.Start(supervise.Service{Name: "kube-apiserver", Path: "/bin/sleep", Args: []string{"600"}}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		sup.Stop(sctx)
	}()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := sup.Wait(wctx, "kube-apiserver", func(st supervise.Status) bool { return st.PID > 0 }); err != nil {
		t.Fatal(err)
	}
	if err := s.atRestStep(ctx, api, cli, "s1"); err != nil {
		t.Fatal(err)
	}
	if !acked() || fake.metrics != 1 {
		t.Fatalf("with the file older than the apiserver: acked %v after %d reads of the metrics; want the ack, no more reads", acked(), fake.metrics)
	}
	// The file changes while the apiserver runs: its metrics say.
	s.rest.acked = ""
	data, _ := os.ReadFile(fake.file)
	time.Sleep(2 * startMargin)
	if err := writeFile(fake.file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.atRestStep(ctx, api, cli, "s1"); err != nil {
		t.Fatal(err)
	}
	if s.rest.acked != "" || fake.metrics != 2 {
		t.Errorf("with the file changed after the apiserver started: acked %q after %d reads of the metrics; want none after two", s.rest.acked, fake.metrics)
	}
	fake.mu.Lock()
	fake.loaded = true
	fake.mu.Unlock()
	if err := s.atRestStep(ctx, api, cli, "s1"); err != nil || s.rest.acked == "" {
		t.Errorf("once the metrics say it: acked %q, %v", s.rest.acked, err)
	}
}
