package clock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// reset gives each test a fresh, unsynced clock and fake seams for setting
// it: the host's clock is not the test's to change.
func reset(t *testing.T) *[]time.Time {
	t.Helper()
	mu.Lock()
	synced = make(chan struct{})
	mu.Unlock()
	waitLogOnce = sync.Once{}
	var set []time.Time
	oldSet, oldNow, oldQuery, oldFirst := setClock, now, query, firstRetry
	setClock = func(t time.Time) error { set = append(set, t); return nil }
	firstRetry = time.Millisecond
	t.Cleanup(func() { setClock, now, query, firstRetry = oldSet, oldNow, oldQuery, oldFirst })
	return &set
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.b.String()), "\n")
}

// consoleLog prints only messages, one a line, as the console handler does.
func consoleLog() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(msgHandler{b}), b
}

type msgHandler struct{ w *logBuf }

func (h msgHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h msgHandler) Handle(_ context.Context, r slog.Record) error {
	_, err := fmt.Fprintln(h.w, r.Message)
	return err
}
func (h msgHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h msgHandler) WithGroup(string) slog.Handler      { return h }

func isSynced() bool {
	select {
	case <-Synced():
		return true
	default:
		return false
	}
}

// TestSyncFromChrony asks a real chronyd serving NTP on loopback; a server
// that refuses comes first and is skipped.
func TestSyncFromChrony(t *testing.T) {
	if _, err := exec.LookPath("chronyd"); err != nil {
		t.Skip("needs chronyd (Debian: chrony)")
	}
	if os.Geteuid() != 0 {
		t.Skip("chronyd needs root")
	}
	set := reset(t)
	query = realQuery
	port := freeUDPPort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "chrony.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(
		"port %d\nbindaddress 127.0.0.1\ncmdport 0\nlocal stratum 8\nallow 127.0.0.1\npidfile %s/chronyd.pid\ndriftfile %s/drift\n",
		port, dir, dir)), 0o644)
	// -x: never touch the host's clock; -d: stay in the foreground.
	cmd := exec.Command("chronyd", "-x", "-d", "-u", "root", "-f", conf)
	var out logBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("chronyd:\n%s", strings.Join(out.lines(), "\n"))
		}
	})
	refused := fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	server := fmt.Sprintf("127.0.0.1:%d", port)
	log, buf := consoleLog()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := Sync(ctx, []string{refused, server}, log); err != nil {
		t.Fatalf("Sync: %v\n%s", err, strings.Join(buf.lines(), "\n"))
	}
	last := buf.lines()[len(buf.lines())-1]
	if !strings.HasPrefix(last, "clock: synced from "+server+" (offset ") {
		t.Errorf("last line %q, want clock: synced from %s", last, server)
	}
	if len(*set) != 0 {
		t.Errorf("clock stepped to %v although chronyd shares our clock", *set)
	}
	if !isSynced() {
		t.Error("Synced() not closed")
	}
}

var realQuery = query

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func TestSyncStepsALargeOffset(t *testing.T) {
	set := reset(t)
	base := time.Date(1970, 1, 1, 0, 0, 42, 0, time.UTC)
	now = func() time.Time { return base }
	calls := 0
	query = func(s string) (time.Duration, error) {
		calls++
		if calls <= 2 {
			return 0, errors.New("i/o timeout")
		}
		return 56 * 365 * 24 * time.Hour, nil
	}
	log, buf := consoleLog()
	waited := make(chan error, 1)
	go func() { waited <- Wait(context.Background(), log) }()
	if err := Sync(context.Background(), []string{"ntp.example"}, log); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Errorf("Wait: %v", err)
	}
	if len(*set) != 1 || !(*set)[0].Equal(base.Add(56*365*24*time.Hour)) {
		t.Errorf("clock set to %v", *set)
	}
	lines := buf.lines()
	if n := strings.Count(strings.Join(lines, "\n"), "clock: waiting for a synced clock before TLS"); n != 1 {
		t.Errorf("the waiting line appeared %d times, want once:\n%s", n, strings.Join(lines, "\n"))
	}
	if want := "clock: synced from ntp.example (offset 490560h0m0s)"; lines[len(lines)-1] != want {
		t.Errorf("last line %q, want %q", lines[len(lines)-1], want)
	}
}

func TestSyncWithoutServers(t *testing.T) {
	for _, c := range []struct {
		name    string
		clock   time.Time
		stamp   string
		setTo   string
		message string
	}{
		{"clock in 1970 steps to the build", time.Unix(5, 0), "1893456000", "2030-01-01T00:00:00Z", "before this build, so it is set to 2030-01-01T00:00:00Z"},
		{"unstamped build uses the floor", time.Unix(5, 0), "", "2026-11-01T00:00:00Z", "set to 2026-11-01T00:00:00Z"},
		{"clock after the build is trusted", time.Date(2031, 5, 1, 0, 0, 0, 0, time.UTC), "1893456000", "", "trusting the system clock (2031-05-01T00:00:00Z, later than the build)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			set := reset(t)
			now = func() time.Time { return c.clock }
			old := BuildTimestamp
			BuildTimestamp = c.stamp
			defer func() { BuildTimestamp = old }()
			log, buf := consoleLog()
			if err := Sync(context.Background(), nil, log); err != nil {
				t.Fatal(err)
			}
			if !isSynced() {
				t.Error("Synced() not closed: a node without NTP would wait forever")
			}
			got := ""
			if len(*set) == 1 {
				got = (*set)[0].UTC().Format(time.RFC3339)
			}
			if got != c.setTo {
				t.Errorf("clock set to %q, want %q", got, c.setTo)
			}
			if l := strings.Join(buf.lines(), "\n"); !strings.Contains(l, "clock: no NTP servers configured or offered by DHCP") || !strings.Contains(l, c.message) {
				t.Errorf("log %q lacks %q", l, c.message)
			}
		})
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	reset(t)
	query = func(string) (time.Duration, error) { return 0, errors.New("unreachable") }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := Sync(ctx, []string{"a", "b"}, nil); err == nil {
		t.Error("Sync returned nil with no server answering")
	}
	if err := Wait(ctx, nil); err == nil {
		t.Error("Wait returned nil with the clock unsynced")
	}
}

func TestVouch(t *testing.T) {
	set := reset(t)
	query = func(string) (time.Duration, error) { t.Error("NTP asked"); return 0, nil }
	log, buf := consoleLog()
	Vouch("the host keeps the time (container platform)", log)
	if err := Wait(context.Background(), log); err != nil || !isSynced() {
		t.Errorf("Wait after Vouch: %v", err)
	}
	if len(*set) != 0 {
		t.Errorf("the clock was set: %v", *set)
	}
	if got := strings.Join(buf.lines(), "\n"); got != "clock: not synced by cairn: the host keeps the time (container platform)" {
		t.Errorf("log %q", got)
	}
}
