package datasource

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/brief"
	"github.com/cairn-os/cairn/init/cmdline"
)

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// messages returns only the message of each log line, as the console shows it.
func testLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	h := slog.NewTextHandler(buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == slog.LevelKey {
				return slog.Attr{}
			}
			return a
		},
	})
	return slog.New(h), buf
}

// fakeRoot lays out a root filesystem with block devices backed by images.
func fakeRoot(t *testing.T, baked string, devices map[string]string) string {
	t.Helper()
	root := t.TempDir()
	if baked != "" {
		writeTree(t, root, map[string]string{"etc/cairn/config.yaml": baked})
	}
	// A device with no medium and an empty one are skipped quietly.
	writeTree(t, root, map[string]string{"sys/class/block/sr0/size": "0\n", "sys/class/block/vda/size": "2048\n", "dev/vda": strings.Repeat("\x00", 4096)})
	for name, img := range devices {
		writeTree(t, root, map[string]string{"sys/class/block/" + name + "/size": "4096\n"})
		if err := os.Symlink(img, filepath.Join(root, "dev", name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func names(srcs []config.Source) []string {
	var out []string
	for _, s := range srcs {
		out = append(out, s.Name)
	}
	return out
}

func TestGatherPrecedence(t *testing.T) {
	cidata := vfatImage(t, "CIDATA", 2, "", seed)
	configDrive := isoImage(t, "genisoimage", []string{"-J", "-R"}, "config-2", map[string]string{
		"openstack/latest/user_data":      "#cloud-config\nntp:\n  servers: [cd]\n",
		"openstack/latest/meta_data.json": `{"uuid": "x", "hostname": "from-config-drive"}`,
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/seed/user-data", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "#cloud-config\nsysctl: {net.ipv4.ip_forward: \"1\"}\n")
	})
	mux.HandleFunc("/seed/meta-data", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "local-hostname: from-url-seed\n") })
	mux.HandleFunc("/cairn.yaml", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ntp:\n  servers: [time.example]\n") })
	var sawToken atomic.Bool
	mux.HandleFunc("PUT /latest/api/token", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			http.Error(w, "no ttl", http.StatusBadRequest)
			return
		}
		io.WriteString(w, "s3cret-token")
	})
	imds := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-aws-ec2-metadata-token") != "s3cret-token" {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			sawToken.Store(true)
			io.WriteString(w, body)
		}
	}
	mux.HandleFunc("GET /latest/user-data", imds("#cloud-config\nhostname: from-ec2\n"))
	mux.HandleFunc("GET /latest/meta-data/local-hostname", imds("ip-10-0-0-1.internal"))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	root := fakeRoot(t, "#cloud-config\nhostname: baked\n", map[string]string{"vdb": cidata, "vdc": configDrive})
	log, buf := testLogger()
	opts := Options{
		Root:    root,
		Cmdline: `console=ttyS0 "ds=nocloud;s=` + srv.URL + `/seed/" cairn.config=` + srv.URL + `/cairn.yaml cairn.datasource=ec2`,
		Log:     log,
		IMDS:    srv.URL,
	}
	if !NeedsNetwork(opts) {
		t.Error("NeedsNetwork = false with URLs on the command line")
	}
	srcs, err := Gather(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"cidata:/dev/vdb/meta-data",
		"config-2:/dev/vdc/openstack/latest/meta_data.json",
		srv.URL + "/seed/meta-data",
		srv.URL + "/latest/meta-data/local-hostname",
		"/etc/cairn/config.yaml",
		"cidata:/dev/vdb/user-data",
		"cidata:/dev/vdb/network-config",
		"config-2:/dev/vdc/openstack/latest/user_data",
		srv.URL + "/seed/user-data",
		srv.URL + "/cairn.yaml",
		srv.URL + "/latest/user-data",
	}
	if got := names(srcs); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("sources:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !sawToken.Load() {
		t.Error("IMDS was never asked with the session token")
	}
	if strings.Contains(buf.String(), "s3cret-token") {
		t.Error("the IMDS token reached the log")
	}
	// What a user sees: the config the init would load.
	cfg, diags := config.Load(srcs...)
	if diags.HasErrors() {
		t.Fatalf("config.Load: %v", diags.Err())
	}
	if cfg.Hostname != "from-ec2" || cfg.NTP == nil || strings.Join(cfg.NTP.Servers, ",") != "time.example" || cfg.Network == nil || !cfg.Network.Ethernets["eth0"].DHCP4 {
		t.Errorf("merged config: hostname %q ntp %+v network %+v", cfg.Hostname, cfg.NTP, cfg.Network)
	}

	// Without the network only the local sources are read.
	opts.LocalOnly = true
	srcs, err = Gather(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(srcs), " "); strings.Contains(got, "http") {
		t.Errorf("LocalOnly gathered remote sources: %s", got)
	}
}

func TestMetaDataHostnameYieldsToUserData(t *testing.T) {
	for _, c := range []struct {
		name     string
		userData string
		want     string
	}{
		{"user-data sets hostname", "#cloud-config\nhostname: explicit\n", "explicit"},
		{"user-data leaves it out", "#cloud-config\nsysctl: {net.ipv4.ip_forward: \"1\"}\n", "from-meta"},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := vfatImage(t, "cidata", 2, "", map[string]string{"user-data": c.userData, "meta-data": "local-hostname: from-meta\n"})
			srcs, err := Gather(context.Background(), Options{Root: fakeRoot(t, "", map[string]string{"vdb": img}), Cmdline: "quiet"})
			if err != nil {
				t.Fatal(err)
			}
			cfg, diags := config.Load(srcs...)
			if diags.HasErrors() {
				t.Fatal(diags.Err())
			}
			if cfg.Hostname != c.want {
				t.Errorf("hostname %q, want %q", cfg.Hostname, c.want)
			}
		})
	}
}

func TestURLRetriedUntilItAnswers(t *testing.T) {
	firstRetry, maxRetry = time.Millisecond, 4*time.Millisecond
	defer func() { firstRetry, maxRetry = time.Second, 30*time.Second }()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			http.Error(w, "starting", http.StatusServiceUnavailable)
		case 2, 3:
			http.NotFound(w, r) // the file is not there yet
		default:
			io.WriteString(w, "#cloud-config\nhostname: finally\n")
		}
	}))
	defer srv.Close()
	log, buf := testLogger()
	srcs, err := Gather(context.Background(), Options{Root: t.TempDir(), Cmdline: "cairn.config=" + srv.URL + "/c", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 1 || !strings.Contains(string(srcs[0].Data), "finally") {
		t.Fatalf("sources %v", names(srcs))
	}
	out := buf.String()
	for _, want := range []string{
		"config: fetching " + srv.URL + "/c failed: server answered 503 Service Unavailable; retrying in 1ms",
		"config: fetching " + srv.URL + "/c failed: server answered 404 Not Found: no such document; retrying in 2ms",
		"retrying in 4ms",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestURLGivesUpWhenContextEnds(t *testing.T) {
	firstRetry = time.Millisecond
	defer func() { firstRetry = time.Second }()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := Gather(ctx, Options{Root: t.TempDir(), Cmdline: "cairn.config=" + srv.URL + "/c"})
	if err == nil || !strings.Contains(err.Error(), "gave up") {
		t.Errorf("err = %v, want a give-up error", err)
	}
}

func TestUserDataKinds(t *testing.T) {
	for _, c := range []struct {
		name, data string
		doc, fail  bool
	}{
		{"cloud-config", "#cloud-config\nhostname: a\n", true, false},
		{"plain YAML", "hostname: a\n", true, false},
		{"empty", " \n", false, false},
		{"shell script", "#!/bin/sh\necho hi\n", false, true},
		{"MIME", "Content-Type: multipart/mixed; boundary=x\n", false, true},
	} {
		s, err := userData("u", []byte(c.data))
		if (s != nil) != c.doc || (err != nil) != c.fail {
			t.Errorf("%s: source %v, err %v", c.name, s != nil, err)
		}
	}
}

func TestCmdline(t *testing.T) {
	for _, c := range []struct {
		line string
		want cmdKeys
	}{
		{"console=ttyS0 cairn.config=http://10.0.2.2:8000/c.yaml", cmdKeys{configURL: "http://10.0.2.2:8000/c.yaml"}},
		{`"ds=nocloud;s=http://10.0.2.2:8000/;h=node1" quiet`, cmdKeys{seedURL: "http://10.0.2.2:8000/", hostname: "node1"}},
		{"ds=nocloud-net;seedfrom=http://x/ cairn.datasource=ec2", cmdKeys{seedURL: "http://x/", ec2: true}},
		{"ds=ec2", cmdKeys{ec2: true}},
		{"ds=nocloud", cmdKeys{}},
		{"cairn.datasource=gce", cmdKeys{}},
	} {
		if got := parseCmdline(cmdline.Parse(c.line)); got != c.want {
			t.Errorf("parseCmdline(%q) = %+v, want %+v", c.line, got, c.want)
		}
	}
}

// TestBadURLHidesPassword: a URL that does not parse is never echoed, in
// errors or console lines, since it may hold a password.
func TestBadURLHidesPassword(t *testing.T) {
	const bad = "http://user:s3cret@[::1"
	_, err := (&fetcher{}).get(context.Background(), http.MethodGet, bad, true, nil)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("get(%q) = %v, want an error without the password", bad, err)
	}
	if got := brief.URL(bad); strings.Contains(got, "s3cret") {
		t.Errorf("brief.URL(%q) = %q", bad, got)
	}
}
