package network

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config"
)

// The DHCP and static tests run Up in a network namespace of their own. A
// goroutine cannot be kept in one (the DHCP clients run on threads of their
// own), so the test binary re-executes itself under `ip netns exec`, which
// also mounts that namespace's /sys. helperEnv carries the request.
const helperEnv = "CAIRN_NETWORK_HELPER"

type helperRequest struct {
	Root     string
	Hostname string
	Network  *config.Network
}

func TestMain(m *testing.M) {
	if os.Getpid() == 1 {
		runInVM() // booted as /init by TestInQEMU
		return
	}
	if req := os.Getenv(helperEnv); req != "" {
		os.Exit(runHelper(req))
	}
	os.Exit(m.Run())
}

// lineHandler prints each log message on its own line, as the console does.
type lineHandler struct {
	mu *sync.Mutex
	w  io.Writer
}

func (h lineHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h lineHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := fmt.Fprintln(h.w, r.Message)
	return err
}
func (h lineHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h lineHandler) WithGroup(string) slog.Handler      { return h }

// runHelper runs Up as asked, prints "UP <error or ok>" and "STATE <json>",
// and keeps the DHCP clients running until stdin closes.
func runHelper(raw string) int {
	var req helperRequest
	if err := json.Unmarshal([]byte(raw), &req); err != nil {
		fmt.Println("HELPER bad request:", err)
		return 2
	}
	log := slog.New(lineHandler{mu: &sync.Mutex{}, w: os.Stdout})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := Up(ctx, req.Network, Options{Root: req.Root, Hostname: req.Hostname, Log: log, Timeout: 60 * time.Second})
	if err != nil {
		fmt.Printf("UP %v\n", strings.ReplaceAll(err.Error(), "\n", "; "))
	} else {
		fmt.Println("UP ok")
	}
	out, _ := json.Marshal(map[string]any{"addresses": st.Addresses(), "ntp": st.NTPServers()})
	fmt.Printf("STATE %s\n", out)
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// helper is a running Up in a namespace.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	seen  []string
}

func startHelper(t *testing.T, netns string, req helperRequest) *helper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", netns, exe)
	cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, stdin: stdin, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return h
}

// waitFor returns the first line starting with prefix, failing after d.
func (h *helper) waitFor(t *testing.T, prefix string, d time.Duration) string {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case l, ok := <-h.lines:
			if !ok {
				t.Fatalf("helper exited before printing %q; it said:\n%s", prefix, strings.Join(h.seen, "\n"))
			}
			t.Logf("helper: %s", l)
			h.seen = append(h.seen, l)
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			t.Fatalf("no %q within %s; the helper said:\n%s", prefix, d, strings.Join(h.seen, "\n"))
		}
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2")
	}
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// netns creates a namespace removed when the test ends.
func netns(t *testing.T, name string) string {
	t.Helper()
	name = fmt.Sprintf("cairn-%s-%d", name, os.Getpid())
	exec.Command("ip", "netns", "del", name).Run()
	sh(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	sh(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// vethPair links two namespaces: a in ns1, b in ns2.
func vethPair(t *testing.T, ns1, a, ns2, b string) {
	t.Helper()
	sh(t, "ip", "-n", ns1, "link", "add", a, "type", "veth", "peer", "name", b, "netns", ns2)
	sh(t, "ip", "-n", ns1, "link", "set", a, "up")
}

type ipAddr struct {
	IfName   string `json:"ifname"`
	MTU      int    `json:"mtu"`
	Address  string `json:"address"`
	AddrInfo []struct {
		Local     string `json:"local"`
		PrefixLen int    `json:"prefixlen"`
		ValidLife uint64 `json:"valid_life_time"`
		Family    string `json:"family"`
	} `json:"addr_info"`
}

func linkInfo(t *testing.T, ns, dev string) ipAddr {
	t.Helper()
	var out []ipAddr
	if err := json.Unmarshal([]byte(sh(t, "ip", "-n", ns, "-j", "addr", "show", "dev", dev)), &out); err != nil || len(out) != 1 {
		t.Fatalf("ip addr show %s: %v %v", dev, out, err)
	}
	return out[0]
}

func routes(t *testing.T, ns string) string {
	return sh(t, "ip", "-n", ns, "-4", "route", "show")
}
