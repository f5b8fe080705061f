package componenttest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const pgBin = "/usr/lib/postgresql/15/bin"

// proc is a server process the test started; its output goes to a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan error
}

func start(t *testing.T, dir, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	return p
}

// stop asks the process to end (sig), and kills it if it has not after 30 s.
func (p *proc) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not stop on %v within 30 s; killed it", p.name, sig)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports whether the process ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case err := <-p.done:
		p.done <- err
		return true, err
	default:
		return false, nil
	}
}

// waitFor polls cond until it holds; it fails the test when a watched process
// exits first or the bound passes.
func waitFor(t *testing.T, what string, bound time.Duration, cond func() error, watch ...*proc) {
	t.Helper()
	deadline := time.Now().Add(bound)
	var last error
	for time.Now().Before(deadline) {
		if last = cond(); last == nil {
			return
		}
		for _, p := range watch {
			if ok, err := p.exited(); ok {
				t.Fatalf("%s exited (%v) while waiting for %s; its log ends:\n%s", p.name, err, what, tail(p.log, 3000))
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	msg := fmt.Sprintf("%s: not within %v: %v", what, bound, last)
	for _, p := range watch {
		msg += fmt.Sprintf("\n--- %s log ends:\n%s", p.name, tail(p.log, 3000))
	}
	t.Fatal(msg)
}

// postgres starts a real PostgreSQL on 127.0.0.1 in a fresh data directory,
// as the postgres user (initdb refuses root), with a random password for the
// role "cairn". It returns the port and password.
func postgres(t *testing.T) (int, string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		t.Fatalf("PostgreSQL 15 is needed: %v; install postgresql (make deps)", err)
	}
	pw := make([]byte, 16)
	if _, err := rand.Read(pw); err != nil {
		t.Fatal(err)
	}
	password := hex.EncodeToString(pw)

	dir, err := os.MkdirTemp("", "cairn-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, initdb needs another user: %v; install postgresql, which creates the postgres user", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	as := func(cmd *exec.Cmd) *exec.Cmd {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = dir
		return cmd
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		if err := os.Chown(pwfile, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	out, err := as(exec.Command(filepath.Join(pgBin, "initdb"), "-D", data, "-U", "cairn",
		"--auth=scram-sha-256", "--pwfile="+pwfile, "--no-sync")).CombinedOutput()
	if err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	os.Remove(pwfile)
	port := freePort(t)
	pg := start(t, dir, "postgres", as(exec.Command(filepath.Join(pgBin, "postgres"), "-D", data,
		"-k", dir, "-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(port), "-c", "fsync=off")))
	t.Cleanup(func() { pg.stop(t, syscall.SIGINT) })
	waitFor(t, "PostgreSQL accepting connections", time.Minute, func() error {
		return exec.Command(filepath.Join(pgBin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(port)).Run()
	}, pg)
	return port, password
}

// TestControlPlaneOnPostgres starts kine against a real PostgreSQL and
// kube-apiserver against kine, with certificates made here, and waits for the
// apiserver's /readyz to answer "ok" to an admin client.
func TestControlPlaneOnPostgres(t *testing.T) {
	bin := filepath.Join(tree(t, "amd64"), "usr/bin")
	pgPort, password := postgres(t)
	dir := t.TempDir()

	// The datastore URL carries the password: it goes to kine through the
	// environment, never on a command line.
	kinePort := freePort(t)
	kine := exec.Command(filepath.Join(bin, "kine"), "--listen-address", addr(kinePort))
	kine.Env = append(os.Environ(), "KINE_ENDPOINT=postgres://cairn:"+password+"@"+addr(pgPort)+"/kubernetes?sslmode=disable")
	kp := start(t, dir, "kine", kine)
	t.Cleanup(func() { kp.stop(t, syscall.SIGTERM) }) // after the apiserver: cleanups run last-in first-out
	waitFor(t, "kine listening", 2*time.Minute, func() error {
		c, err := net.Dial("tcp", addr(kinePort))
		if err == nil {
			c.Close()
		}
		return err
	}, kp)

	p := newPKI(t, dir)
	apiPort := freePort(t)
	api := start(t, dir, "kube-apiserver", exec.Command(filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers=http://"+addr(kinePort),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort),
		"--cert-dir="+dir,
		"--tls-cert-file="+p.serverCert, "--tls-private-key-file="+p.serverKey,
		"--client-ca-file="+p.caFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p.serviceAccPub,
		"--service-account-signing-key-file="+p.serviceAccountKey,
		"--service-cluster-ip-range=10.43.0.0/16",
		"--authorization-mode=Node,RBAC",
		"--profiling=false",
	))
	t.Cleanup(func() { api.stop(t, syscall.SIGTERM) })

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: p.adminTLS(t)}}
	url := "https://" + addr(apiPort) + "/readyz"
	waitFor(t, "GET "+url, 3*time.Minute, func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
			return fmt.Errorf("%s: %q", resp.Status, body)
		}
		return nil
	}, api, kp)

	// kubectl reads back what the apiserver stored...
	out, err := exec.Command(filepath.Join(bin, "kubectl"), "--server=https://"+addr(apiPort),
		"--certificate-authority="+p.caFile, "--client-certificate="+p.adminCert, "--client-key="+p.adminKey,
		"get", "namespace", "kube-system", "-o", "name").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "namespace/kube-system" {
		t.Errorf("kubectl get namespace kube-system: %v\n%s", err, out)
	}

	// ...and it is in PostgreSQL: kine's table holds the namespace's key.
	psql := exec.Command(filepath.Join(pgBin, "psql"), "-h", "127.0.0.1", "-p", strconv.Itoa(pgPort), "-U", "cairn",
		"-d", "kubernetes", "-tAc", "SELECT count(*) FROM kine WHERE name = '/registry/namespaces/kube-system'")
	psql.Env = append(os.Environ(), "PGPASSWORD="+password)
	out, err = psql.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) == "0" {
		t.Errorf("PostgreSQL has no row for /registry/namespaces/kube-system: %v\n%s", err, out)
	}
}
