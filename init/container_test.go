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
	if os.Getuid() != 0 {
		t.Skip("the container platform needs root for its namespaces")
	}
	if testing.Short() {
		t.Skip("builds and runs the init")
	}
	bin := buildInit(t)
	root := t.TempDir()
	files := map[string]string{
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
	}
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

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-platform", "container", "-root", root)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var seen []string
	expect := func(re string) {
		t.Helper()
		r := regexp.MustCompile(`^cairn: \[\d{5,}\.\d{3}\] ` + re + `$`)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the init ended before %q; it printed:\n%s", re, strings.Join(seen, "\n"))
				}
				seen = append(seen, l)
				if r.MatchString(l) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no line %q; the init printed:\n%s", re, strings.Join(seen, "\n"))
			}
		}
	}
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
	if os.Getuid() != 0 {
		t.Skip("the container platform needs root for its namespaces")
	}
	if testing.Short() {
		t.Skip("builds and runs the init")
	}
	bin := buildInit(t)
	root := t.TempDir()
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "etc/cairn"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	cfgPath := filepath.Join(root, "etc/cairn/config.yaml")
	bad := "#cloud-config\nhostname: bad-1\nkubernetes:\n  role: boss\n  vip: 10.0.0.300\n"
	if err := os.WriteFile(cfgPath, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}

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
