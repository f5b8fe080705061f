package supervise

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/init/supervise/supervisetest"
)

// lines records what the supervisor would print on the console.
type lines = supervisetest.Lines

func newTest(t *testing.T) (*Supervisor, *lines, *lines) {
	t.Helper()
	var log, raw lines
	s := New(Options{Log: log.Add, Raw: raw.Add, Reaper: &Reaper{}})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s.Stop(ctx)
	})
	return s, &log, &raw
}

func wait(t *testing.T, s *Supervisor, name string, cond func(Status) bool) Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := s.Wait(ctx, name, cond)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestCrashingServiceRestartsWithGrowingDelays(t *testing.T) {
	s, log, _ := newTest(t)
	err := s.Start(Service{
		Name:    "crash",
		Path:    "/bin/sh",
		Args:    []string{"-c", "exit 3"},
		Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond, Reset: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, s, "crash", func(st Status) bool { return st.Restarts >= 5 })
	var got []string
	for _, l := range log.All() {
		if strings.Contains(l, "restarting in") {
			got = append(got, l)
		}
	}
	want := []string{
		"service crash: exited (status 3), restarting in 10ms",
		"service crash: exited (status 3), restarting in 20ms",
		"service crash: exited (status 3), restarting in 40ms",
		"service crash: exited (status 3), restarting in 40ms",
		"service crash: exited (status 3), restarting in 40ms",
	}
	if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Errorf("console lines:\n%s\nwant them to start with:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, w := range []string{"service crash: starting", "service crash: running (pid "} {
		if !slices.ContainsFunc(log.All(), func(l string) bool { return strings.HasPrefix(l, w) }) {
			t.Errorf("no console line starting with %q in\n%s", w, strings.Join(log.All(), "\n"))
		}
	}
}

func TestRestartPolicy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		restart Restart
		script  string
		want    string
		state   State
	}{
		{"never-fails", Never, "exit 4", "service never-fails: exited (status 4)", Exited},
		{"onfailure-succeeds", OnFailure, "exit 0", "service onfailure-succeeds: exited (status 0)", Exited},
		{"onfailure-fails", OnFailure, "exit 5", "service onfailure-fails: exited (status 5), restarting in 5ms", Restarting},
		{"killed", Never, "kill -9 $$", "service killed: exited (status 137)", Exited},
		{"missing", Never, "", "service missing: cannot start: fork/exec /nonexistent/program: no such file or directory", Exited},
		// The exit line quotes the run's last output line: why it stopped.
		{"says-why", Never, "echo starting; echo 'E1206 flag --bad: unknown flag' >&2; exit 1", "service says-why: exited (status 1): E1206 flag --bad: unknown flag", Exited},
		{"says-why-again", OnFailure, "echo 'open /x: no such file'; exit 2", "service says-why-again: exited (status 2), restarting in 5ms: open /x: no such file", Restarting},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, log, _ := newTest(t)
			svc := Service{Name: tc.name, Path: "/bin/sh", Args: []string{"-c", tc.script}, Restart: tc.restart,
				Backoff: Backoff{Initial: 5 * time.Millisecond}}
			if tc.script == "" {
				svc.Path = "/nonexistent/program"
			}
			if err := s.Start(svc); err != nil {
				t.Fatal(err)
			}
			if tc.state == Restarting {
				wait(t, s, tc.name, func(st Status) bool { return st.Restarts >= 1 })
			} else {
				wait(t, s, tc.name, func(st Status) bool { return st.State == tc.state })
			}
			if log.Index(tc.want) < 0 {
				t.Errorf("no line %q in\n%s", tc.want, strings.Join(log.All(), "\n"))
			}
		})
	}
}

func TestNeedsWaitForReadinessAndStopInReverse(t *testing.T) {
	s, log, _ := newTest(t)
	flag := filepath.Join(t.TempDir(), "ready")
	// db becomes ready only when its flag file exists; api needs db; web needs api.
	if err := s.Start(Service{Name: "web", Path: "/bin/sleep", Args: []string{"100"}, Needs: []string{"api"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(Service{Name: "api", Path: "/bin/sleep", Args: []string{"100"}, Needs: []string{"db"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(Service{Name: "db", Path: "/bin/sleep", Args: []string{"100"}, Ready: ReadyFile(flag)}); err != nil {
		t.Fatal(err)
	}
	wait(t, s, "db", func(st Status) bool { return st.State == Running })
	if st := s.Status(); st[0].State != Waiting || st[1].State != Waiting {
		t.Fatalf("web and api should wait for db to be ready, got %+v", st)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wait(t, s, "web", func(st Status) bool { return st.State == Ready })

	order := []string{"service db: ready", "service api: starting", "service api: ready", "service web: starting"}
	for i := 1; i < len(order); i++ {
		if a, b := log.Index(order[i-1]), log.Index(order[i]); a < 0 || b < 0 || a > b {
			t.Errorf("want %q before %q in\n%s", order[i-1], order[i], strings.Join(log.All(), "\n"))
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s.Stop(ctx)
	stops := []string{"service web: stopped", "service api: stopped", "service db: stopped"}
	for i := 1; i < len(stops); i++ {
		if a, b := log.Index(stops[i-1]), log.Index(stops[i]); a < 0 || b < 0 || a > b {
			t.Errorf("want %q before %q in\n%s", stops[i-1], stops[i], strings.Join(log.All(), "\n"))
		}
	}
	if err := s.Start(Service{Name: "late", Path: "/bin/true"}); err == nil {
		t.Error("Start after Stop succeeded; want an error")
	}
}

func TestStopKillsAfterGrace(t *testing.T) {
	s, log, _ := newTest(t)
	err := s.Start(Service{
		Name: "stubborn", Path: "/bin/sh",
		// The shell ignores SIGTERM, and so does its child.
		Args:        []string{"-c", "trap '' TERM; echo armed; while :; do sleep 1; done"},
		StopTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, s, "stubborn", func(st Status) bool { return st.State == Ready })
	// Wait until the trap is set before asking it to stop.
	for !strings.Contains(string(s.Output("stubborn")), "armed") {
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s.Stop(ctx)
	st := s.Status()[0]
	if st.State != Stopped || st.LastStatus != 137 {
		t.Errorf("after Stop: state %s, last status %d; want stopped, 137 (SIGKILL)", st.State, st.LastStatus)
	}
	if log.Index("service stubborn: stopped") < 0 {
		t.Errorf("no stopped line in\n%s", strings.Join(log.All(), "\n"))
	}
}

func TestOutputGoesToRingConsoleAndLogFile(t *testing.T) {
	dir := t.TempDir()
	var log, raw lines
	s := New(Options{Log: log.Add, Raw: raw.Add, LogDir: dir, Reaper: &Reaper{}})
	defer s.Stop(context.Background())
	err := s.Start(Service{Name: "talker", Path: "/bin/sh", Args: []string{"-c", "echo one; echo two >&2; printf three"},
		Restart: Never, Console: true})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, s, "talker", func(st Status) bool { return st.State == Exited })
	if got, want := string(s.Output("talker")), "one\ntwo\nthree"; got != want {
		t.Errorf("ring holds %q, want %q", got, want)
	}
	if got, want := raw.All(), []string{"talker| one\n", "talker| two\n", "talker| three\n"}; !slices.Equal(got, want) {
		t.Errorf("console got %q, want %q", got, want)
	}
	data, err := os.ReadFile(filepath.Join(dir, "talker.log"))
	if err != nil || string(data) != "one\ntwo\nthree" {
		t.Errorf("talker.log holds %q (%v), want the output", data, err)
	}
}

func TestReaperTakesOrphansButNotSupervisedChildren(t *testing.T) {
	// Become the subreaper so orphans of our children come to us, as they
	// come to PID 1.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("cannot become a child subreaper: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	r := &Reaper{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)

	var log lines
	s := New(Options{Log: log.Add, Reaper: r})
	defer s.Stop(context.Background())
	// Each run leaves an orphan (the backgrounded sleep) and exits with 7.
	err := s.Start(Service{Name: "parent", Path: "/bin/sh", Args: []string{"-c", "sleep 0.05 & echo $! >> " +
		filepath.Join(t.TempDir(), "orphans") + "; exit 7"},
		Backoff: Backoff{Initial: time.Millisecond, Max: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, s, "parent", func(st Status) bool { return st.Restarts >= 10 })
	for _, l := range log.All() {
		if strings.Contains(l, "exited") && !strings.Contains(l, "(status 7)") {
			t.Errorf("a supervised status was stolen: %q", l)
		}
	}
	// Every orphan is reaped: no zombie children stay behind.
	deadline := time.Now().Add(15 * time.Second)
	for {
		s.Stop(context.Background())
		z := zombieChildren("/proc", os.Getpid())
		alive := childrenOf(os.Getpid())
		if len(z) == 0 && len(alive) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("zombie children %v and live children %v are still there", z, alive)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// childrenOf lists the live (non-zombie) children of ppid.
func childrenOf(ppid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		var p int
		fmt.Sscan(f[1], &p)
		if p == ppid && f[0] != "Z" {
			var pid int
			fmt.Sscan(e.Name(), &pid)
			out = append(out, pid)
		}
	}
	return out
}

func TestBackoffNext(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 5 * time.Second}
	var got []time.Duration
	var d time.Duration
	for range 5 {
		d = b.Next(d)
		got = append(got, d)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	if !slices.Equal(got, want) {
		t.Errorf("delays %v, want %v", got, want)
	}
}

func TestRing(t *testing.T) {
	for _, tc := range []struct {
		size   int
		writes []string
		want   string
	}{
		{8, []string{"abc"}, "abc"},
		{8, []string{"abcdefgh"}, "abcdefgh"},
		{8, []string{"abcdef", "ghij"}, "cdefghij"},
		{4, []string{"abcdefghij"}, "ghij"},
		{4, []string{"ab", "cd", "e"}, "bcde"},
	} {
		r := NewRing(tc.size)
		for _, w := range tc.writes {
			r.Write([]byte(w))
		}
		if got := string(r.Bytes()); got != tc.want {
			t.Errorf("ring(%d) after %q holds %q, want %q", tc.size, tc.writes, got, tc.want)
		}
	}
}

func TestLogFileRotates(t *testing.T) {
	p := filepath.Join(t.TempDir(), "svc.log")
	l := &LogFile{Path: p, Max: 10, Keep: 2}
	for _, w := range []string{"aaaaaaaa\n", "bbbbbbbb\n", "cccccccc\n", "dddddddd\n"} {
		if _, err := l.Write([]byte(w)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	for name, want := range map[string]string{"svc.log": "dddddddd\n", "svc.log.1": "cccccccc\n", "svc.log.2": "bbbbbbbb\n"} {
		got, err := os.ReadFile(filepath.Join(filepath.Dir(p), name))
		if err != nil || string(got) != want {
			t.Errorf("%s holds %q (%v), want %q", name, got, err, want)
		}
	}
	if _, err := os.Stat(p + ".3"); err == nil {
		t.Errorf("%s.3 exists; only 2 old files should be kept", p)
	}
}

func TestGoSurvivesPanic(t *testing.T) {
	done := make(chan struct{})
	Go("test", func() {
		defer close(done)
		var m map[string]int
		m["boom"] = 1 // a nil map write panics
	})
	<-done
	// Still here: the panic was recovered, the process lives on.
}

// Signal reaches a running service; Restart Always runs it again.
func TestSignalRestartsAService(t *testing.T) {
	s, log, _ := newTest(t)
	if err := s.Signal("absent", unix.SIGTERM); err == nil {
		t.Error("Signal to a service that does not exist succeeded")
	}
	if err := s.Start(Service{Name: "sleeper", Path: "/bin/sh", Args: []string{"-c", "exec sleep 60"}, Backoff: Backoff{Initial: 5 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	wait(t, s, "sleeper", func(st Status) bool { return st.State == Ready })
	if err := s.Signal("sleeper", unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st := wait(t, s, "sleeper", func(st Status) bool { return st.Restarts >= 1 && st.State == Ready })
	if st.LastStatus != 128+int(unix.SIGTERM) {
		t.Errorf("last status %d, want %d", st.LastStatus, 128+int(unix.SIGTERM))
	}
	if log.Index("service sleeper: exited (status 143), restarting in 5ms") < 0 {
		t.Errorf("no restart line in\n%s", strings.Join(log.All(), "\n"))
	}
}

func TestPrivateOutputIsNotQuoted(t *testing.T) {
	s, log, _ := newTest(t)
	svc := Service{Name: "kine", Path: "/bin/sh", Args: []string{"-c", "echo 'postgres://cairn:hunter2@db/k'; exit 1"},
		Restart: Never, PrivateOutput: true}
	if err := s.Start(svc); err != nil {
		t.Fatal(err)
	}
	wait(t, s, "kine", func(st Status) bool { return st.State == Exited })
	if log.Index("service kine: exited (status 1)") < 0 {
		t.Errorf("no exit line in\n%s", strings.Join(log.All(), "\n"))
	}
	for _, l := range log.All() {
		if strings.Contains(l, "hunter2") {
			t.Errorf("a private service's output reached the console: %q", l)
		}
	}
}

func TestExitLineQuotesOnlyThisRun(t *testing.T) {
	r := NewRing(16)
	r.Write([]byte("old line\n"))
	mark := r.Total()
	if got := string(r.Since(mark)); got != "" {
		t.Errorf("Since(mark) with nothing new = %q", got)
	}
	r.Write([]byte("new\n"))
	if got := string(r.Since(mark)); got != "new\n" {
		t.Errorf("Since(mark) = %q, want %q", got, "new\n")
	}
	r.Write([]byte("0123456789abcdefXYZ"))
	if got := string(r.Since(mark)); got != "3456789abcdefXYZ" {
		t.Errorf("Since(mark) past the ring's size = %q", got)
	}
}

// TestExitLineSaysWhy: the exit line of a service that dies quotes why, as
// a user reads it on the console: its last output line, or the line that
// introduced a Go stack trace; one line, bounded, printable.
func TestExitLineSaysWhy(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		name, script string
		restart      Restart
		want         string
	}{
		{"klog error, restarted", `echo 'I1207 10:00:00.000000 1 serving.go:386] Generated self-signed cert'; echo 'E1207 10:00:01.000000 1 run.go:72] "command failed" err="failed to wait for the apiserver: context deadline exceeded"' >&2; exit 1`, Always,
			`service kube-scheduler: exited (status 1), restarting in 1h0m0s: E1207 10:00:01.000000 1 run.go:72] "command failed" err="failed to wait for the apiserver: context deadline exceeded"`},
		{"no restart", `echo starting; echo 'Error: unknown flag: --bogus'; exit 2`, Never,
			`service kube-scheduler: exited (status 2): Error: unknown flag: --bogus`},
		{"trailing blank lines, no newline at the end", `printf 'first\nthe reason\n\n\n'; exit 1`, Never,
			`service kube-scheduler: exited (status 1): the reason`},
		{"silent", `exit 1`, Never, `service kube-scheduler: exited (status 1)`},
		{"a long line is cut", `echo ` + long + `; exit 1`, Never,
			`service kube-scheduler: exited (status 1): ` + long[:200] + `…`},
		{"control characters dropped", `printf 'bad \033[31mred\033[0m\r done\n'; exit 1`, Never,
			`service kube-scheduler: exited (status 1): bad [31mred[0m done`},
		{"Go panic", `echo working; printf 'panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation]\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:12 +0x1d\n' >&2; exit 2`, Never,
			`service kube-scheduler: exited (status 2): panic: runtime error: invalid memory address or nil pointer dereference`},
		{"klog Fatal with every goroutine's stack, past the ring", `echo 'F1207 10:00:02.000000 1 server.go:9] unable to load the client CA file: open /var/lib/cairn/pki/ca.crt: no such file or directory'; echo 'goroutine 1 [running]:'; i=0; while [ $i -lt 3000 ]; do printf 'k8s.io/kubernetes/cmd/kube-scheduler/app.Run(0xc000123456)\n\t/src/app/server.go:123 +0x45\n'; i=$((i+1)); done; exit 255`, Never,
			`service kube-scheduler: exited (status 255): F1207 10:00:02.000000 1 server.go:9] unable to load the client CA file: open /var/lib/cairn/pki/ca.crt: no such file or directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log lines
			s := New(Options{Log: log.Add, Raw: func(string) {}, Reaper: &Reaper{}, RingSize: 16 << 10})
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				s.Stop(ctx)
			}()
			svc := Service{Name: "kube-scheduler", Path: "/bin/sh", Args: []string{"-c", tc.script}, Restart: tc.restart, Backoff: Backoff{Initial: time.Hour}}
			if err := s.Start(svc); err != nil {
				t.Fatal(err)
			}
			wait(t, s, "kube-scheduler", func(st Status) bool { return st.State == Exited || st.State == Restarting })
			if log.Index(tc.want) < 0 {
				t.Errorf("no console line\n%s\nin\n%s", tc.want, strings.Join(log.All(), "\n"))
			}
		})
	}
}
