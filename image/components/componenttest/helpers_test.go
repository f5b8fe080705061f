package componenttest

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// versions are the pins of versions.env, read the way build.sh reads them.
type versions map[string]string

func loadVersions(t *testing.T) versions {
	t.Helper()
	data, err := os.ReadFile("../versions.env")
	if err != nil {
		t.Fatalf("reading versions.env: %v", err)
	}
	v := versions{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, val, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("versions.env: %q is not KEY=VALUE", line)
		}
		v[k] = val
	}
	return v
}

// tree returns out/components/linux-<arch>, skipping the test when the
// components were not built for it.
func tree(t *testing.T, arch string) string {
	t.Helper()
	dir := os.Getenv("CAIRN_COMPONENTS")
	if dir == "" {
		t.Skip("CAIRN_COMPONENTS is not set; run `make components-test` to build the components and test them")
	}
	root := filepath.Join(dir, "linux-"+arch)
	if _, err := os.Stat(filepath.Join(root, "usr/bin/cairn-node")); err != nil {
		t.Fatalf("no components for %s: %v; run `make components`", arch, err)
	}
	return root
}

// manifest is usr/share/cairn/components.json.
type manifest struct {
	Arch       string `json:"arch"`
	Components []struct {
		Component string `json:"component"`
		Version   string `json:"version"`
		Path      string `json:"path"`
		SHA256    string `json:"sha256"`
	} `json:"components"`
}

func loadManifest(t *testing.T, root string) manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "usr/share/cairn/components.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("components.json: %v", err)
	}
	return m
}

// run runs a command with a bound on its time and returns its combined output.
func run(t *testing.T, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent")
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), &timeoutError{name, timeout}
	}
}

type timeoutError struct {
	name    string
	timeout time.Duration
}

func (e *timeoutError) Error() string { return e.name + " did not finish within " + e.timeout.String() }

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// tail returns the last n bytes of a log file, for failure messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}
