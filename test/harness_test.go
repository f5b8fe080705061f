//go:build qemu

// Package test holds cairn's end-to-end tests: they build real images with
// the cairn command, boot them in QEMU (TCG) and watch the init's console
// lines (docs/console.md). Run them with `make boot` (the two boot tests) or
// `make e2e` (all of them); they need root for network namespaces, the kernel
// packages in CAIRN_DEBS (`make kernels`) and the tools `make deps` installs.
package test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/boards"
	"github.com/cairn-os/cairn/qemu"
)

// Generous limits: TCG on two shared cores is slow, much slower while
// something else compiles. They bound a hung boot, they measure nothing.
const (
	bootTimeout = 6 * time.Minute // QEMU start to a line of the running init
	stepTimeout = 3 * time.Minute // one further console line
	testTimeout = 20 * time.Minute
)

// The stable console lines of docs/console.md the tests match.
var (
	reInitStarting = regexp.MustCompile(`cairn: \[\d+\.\d+\] init: starting cairn \S+ on (amd64|arm64) \(metal\)`)
	reConfigLoaded = regexp.MustCompile(`cairn: \[\d+\.\d+\] config: loaded from (.+)`)
	reNetworkUp    = regexp.MustCompile(`cairn: \[\d+\.\d+\] network: up (\S+) (\S+) via (dhcp|static)`)
	reAllStopped   = regexp.MustCompile(`cairn: \[\d+\.\d+\] shutdown: all services stopped`)
	reGuestClock   = regexp.MustCompile(`cairn: \[(\d+\.\d+)\]`)
)

// archBoards are the boards every end-to-end test runs on, by Go arch.
var archBoards = []struct{ arch, board string }{
	{"amd64", "qemu-x86_64"},
	{"arm64", "qemu-arm64"},
}

var (
	cairnBuilt built

	imagesMu sync.Mutex
	images   = map[string]string{} // key -> build output dir
	workDir  string                // removed when the tests end
)

func TestMain(m *testing.M) {
	var err error
	workDir, err = os.MkdirTemp("", "cairn-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(workDir)
	os.Exit(code)
}

// repoRoot is the module's root directory (the tests run in test/).
func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Dir(wd)
}

// debs is the directory of kernel packages: $CAIRN_DEBS, else out/debs.
func debs(t *testing.T) string {
	t.Helper()
	d := os.Getenv("CAIRN_DEBS")
	if d == "" {
		d = filepath.Join(repoRoot(), "out", "debs")
	}
	ents, err := os.ReadDir(d)
	if err != nil || len(ents) == 0 {
		t.Fatalf("no kernel packages in %s (CAIRN_DEBS): run `make kernels`, or set CAIRN_DEBS to a directory of linux-image .debs", d)
	}
	return d
}

// cairn returns the cairn command: $CAIRN, else one built from this tree.
func cairn(t *testing.T) string {
	t.Helper()
	return cairnBuilt.get(t, func() (string, error) {
		if p := os.Getenv("CAIRN"); p != "" {
			return filepath.Abs(p)
		}
		path := filepath.Join(workDir, "cairn")
		return path, goBuild(path, "./cmd/cairn")
	})
}

// built is what the tests of one run make once and share: a program, a
// tree.
type built struct {
	once sync.Once
	path string
	err  error
}

// get makes it with make the first time and returns its path; it fails t
// when making it failed (then and at every later call).
func (b *built) get(t *testing.T, make func() (string, error)) string {
	t.Helper()
	b.once.Do(func() { b.path, b.err = make() })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// goBuild builds the package pkg of this tree into out, static.
func goBuild(out, pkg string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
	}
	return nil
}

// image builds board's artifacts with `cairn build` (plus extra flags, like
// -config FILE) and returns the output directory. Builds are shared between
// the tests of one run.
func image(t *testing.T, board string, extra ...string) string {
	t.Helper()
	bin, kernels := cairn(t), debs(t)
	h := sha256.New()
	fmt.Fprintln(h, board, strings.Join(extra, "\x00"))
	for _, a := range extra {
		if data, err := os.ReadFile(a); err == nil {
			h.Write(data)
		}
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]

	imagesMu.Lock()
	defer imagesMu.Unlock()
	if dir, ok := images[key]; ok {
		return dir
	}
	dir := filepath.Join(workDir, board+"-"+key)
	args := append([]string{"build", "-board", board, "-kernel", kernels, "-o", dir}, extra...)
	began := time.Now()
	cmd := exec.Command(bin, args...)
	cmd.Dir = repoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cairn %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("figures: %s: %s took %s", board, strings.Join(append([]string{"cairn build"}, extra...), " "), time.Since(began).Round(100*time.Millisecond))
	images[key] = dir
	return dir
}

// logDir keeps each test's console log: $CAIRN_TEST_LOGS, else out/test-logs.
func logDir(t *testing.T) string {
	t.Helper()
	d := os.Getenv("CAIRN_TEST_LOGS")
	if d == "" {
		d = filepath.Join(repoRoot(), "out", "test-logs")
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatalf("console log directory: %v", err)
	}
	return d
}

// boot starts cfg (its Board and Artifacts filled from board and dir) and
// kills QEMU when the test ends. The console goes to out/test-logs.
func boot(t *testing.T, ctx context.Context, board, dir string, cfg qemu.Config) *qemu.Machine {
	t.Helper()
	b, err := boards.Load(board)
	if err != nil {
		t.Fatal(err)
	}
	art, err := qemu.LoadArtifacts(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Board, cfg.Artifacts = b, art
	cfg.FailOn = append(cfg.FailOn, qemu.FatalLines...)
	logName := strings.ReplaceAll(t.Name(), "/", "_")
	if cfg.Name != "" { // several machines in one test: one log each
		logName += "-" + cfg.Name
	}
	cfg.ConsoleLog = filepath.Join(logDir(t), logName+".log")
	m, err := qemu.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Kill()
		if t.Failed() {
			t.Logf("%s: full console log in %s", m.Name(), cfg.ConsoleLog)
		}
	})
	return m
}

// waitFor waits up to d for a console line matching re and fails the test
// with the console's last lines when none comes.
func waitFor(t *testing.T, ctx context.Context, m *qemu.Machine, d time.Duration, re *regexp.Regexp) qemu.Line {
	t.Helper()
	return wait(t, ctx, d, re, m.WaitFor)
}

// waitForNext is waitFor over the lines after the last one found.
func waitForNext(t *testing.T, ctx context.Context, m *qemu.Machine, d time.Duration, re *regexp.Regexp) qemu.Line {
	t.Helper()
	return wait(t, ctx, d, re, m.WaitForNext)
}

func wait(t *testing.T, ctx context.Context, d time.Duration, re *regexp.Regexp, f func(context.Context, *regexp.Regexp) (qemu.Line, error)) qemu.Line {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	l, err := f(ctx, re)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// guestClock is the time since the kernel started that a cairn line carries.
func guestClock(l qemu.Line) time.Duration {
	m := reGuestClock.FindStringSubmatch(l.Text)
	if m == nil {
		return 0
	}
	s, _ := strconv.ParseFloat(m[1], 64)
	return time.Duration(s * float64(time.Second))
}

// configServer serves files over HTTP to guests on QEMU's user network and
// lets a test change them while a guest polls.
type configServer struct {
	mu    sync.Mutex
	files map[string][]byte
	hits  map[string]int
	port  int
}

// serveConfig starts a server on 127.0.0.1 (the guest's 10.0.2.2) for the
// length of the test.
func serveConfig(t *testing.T) *configServer {
	t.Helper()
	s := &configServer{files: map[string][]byte{}, hits: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: s}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *configServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	data, ok := s.files[r.URL.Path]
	s.hits[r.URL.Path]++
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Write(data)
}

func (s *configServer) set(path string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = data
}

func (s *configServer) requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// url is the address under which a guest reaches path on the server.
func (s *configServer) url(path string) string {
	return fmt.Sprintf("http://%s:%d%s", qemu.HostAddr, s.port, path)
}

// writeFile writes a test input file and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }
