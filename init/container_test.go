package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestContainerPlatform runs the real init on the container platform, on a
// system image directory with a baked config, and checks what a user sees:
// the console lines, the applied config inside the node, and an orderly
// stop on SIGTERM.
func TestContainerPlatform(t *testing.T) {
	skipUnlessContainer(t)
	bin := buildInit(t)
	root := t.TempDir()
	systemImage(t, root, map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/false\nnode:x:1000:1000::/:/bin/false\n",
		"etc/group":  "root:x:0:\nnode:x:1000:\n",
		"etc/cairn/config.yaml": `#cloud-config
hostname: box-1
write_files:
  - path: /etc/demo/owned.txt
    content: aGVsbG8=
    encoding: b64
    owner: node:node
    permissions: "0640"
`,
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-platform", "container", "-root", root)
	expect := startInit(t, ctx, cmd, stamp).expect
	expect(`init: starting cairn \S+ on \w+ \(container\)`)
	expect(`config: loaded from /etc/cairn/config\.yaml`)
	// The identity line, though the node runs nothing (its network
	// namespace has loopback only).
	expect(`init: this is box-1, with no address yet`)
	expect(`node: nothing to run: this image has no node components`)

	// The node's root is the image under an overlay; the image is untouched.
	node := nodePID(t, cmd.Process.Pid)
	nodeRoot := filepath.Join("/proc", node, "root")
	if got, _ := os.ReadFile(filepath.Join(nodeRoot, "etc/hostname")); string(got) != "box-1\n" {
		t.Errorf("/etc/hostname in the node holds %q, want box-1", got)
	}
	p := filepath.Join(nodeRoot, "etc/demo/owned.txt")
	st, err := os.Stat(p)
	if err != nil {
		t.Fatalf("write_files: %v", err)
	}
	data, _ := os.ReadFile(p)
	sys := st.Sys().(*syscall.Stat_t)
	if string(data) != "hello" || st.Mode().Perm() != 0o640 || sys.Uid != 1000 || sys.Gid != 1000 {
		t.Errorf("owned.txt: %q mode %v owner %d:%d; want \"hello\" 0640 1000:1000", data, st.Mode().Perm(), sys.Uid, sys.Gid)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/demo")); err == nil {
		t.Errorf("write_files reached the image directory %s; it must stay in the overlay", root)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	expect(`shutdown: poweroff requested by SIGTERM`)
	expect(`shutdown: all services stopped`)
	expect(`shutdown: powering off`)
	if err := cmd.Wait(); err != nil {
		t.Errorf("the init ended with %v, want status 0 after a poweroff", err)
	}
}

// skipUnlessContainer skips t unless it may run the init on the container
// platform: as root, without -short.
func skipUnlessContainer(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("the container platform needs root for its namespaces")
	}
	if testing.Short() {
		t.Skip("builds and runs the init")
	}
}

// systemImage makes root a system image's directory: files (path:
// content, mode 0644) and the directories the init mounts on.
func systemImage(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
}

// stamp is the regexp of the time the init puts after "cairn: ".
const stamp = `\[\d{5,}\.\d{3}\] `

// initLines is the output of an init a test started, read as it comes.
type initLines struct {
	t     *testing.T
	ctx   context.Context
	lines chan string
	seen  []string
	stamp string
}

// startInit starts cmd with its standard output and error read into the
// returned initLines; each line of it starts "cairn: " and a match of
// stamp.
func startInit(t *testing.T, ctx context.Context, cmd *exec.Cmd, stamp string) *initLines {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &initLines{t: t, ctx: ctx, lines: make(chan string, 100), stamp: stamp}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l.lines <- sc.Text()
		}
		close(l.lines)
	}()
	return l
}

// expect waits for the line "cairn: STAMP RE" and fails the test, with
// all the init printed, when the init ends or ctx is done first.
func (l *initLines) expect(re string) {
	l.t.Helper()
	r := regexp.MustCompile(`^cairn: ` + l.stamp + re + `$`)
	for {
		select {
		case line, ok := <-l.lines:
			if !ok {
				l.t.Fatalf("the init ended before %q; it printed:\n%s", re, strings.Join(l.seen, "\n"))
			}
			l.seen = append(l.seen, line)
			if r.MatchString(line) {
				return
			}
		case <-l.ctx.Done():
			l.t.Fatalf("no line %q; the init printed:\n%s", re, strings.Join(l.seen, "\n"))
		}
	}
}

// nodePID finds the container's PID 1 (the launcher's child), as the host sees it.
func nodePID(t *testing.T, launcher int) string {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "PPid:" && f[1] == strconv.Itoa(launcher) {
				return e.Name()
			}
		}
	}
	t.Fatalf("no child of the launcher %d", launcher)
	return ""
}

// TestRefusesToRunAsAnOrdinaryProcess: started by hand on a host, the init
// must not mount, take Ctrl-Alt-Del or power the host off.
func TestRefusesToRunAsAnOrdinaryProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the init")
	}
	bin := buildInit(t)
	for _, args := range [][]string{{}, {"-platform", "container"}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{} // no $container
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("init %v: %v, want exit status 2", args, err)
		}
		if !regexp.MustCompile(`^cairn: \[\d{5,}\.\d{3}\] init: (not PID 1|the container platform needs -root)`).Match(out) {
			t.Errorf("init %v printed %q, want it to say why it refuses", args, out)
		}
	}
}

var (
	buildOnce sync.Once
	builtInit string
	buildErr  error
)

// buildInit builds this package's program once for the tests.
func buildInit(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cairn-init-test-")
		if err != nil {
			buildErr = err
			return
		}
		builtInit = filepath.Join(dir, "init")
		if out, err := exec.Command("go", "build", "-o", builtInit, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtInit
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtInit != "" {
		os.RemoveAll(filepath.Dir(builtInit))
	}
	os.Exit(code)
}

// TestContainerPlatformBadConfig: an invalid config prints every error
// with its location, applies nothing, and the node keeps retrying; once the
// file is fixed, it loads without a restart.
func TestContainerPlatformBadConfig(t *testing.T) {
	skipUnlessContainer(t)
	bin := buildInit(t)
	root := t.TempDir()
	systemImage(t, root, map[string]string{
		"etc/cairn/config.yaml": "#cloud-config\nhostname: bad-1\nkubernetes:\n  role: boss\n  vip: 10.0.0.300\n",
	})
	cfgPath := filepath.Join(root, "etc/cairn/config.yaml")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-platform", "container", "-root", root)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	var seen []string
	expect := func(re string) {
		t.Helper()
		r := regexp.MustCompile(`^cairn: \[\d{5,}\.\d{3}\] ` + re + `$`)
		for sc.Scan() {
			seen = append(seen, sc.Text())
			if strings.Contains(sc.Text(), "config: loaded") && !strings.Contains(re, "loaded") {
				t.Fatalf("an invalid config was loaded:\n%s", strings.Join(seen, "\n"))
			}
			if r.MatchString(sc.Text()) {
				return
			}
		}
		t.Fatalf("no line %q; the init printed:\n%s", re, strings.Join(seen, "\n"))
	}
	expect(`config: /etc/cairn/config\.yaml:4:9: error: .*boss.*`)
	expect(`config: /etc/cairn/config\.yaml:5:8: error: .*10\.0\.0\.300.*`)
	expect(`config: invalid, nothing applied; retrying sources in 5s`)
	node := nodePID(t, cmd.Process.Pid)
	if got, _ := os.ReadFile(filepath.Join("/proc", node, "root/etc/hostname")); strings.Contains(string(got), "bad-1") {
		t.Errorf("the hostname of an invalid config was applied")
	}

	if err := os.WriteFile(cfgPath, []byte("#cloud-config\nhostname: good-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	expect(`config: loaded from /etc/cairn/config\.yaml`)
	// The hostname is applied right after that line.
	for {
		got, _ := os.ReadFile(filepath.Join("/proc", node, "root/etc/hostname"))
		if string(got) == "good-1\n" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("/etc/hostname holds %q after the fix, want good-1", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
