//go:build qemu

package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/qemu"
	"github.com/cairn-os/cairn/qemu/container"
)

// The container platform: the real init as PID 1 of new namespaces on this
// host, on a root made of the base overlay and the node components, each
// node in its own network namespace with eth0 on a test bridge. It is the
// fast bed for multi-node tests; the QEMU tests cover the boot path.

// componentsDir is the node components' tree for this machine's arch:
// $CAIRN_COMPONENTS, else out/components (`make components`).
func componentsDir(t *testing.T) string {
	t.Helper()
	d := os.Getenv("CAIRN_COMPONENTS")
	if d == "" {
		d = filepath.Join(repoRoot(), "out", "components")
	}
	tree := filepath.Join(d, "linux-"+runtime.GOARCH)
	if _, err := os.Stat(filepath.Join(tree, "usr/bin/cairn-node")); err != nil {
		t.Fatalf("no node components in %s: run `make components` (or set CAIRN_COMPONENTS)", tree)
	}
	return tree
}

var initBuilt built

// initBinary builds the init of this tree once per run.
func initBinary(t *testing.T) string {
	t.Helper()
	return initBuilt.get(t, func() (string, error) {
		path := filepath.Join(workDir, "init")
		return path, goBuild(path, "./init")
	})
}

// nodeRoot makes a node's root: the base overlay, the components
// (hard links, so it costs no space), and config as /etc/cairn/config.yaml.
func nodeRoot(t *testing.T, config string) string {
	t.Helper()
	root := t.TempDir()
	for _, src := range []string{filepath.Join(repoRoot(), "overlays/base"), componentsDir(t)} {
		if out, err := exec.Command("cp", "-al", src+"/.", root).CombinedOutput(); err != nil {
			t.Fatalf("cp -al %s: %v\n%s", src, err, out)
		}
	}
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "var/lib", "etc/cairn"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/cairn/config.yaml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return root
}

// containerNode is one running init on the container platform.
type containerNode struct {
	name  string
	cmd   *exec.Cmd
	netns string // its network namespace, deleted once it stops

	mu    sync.Mutex
	lines []string
	more  chan struct{} // closed and replaced when a line arrives
	done  chan struct{}
}

// startNode runs the init on root in the network namespace netns; its
// console goes to out/test-logs/TEST-NAME.log.
func startNode(t *testing.T, name, root, netns string) *containerNode {
	t.Helper()
	logf, err := os.Create(filepath.Join(logDir(t), strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	// cairn.debug: the components' output goes to the console log too.
	cmd := exec.Command(initBinary(t), "-platform", "container", "-root", root, "-netns", netns,
		"-cmdline", "cairn.platform=container cairn.debug")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &containerNode{name: name, cmd: cmd, netns: netns, more: make(chan struct{}), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			n.mu.Lock()
			n.lines = append(n.lines, sc.Text())
			close(n.more)
			n.more = make(chan struct{})
			n.mu.Unlock()
		}
		cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() { n.kill(); logf.Close() })
	return n
}

// expect waits for a console line matching re (after the init's
// "cairn: [time] " prefix) and returns its submatches.
func (n *containerNode) expect(t *testing.T, d time.Duration, re string) []string {
	t.Helper()
	r := regexp.MustCompile(`^cairn: \[\s*\d+\.\d+\] ` + re)
	deadline := time.After(d)
	seen := 0
	for {
		n.mu.Lock()
		lines, more := n.lines, n.more
		n.mu.Unlock()
		for ; seen < len(lines); seen++ {
			if m := r.FindStringSubmatch(lines[seen]); m != nil {
				return m
			}
		}
		select {
		case <-more:
		case <-n.done:
			n.mu.Lock()
			if len(n.lines) == seen {
				n.mu.Unlock()
				t.Fatalf("%s ended before a line %q; its console:\n%s", n.name, re, n.tail(40))
			}
			n.mu.Unlock()
		case <-deadline:
			t.Fatalf("%s printed no line %q within %s; its console:\n%s", n.name, re, d, n.tail(40))
		}
	}
}

// tail is the last n console lines.
func (n *containerNode) tail(k int) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.lines
	if len(l) > k {
		l = l[len(l)-k:]
	}
	return strings.Join(l, "\n")
}

// initRSS is the resident memory of the node's PID 1 (the launcher's
// child), in KiB, or 0 when it cannot be read.
func (n *containerNode) initRSS() int {
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", n.cmd.Process.Pid, n.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(kids))
	if len(f) == 0 {
		return 0
	}
	status, err := os.ReadFile("/proc/" + f[0] + "/status")
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb
		}
	}
	return 0
}

// console is everything the node printed.
func (n *containerNode) console() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.lines, "\n")
}

// noSecretOnConsole fails t for each node whose console shows one of
// secrets, naming the line of its console log (not the secret).
func noSecretOnConsole(t *testing.T, nodes []*containerNode, secrets ...string) {
	t.Helper()
	for _, n := range nodes {
		n.mu.Lock()
		lines := n.lines
		n.mu.Unlock()
	lines:
		for i, l := range lines {
			for _, s := range secrets {
				if strings.Contains(l, s) {
					t.Errorf("%s's console shows a secret on line %d of its log", n.name, i+1)
					break lines
				}
			}
		}
	}
}

// stop asks for an orderly shutdown and waits for it.
func (n *containerNode) stop(t *testing.T) {
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		n.dropNetns()
	case <-time.After(2 * time.Minute):
		t.Errorf("%s did not stop within 2 minutes of SIGTERM", n.name)
		n.kill()
	}
}

func (n *containerNode) kill() {
	if n.cmd.Process != nil {
		n.cmd.Process.Kill()
	}
	<-n.done
	n.dropNetns()
}

// dropNetns deletes the stopped node's network namespace: it keeps the
// node's address on a link of the bridge, and a node started again with
// the same address in a new namespace would share it with a stack that
// answers every connection with a reset (TestEtcdSnapshot's restart got
// "connection refused" from it).
func (n *containerNode) dropNetns() {
	if n.netns != "" {
		exec.Command("ip", "netns", "delete", filepath.Base(n.netns)).Run()
	}
}

// postgres is Debian's PostgreSQL run by a test inside ns, listening on
// addr:5432 with password authentication; stop and start take it away and
// bring it back with its data.
type postgres struct {
	ns   *qemu.Netns
	dir  string
	addr string
	cmd  *exec.Cmd
}

const pgPassword = "pg-s3cret-pw"

func startPostgres(t *testing.T, ns *qemu.Netns, addr string) *postgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		t.Fatal("PostgreSQL is not installed: run `make deps`")
	}
	bin := filepath.Dir(bins[len(bins)-1])
	base, err := os.MkdirTemp("/var/tmp", "cairn-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir := filepath.Join(base, "data")
	pw := filepath.Join(base, "pw")
	os.WriteFile(pw, []byte(pgPassword+"\n"), 0o600)
	exec.Command("chown", "-R", "postgres:postgres", base).Run()
	os.Chmod(base, 0o755)
	out, err := exec.Command("runuser", "-u", "postgres", "--", filepath.Join(bin, "initdb"), "-D", dir,
		"--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile="+pw, "-U", "postgres").CombinedOutput()
	if err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	// initdb allows TCP from loopback only; the servers are on the bridge.
	hba, err := os.OpenFile(filepath.Join(dir, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(hba, "host all all 192.168.0.0/16 scram-sha-256")
	hba.Close()
	p := &postgres{ns: ns, dir: dir, addr: addr}
	p.start(t, bin)
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *postgres) start(t *testing.T, bin string) {
	t.Helper()
	// setpriv execs postgres in place: signals reach it, not a wrapper.
	cmd := p.ns.Command(context.Background(), "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", filepath.Join(bin, "postgres"),
		"-D", p.dir, "-c", "listen_addresses="+p.addr, "-c", "unix_socket_directories="+filepath.Dir(p.dir),
		"-c", "max_connections=200", "-c", "fsync=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := p.ns.DialContext(context.Background(), "tcp", p.addr+":5432")
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("PostgreSQL did not listen on %s:5432: %v\n%s", p.addr, err, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *postgres) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	// SIGINT: PostgreSQL's fast shutdown.
	p.cmd.Process.Signal(syscall.SIGINT)
	p.cmd.Wait()
	p.cmd = nil
}

// psql runs one SQL statement on the kine database and returns its
// unaligned output.
func (p *postgres) psql(sql string) (string, error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
	psql := "psql"
	if len(bins) > 0 {
		psql = bins[len(bins)-1]
	}
	cmd := p.ns.Command(context.Background(), psql, "-h", p.addr, "-U", "postgres", "-d", "kine", "-At", "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pgPassword)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *postgres) endpoint() string {
	return fmt.Sprintf("postgres://postgres:%s@%s:5432/kine?sslmode=disable", pgPassword, p.addr)
}

// serverConfig is a server's cloud-config on the test bridge.
func serverConfig(name, addr, token, datastore string, extra ...string) string {
	return fmt.Sprintf(`#cloud-config
hostname: %s
network:
  version: 2
  ethernets:
    eth0:
      addresses: [%s/24]
kubernetes:
  role: server
  token: %s
  datastore-endpoint: %q
%s`, name, addr, token, datastore, strings.Join(extra, "\n"))
}

// apiClient reaches apiservers on the test bridge with a kubeconfig's
// client certificate.
type apiClient struct {
	hc *http.Client
}

func newAPIClient(t *testing.T, ns *qemu.Netns, kubeconfig []byte) *apiClient {
	t.Helper()
	admin, err := kube.ParseKubeconfig(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return &apiClient{hc: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: admin.TLS, DialContext: ns.DialContext}}}
}

func (c *apiClient) do(method, url string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, data, err
}

// waitReady polls /readyz at server until it answers 200.
func (c *apiClient) waitReady(t *testing.T, server string, d time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		code, body, err := c.do("GET", server+"/readyz", nil)
		if code == 200 {
			return time.Since(began)
		}
		if time.Since(began) > d {
			t.Fatalf("%s/readyz did not answer 200 within %s: %d %v %s", server, d, code, err, body)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// startMariaDB runs Debian's MariaDB inside ns on addr:3306 with a user
// "kine" that logs in with a password from anywhere, and returns the
// k3s-form endpoint.
func startMariaDB(t *testing.T, ns *qemu.Netns, addr string) string {
	t.Helper()
	base, err := os.MkdirTemp("/var/tmp", "cairn-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	dir, sock := filepath.Join(base, "data"), filepath.Join(base, "sock")
	exec.Command("chown", "mysql:mysql", base).Run()
	if out, err := exec.Command("mariadb-install-db", "--user=mysql", "--datadir="+dir, "--auth-root-authentication-method=socket", "--skip-test-db").CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	cmd := ns.Command(context.Background(), "mariadbd", "--no-defaults", "--user=mysql", "--datadir="+dir, "--socket="+sock,
		"--bind-address="+addr, "--port=3306", "--pid-file="+filepath.Join(base, "pid"), "--innodb-flush-log-at-trx-commit=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	deadline := time.Now().Add(2 * time.Minute)
	for {
		sql := "CREATE USER IF NOT EXISTS 'kine'@'%' IDENTIFIED BY '" + pgPassword + "'; GRANT ALL ON *.* TO 'kine'@'%';"
		if o, err := exec.Command("mariadb", "--no-defaults", "-S", sock, "-u", "root", "-e", sql).CombinedOutput(); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("MariaDB did not take the user: %v %s\n%s", err, o, out.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Sprintf("mysql://kine:%s@tcp(%s:3306)/kine", pgPassword, addr)
}

// startExternalEtcd runs Debian's etcd inside ns on addr:2379, TLS with
// client certificates as `cairn cluster up` runs it, and returns its
// endpoint and the lines of a server's config (under serverConfig's
// kubernetes: section) that give the server its client certificate.
func startExternalEtcd(t *testing.T, ns *qemu.Netns, addr string) (string, []string) {
	t.Helper()
	ip := netip.MustParseAddr(addr)
	certs, err := container.NewEtcdTLS(ip)
	if err != nil {
		t.Fatal(err)
	}
	args, err := certs.ServerArgs(t.TempDir(), ip)
	if err != nil {
		t.Fatal(err)
	}
	client := container.EtcdEndpoint(ip)
	extra := []string{"  datastore-cafile: " + container.EtcdCAFile, "  datastore-certfile: " + container.EtcdCertFile,
		"  datastore-keyfile: " + container.EtcdKeyFile, "write_files:"}
	for _, f := range []struct {
		path, mode string
		data       []byte
	}{{container.EtcdCAFile, "0644", certs.CA}, {container.EtcdCertFile, "0644", certs.ClientCert}, {container.EtcdKeyFile, "0600", certs.ClientKey}} {
		extra = append(extra, "  - path: "+f.path, `    permissions: "`+f.mode+`"`, "    content: |")
		for l := range strings.SplitSeq(strings.TrimSpace(string(f.data)), "\n") {
			extra = append(extra, "      "+l)
		}
	}
	cmd := ns.Command(context.Background(), "etcd", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := ns.DialContext(context.Background(), "tcp", addr+":2379")
		if err == nil {
			c.Close()
			return client, extra
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd did not listen on %s: %v\n%s", client, err, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
