package etcdsnap

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/init/node/pki"
)

// testEtcd is Debian's etcd run by a test on loopback ports, clients on
// TLS with a client certificate as a cairn server's member takes them.
type testEtcd struct {
	t              *testing.T
	bin, dir, name string
	client, peer   string
	tls            *tls.Config
	cancel         func()
	done           chan struct{}
	out            *strings.Builder
}

func newTestEtcd(t *testing.T) *testEtcd {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd is not installed (make deps installs etcd-server)")
	}
	dir := t.TempDir()
	now := time.Now()
	ca, err := pki.NewCA("test-etcd-ca", now)
	if err != nil {
		t.Fatal(err)
	}
	c := pki.Cluster{"ca": ca}
	srv, err := c.Issue("ca", pki.Leaf{CommonName: "etcd", Server: true, Client: true, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, now)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := c.Issue("ca", pki.Leaf{CommonName: "client", Client: true}, now)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"ca.crt": ca.Cert, "server.crt": srv.Cert, "server.key": srv.Key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pair, err := tls.X509KeyPair(cli.Cert, cli.Key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.Cert)
	var ports []int
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return &testEtcd{t: t, bin: bin, dir: filepath.Join(dir, "state", "etcd"), name: "s1",
		client: fmt.Sprintf("https://127.0.0.1:%d", ports[0]), peer: fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		tls: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}
}

func (e *testEtcd) certs() string { return filepath.Dir(filepath.Dir(e.dir)) }

// start runs etcd on its data directory and waits until it answers.
func (e *testEtcd) start() {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := e.certs()
	cmd := exec.CommandContext(ctx, e.bin, "--name="+e.name, "--data-dir="+e.dir,
		"--listen-client-urls="+e.client, "--advertise-client-urls="+e.client,
		"--listen-peer-urls="+e.peer, "--initial-advertise-peer-urls="+e.peer, "--initial-cluster="+e.name+"="+e.peer,
		"--client-cert-auth", "--trusted-ca-file="+filepath.Join(d, "ca.crt"),
		"--cert-file="+filepath.Join(d, "server.crt"), "--key-file="+filepath.Join(d, "server.key"),
		"--log-level=error")
	// Stopped as the supervisor stops it: SIGTERM, and etcd writes its
	// database before it exits.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	e.out = &strings.Builder{}
	cmd.Stdout, cmd.Stderr = e.out, e.out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.done = make(chan struct{})
	go func() { cmd.Wait(); close(e.done) }()
	e.cancel = cancel
	e.t.Cleanup(e.stop)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		cli := e.clientv3()
		c, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Get(c, "probe")
		cancel()
		cli.Close()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("etcd did not answer: %v\n%s", err, e.out.String())
		}
	}
}

func (e *testEtcd) stop() {
	if e.cancel != nil {
		e.cancel()
		<-e.done
		e.cancel = nil
	}
}

func (e *testEtcd) config() clientv3.Config {
	return clientv3.Config{Endpoints: []string{e.client}, TLS: e.tls, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
}

func (e *testEtcd) clientv3() *clientv3.Client {
	e.t.Helper()
	cli, err := clientv3.New(e.config())
	if err != nil {
		e.t.Fatal(err)
	}
	return cli
}

func (e *testEtcd) put(key string) {
	e.t.Helper()
	cli := e.clientv3()
	defer cli.Close()
	if _, err := cli.Put(context.Background(), key, "v"); err != nil {
		e.t.Fatal(err)
	}
}

// has says whether key is in etcd, and the store's revision.
func (e *testEtcd) has(key string) (bool, int64) {
	e.t.Helper()
	cli := e.clientv3()
	defer cli.Close()
	r, err := cli.Get(context.Background(), key)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(r.Kvs) == 1, r.Header.Revision
}

// clock is a test's clock: each reading a second later.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// lines collects console lines.
type lines struct {
	mu sync.Mutex
	l  []string
}

func (l *lines) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.l = append(l.l, fmt.Sprintf(format, args...))
}

func (l *lines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.l)
}

func fileSHA(t *testing.T, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func copyFile(t *testing.T, src, dst string) {
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// The round trip a user makes: snapshots of a running member, plain, zip
// (as k3s writes) and zstd, written whole with mode 0600 and the newest
// kept; a restore of one into a new single-member cluster (a key written
// before the snapshot is there, one written after is not), the old data
// kept aside; the next boot with the same config does nothing and says
// to remove the keys; a reset without a snapshot keeps the member's data.
func TestSnapshotRetentionRestore(t *testing.T) {
	e := newTestEtcd(t)
	e.start()
	state := filepath.Dir(e.dir)
	dir := filepath.Join(state, "etcd-snapshots")
	clk := &clock{t: time.Unix(1_765_000_000, 0)}
	o := Options{Node: "s1", Etcd: e.config(), Dir: dir, Name: "etcd-snapshot", Retention: 2, Now: clk.now}

	e.put("before")
	o.Compress = config.CompressZstd
	s1, err := Take(context.Background(), o, "")
	if err != nil {
		t.Fatal(err)
	}
	e.put("after")
	o.Compress = config.CompressZip
	s2, err := Take(context.Background(), o, "r1")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		snap       string
		want, path string
	}{{s1.Name, "etcd-snapshot-s1-1765000001.zst", s1.Path}, {s2.Name, "etcd-snapshot-s1-1765000002.zip", s2.Path}} {
		if s.snap != s.want || s.path != filepath.Join(dir, s.want) {
			t.Errorf("snapshot %s at %s; want %s in %s", s.snap, s.path, s.want, dir)
		}
		st, err := os.Stat(s.path)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want a file of mode 0600", s.path, err, st.Mode().Perm())
		}
	}
	if s1.SHA256 != fileSHA(t, s1.Path) || s1.Size == 0 || s2.Request != "r1" || s2.Node != "s1" {
		t.Errorf("the record of the snapshots: %+v %+v", s1, s2)
	}
	// Both are kept aside before retention takes them: the restores use them.
	keep := t.TempDir()
	copyFile(t, s1.Path, filepath.Join(keep, "s1.zst"))
	copyFile(t, s2.Path, filepath.Join(keep, "s2.zip"))

	// Retention: the newest two of this server's snapshots; another
	// server's file and a stranger are left alone.
	for _, f := range []string{"etcd-snapshot-s2-1765000000.zip", "notes.txt"} {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600)
	}
	o.Compress = config.CompressNone
	var kept []string
	for range 2 {
		s, err := Take(context.Background(), o, "")
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, s.Name)
		removed, err := Prune(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("took %s (%d bytes), removed %v", s.Name, s.Size, removed)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	want := []string{"etcd-snapshot-s1-1765000003", "etcd-snapshot-s1-1765000004", "etcd-snapshot-s2-1765000000.zip", "notes.txt"}
	if !slices.Equal(names, want) || !slices.Equal(kept, want[:2]) {
		t.Errorf("the snapshot directory holds %v; want %v (no .part files, the oldest two of s1 removed)", names, want)
	}

	// A restore from the zstd snapshot, etcd stopped as a boot finds it.
	e.stop()
	var console lines
	ro := ResetOptions{Reset: true, RestorePath: filepath.Join(keep, "s1.zst"), DataDir: e.dir, StateDir: state,
		Member: "s1", PeerURL: e.peer, Printf: console.printf, Now: clk.now}
	if err := Reset(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	e.start()
	before, rev := e.has("before")
	after, _ := e.has("after")
	if !before || after {
		t.Errorf("after the restore: before %v, after %v; want the key written before the snapshot only", before, after)
	}
	if rev < revisionBump {
		t.Errorf("the restored revision is %d; want it bumped past %d", rev, revisionBump)
	}
	asides, _ := filepath.Glob(e.dir + ".before-reset-*")
	if len(asides) != 1 {
		t.Errorf("the data before the restore: %v; want it kept aside once", asides)
	}
	cli := e.clientv3()
	ml, err := cli.MemberList(context.Background())
	cli.Close()
	if err != nil || len(ml.Members) != 1 || ml.Members[0].Name != "s1" || !slices.Equal(ml.Members[0].PeerURLs, []string{e.peer}) {
		t.Errorf("the restored cluster's members: %v %v; want s1 alone at %s", ml, err, e.peer)
	}
	said := console.all()
	if len(said) != 1 || !strings.HasPrefix(said[0], "etcd: restored "+ro.RestorePath+" into a new etcd cluster of one member (s1); the data it had is kept in "+asides[0]+". Remove cluster-reset and cluster-reset-restore-path from this server's config") {
		t.Errorf("the console says %q", said)
	}
	if st, err := os.Stat(filepath.Join(state, MarkerName)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the marker: %v %v", st, err)
	}

	// The next boot with the same config: nothing again, one line.
	e.put("since")
	e.stop()
	console = lines{}
	ro.Printf = console.printf
	if err := Reset(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	e.start()
	if since, _ := e.has("since"); !since {
		t.Error("a second boot with cluster-reset restored again")
	}
	if said := console.all(); len(said) != 1 || !strings.Contains(said[0], "etcd: cluster-reset was done already (restored from "+ro.RestorePath) ||
		!strings.Contains(said[0], "remove cluster-reset and cluster-reset-restore-path from this server's config") {
		t.Errorf("the second boot says %q", said)
	}

	// The keys removed: the marker goes; a new restore, from k3s's zip
	// form, brings the later key.
	e.stop()
	if err := Reset(context.Background(), ResetOptions{StateDir: state, DataDir: e.dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(state, MarkerName)); !os.IsNotExist(err) {
		t.Errorf("the marker after a boot without cluster-reset: %v", err)
	}
	ro.RestorePath = filepath.Join(keep, "s2.zip")
	if err := Reset(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	e.start()
	if after, _ := e.has("after"); !after {
		t.Error("the zip snapshot taken after the key was written does not hold it")
	}

	// A reset keeping the data: what the member had is there, alone.
	e.put("kept")
	e.stop()
	os.Remove(filepath.Join(state, MarkerName))
	console = lines{}
	if err := Reset(context.Background(), ResetOptions{Reset: true, DataDir: e.dir, StateDir: state, Member: "s1", PeerURL: e.peer, Printf: console.printf, Now: clk.now}); err != nil {
		t.Fatal(err)
	}
	e.start()
	if kept, _ := e.has("kept"); !kept {
		t.Error("a reset without a snapshot lost the member's data")
	}
	if said := console.all(); len(said) != 1 || !strings.HasPrefix(said[0], "etcd: reset embedded etcd's membership to this server alone (member s1), keeping its data; the data it had is kept in ") {
		t.Errorf("the reset says %q", said)
	}
}

// What a user sees when the restore cannot be done: the path, why, and
// etcd's data untouched.
func TestRestoreErrors(t *testing.T) {
	dir := t.TempDir()
	etcdDir := filepath.Join(dir, "etcd")
	os.MkdirAll(filepath.Join(etcdDir, "member"), 0o700)
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte(strings.Repeat("not a snapshot ", 1000)), 0o600)
	zipped := filepath.Join(dir, "empty.zip")
	os.WriteFile(zipped, []byte("PK\x03\x04 broken"), 0o600)
	tests := []struct{ path, want string }{
		{filepath.Join(dir, "missing"), "cluster-reset-restore-path " + filepath.Join(dir, "missing") + ": open " + filepath.Join(dir, "missing") + ": no such file or directory: copy the snapshot to this server"},
		{garbage, "cluster-reset-restore-path " + garbage + ": restoring it: "},
		{zipped, "cluster-reset-restore-path " + zipped + ": a zip archive that does not open"},
		{"", "cluster-reset: " + etcdDir + " holds no etcd data to reset"},
	}
	for _, tt := range tests {
		err := Reset(context.Background(), ResetOptions{Reset: true, RestorePath: tt.path, DataDir: etcdDir, StateDir: dir, Member: "s1", PeerURL: "https://127.0.0.1:2380", Printf: t.Logf})
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("restoring %q: %v; want %q", tt.path, err, tt.want)
		}
		if _, err := os.Stat(filepath.Join(etcdDir, "member")); err != nil {
			t.Errorf("after a failed restore, etcd's data: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, MarkerName)); err == nil {
			t.Error("a failed restore left the marker")
		}
	}
}
