//go:build qemu

package test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/cairn-os/cairn/qemu"
)

// TestEtcdSnapshot is embedded etcd's snapshots and restore (issue #25),
// on the container platform: one server on embedded etcd, snapshots
// every minute (zstd, the newest 10 kept).
//
//  1. A snapshot on the schedule: one console line with its name, size
//     and time.
//  2. A ConfigMap "before"; `cairn etcd-snapshot save` prints where the
//     snapshot landed (1,000 more ConfigMaps in the cluster, for the
//     figure); `cairn etcd-snapshot list` shows it; then a ConfigMap
//     "after".
//  3. The server restarts, its STATE kept, with cluster-reset and
//     cluster-reset-restore-path naming that snapshot: one line says it
//     restored it and where the old data went; the server serves again
//     with "before" and without "after".
//  4. It restarts again with the same config: one line says the reset
//     was done already and to remove the keys; what was written since the
//     restore is still there.
func TestEtcdSnapshot(t *testing.T) {
	ns := bridgeNS(t)
	extra := []string{`  etcd-snapshot-schedule-cron: "* * * * *"`, "  etcd-snapshot-retention: 10", "  etcd-snapshot-compress: zstd"}
	s1 := startPeer(t, ns, "s1", nodeRoot(t, serverConfig("s1", "192.168.77.11", clusterToken, "", extra...)))
	s1.expect(t, controlPlane, reServerReady)
	s1.expect(t, nodeReady, `node: s1 is Ready`)

	// 1. The schedule.
	m := s1.expect(t, 3*time.Minute, `etcd-snapshot: (etcd-snapshot-s1-\d+\.zst) saved in /var/lib/cairn/etcd-snapshots: ([\d.]+ [KMG]?i?B) in ([\d.]+)s$`)
	t.Logf("figures: a scheduled snapshot of a fresh cluster: %s, %ss (container platform)", m[2], m[3])

	// 2. A snapshot between two ConfigMaps.
	admin := snapshotAdmin(t, ns)
	kc := admin.kubeconfig
	admin.configMap("before")
	// The figure: a snapshot of a cluster holding 1,000 ConfigMaps.
	for i := range 1000 {
		admin.configMap(fmt.Sprintf("bulk-%04d", i))
	}
	began := time.Now()
	stdout, stderr := etcdSnapshotCLI(t, ns, "save", "--kubeconfig", kc)
	saved := regexp.MustCompile(`(?m)^s1: (/var/lib/cairn/etcd-snapshots/etcd-snapshot-s1-\d+\.zst) \(([\d.]+ [KMG]?i?B), sha256 [0-9a-f]{64}\)$`).FindStringSubmatch(stdout)
	if saved == nil || stderr != "" {
		t.Fatalf("cairn etcd-snapshot save printed:\n%s%s\nwant a line naming s1's snapshot", stdout, stderr)
	}
	t.Logf("figures: cairn etcd-snapshot save, 1,000 ConfigMaps in the cluster: %s in %s", saved[2], secs(time.Since(began)))
	s1.expect(t, time.Minute, `etcd-snapshot: `+regexp.QuoteMeta(filepath.Base(saved[1]))+` saved in /var/lib/cairn/etcd-snapshots: `)
	list, _ := etcdSnapshotCLI(t, ns, "list", "--kubeconfig", kc)
	if !regexp.MustCompile(`(?m)^NAME +NODE +LOCATION +SIZE +CREATED\n`).MatchString(list) ||
		!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(filepath.Base(saved[1]))+` +s1 +file://`+regexp.QuoteMeta(saved[1])+` +`).MatchString(list) {
		t.Errorf("cairn etcd-snapshot list printed:\n%s\nwant the snapshot saved", list)
	}
	admin.configMap("after")

	// 3. The restore.
	restoreCfg := serverConfig("s1", "192.168.77.11", clusterToken, "", append(extra, "  cluster-reset: true", "  cluster-reset-restore-path: "+saved[1])...)
	root := nodeRoot(t, restoreCfg)
	keepState(t, s1, root)
	s1.stop(t)
	s1 = startPeer(t, ns, "s1", root)
	done := s1.expect(t, controlPlane, `etcd: restored `+regexp.QuoteMeta(saved[1])+` into a new etcd cluster of one member \(s1\); the data it had is kept in (/var/lib/cairn/etcd\.before-reset-\d+)\. Remove cluster-reset and cluster-reset-restore-path from this server's config; `)
	if _, err := os.Stat(filepath.Join(root, done[1])); err == nil {
		t.Logf("the data before the restore is kept in %s", done[1])
	}
	s1.expect(t, controlPlane, reServerReady)
	s1.expect(t, nodeReady, `node: s1 is Ready`)
	if !admin.exists("before") || admin.exists("after") {
		t.Errorf("after the restore: ConfigMap before %v, after %v; want the one written before the snapshot only", admin.exists("before"), admin.exists("after"))
	}
	list, _ = etcdSnapshotCLI(t, ns, "list", "--kubeconfig", kc)
	if !strings.Contains(list, filepath.Base(saved[1])) {
		t.Errorf("cairn etcd-snapshot list after the restore:\n%s\nwant the snapshot restored from still listed", list)
	}

	// 4. The next boot, the keys still there: no second restore.
	admin.configMap("since")
	root2 := nodeRoot(t, restoreCfg)
	keepState(t, s1, root2)
	s1.stop(t)
	s1 = startPeer(t, ns, "s1", root2)
	s1.expect(t, controlPlane, `etcd: cluster-reset was done already \(restored from `+regexp.QuoteMeta(saved[1])+`, [^)]+\), so etcd starts as it is: remove cluster-reset and cluster-reset-restore-path from this server's config`)
	s1.expect(t, controlPlane, reServerReady)
	if !admin.exists("since") || !admin.exists("before") || admin.exists("after") {
		t.Errorf("the boot after the restore: since %v, before %v, after %v; want since and before", admin.exists("since"), admin.exists("before"), admin.exists("after"))
	}
	if k := countLines(s1, `^etcd: restored `); k != 0 {
		t.Errorf("the boot after the restore restored %d times; want none", k)
	}
	noSecretOnConsole(t, []*containerNode{s1}, clusterToken)
}

// TestEtcdSnapshotS3 is the snapshots' copies in S3 (etcd-s3, issue #25),
// on the container platform: one server on embedded etcd, snapshots
// every minute (zstd, the newest 2 kept), copied to a bucket on the
// bridge over plain HTTP, the secret key from a file write_files writes.
// The S3 is gofakes3 (github.com/johannesboyne/gofakes3) in the test's
// process, listening on the bridge: no real S3 server can run here
// (MinIO's server is AGPL and cannot be had; Debian packages none), and
// gofakes3 checks no signature.
//
//  1. Scheduled snapshots are copied: one console line each, naming the
//     object; the bucket holds it; after the third, only the newest two
//     of this server's copies are left (and the object of another
//     server, which the test put there, is left alone).
//  2. A ConfigMap "before"; `cairn etcd-snapshot save` names the file and
//     its copy; a ConfigMap "after"; `cairn etcd-snapshot list` shows the
//     file and the copy (s3://…).
//  3. The server restarts, its STATE kept but the snapshot file deleted
//     from it, with cluster-reset-restore-path naming the object: one
//     line says it downloaded it, one that it restored it; the server
//     serves with "before" and without "after".
func TestEtcdSnapshotS3(t *testing.T) {
	ns := bridgeNS(t)
	const bucket, folder = "cairn-snapshots", "cluster-1"
	const secret = "e2e-S3-secret/key-4f9a1c"
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	ln, err := ns.Listen("tcp", dsAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: gofakes3.New(backend).Server()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	other := "cluster-1/etcd-snapshot-s2-1765000000.zst"
	if _, err := backend.PutObject(bucket, other, map[string]string{}, strings.NewReader("s2's"), 4, nil); err != nil {
		t.Fatal(err)
	}
	objects := func(prefix string) []string {
		l, err := backend.ListBucket(bucket, nil, gofakes3.ListBucketPage{})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, c := range l.Contents {
			if strings.HasPrefix(c.Key, prefix) {
				keys = append(keys, c.Key)
			}
		}
		slices.Sort(keys)
		return keys
	}

	extra := []string{`  etcd-snapshot-schedule-cron: "* * * * *"`, "  etcd-snapshot-retention: 2", "  etcd-snapshot-compress: zstd",
		"  etcd-s3: true", "  etcd-s3-endpoint: " + ln.Addr().String(), "  etcd-s3-insecure: true", "  etcd-s3-bucket: " + bucket,
		"  etcd-s3-folder: " + folder, "  etcd-s3-access-key: AKIAE2ETEST", "  etcd-s3-secret-key-file: /var/lib/cairn/s3-secret-key"}
	config := func(more ...string) string {
		return serverConfig("s1", "192.168.77.11", clusterToken, "", append(slices.Clone(extra), more...)...) +
			"\nwrite_files:\n- path: /var/lib/cairn/s3-secret-key\n  permissions: \"0600\"\n  content: " + secret + "\n"
	}
	s1 := startPeer(t, ns, "s1", nodeRoot(t, config()))
	s1.expect(t, controlPlane, reServerReady)
	s1.expect(t, nodeReady, `node: s1 is Ready`)

	// 1. The schedule's copies, and retention in the bucket.
	const reCopied = `etcd-snapshot: (etcd-snapshot-s1-\d+\.zst) copied to s3://` + bucket + `/` + folder + `/(etcd-snapshot-s1-\d+\.zst): ([\d.]+ [KMG]?i?B) in ([\d.]+)s$`
	m := s1.expect(t, 3*time.Minute, reCopied)
	if m[1] != m[2] || !slices.Contains(objects(folder+"/"), folder+"/"+m[1]) {
		t.Errorf("the copy of %s: the bucket holds %v", m[1], objects(""))
	}
	t.Logf("figures: a scheduled snapshot copied to S3 (gofakes3 on the bridge): %s in %ss", m[3], m[4])
	for deadline := time.Now().Add(4 * time.Minute); countLines(s1, reCopied) < 3; time.Sleep(5 * time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("%d scheduled copies in 4 minutes; want 3 (a snapshot a minute):\n%s", countLines(s1, reCopied), s1.tail(40))
		}
	}
	if own := objects(folder + "/etcd-snapshot-s1-"); len(own) != 2 || !slices.Contains(objects(""), other) {
		t.Errorf("after three copies with etcd-snapshot-retention 2 the bucket holds %v; want two of s1's and %s", objects(""), other)
	}

	// 2. save names the copy; list shows it.
	admin := snapshotAdmin(t, ns)
	kc := admin.kubeconfig
	admin.configMap("before")
	stdout, stderr := etcdSnapshotCLI(t, ns, "save", "--kubeconfig", kc)
	saved := regexp.MustCompile(`(?m)^s1: (/var/lib/cairn/etcd-snapshots/(etcd-snapshot-s1-\d+\.zst)) \([\d.]+ [KMG]?i?B, sha256 [0-9a-f]{64}\), copied to (s3://` + bucket + `/` + folder + `/etcd-snapshot-s1-\d+\.zst)$`).FindStringSubmatch(stdout)
	if saved == nil || stderr != "" || !strings.HasSuffix(saved[3], "/"+saved[2]) {
		t.Fatalf("cairn etcd-snapshot save printed:\n%s%s\nwant a line naming s1's snapshot and its copy in S3", stdout, stderr)
	}
	name, object := saved[2], saved[3]
	admin.configMap("after")
	list, _ := etcdSnapshotCLI(t, ns, "list", "--kubeconfig", kc)
	if !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(name)+` +s1 +`+regexp.QuoteMeta(object)+` +`).MatchString(list) ||
		!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(name)+` +s1 +file://`+regexp.QuoteMeta(saved[1])+` +`).MatchString(list) {
		t.Errorf("cairn etcd-snapshot list printed:\n%s\nwant the snapshot saved, on s1 and in S3", list)
	}

	// 3. The restore from the bucket, the file gone from the server.
	// (Retention keeps the saved copy while at most one scheduled
	// snapshot follows it: these steps take seconds.)
	root := nodeRoot(t, config("  cluster-reset: true", "  cluster-reset-restore-path: "+name))
	keepState(t, s1, root)
	s1.stop(t)
	if err := os.Remove(filepath.Join(root, saved[1])); err != nil && !os.IsNotExist(err) {
		t.Fatalf("removing the snapshot file from the kept STATE: %v", err)
	}
	if !slices.Contains(objects(""), strings.TrimPrefix(object, "s3://"+bucket+"/")) {
		t.Fatalf("the bucket no longer holds %s (two scheduled snapshots came first?): %v", object, objects(""))
	}
	s1 = startPeer(t, ns, "s1", root)
	s1.expect(t, controlPlane, `etcd: downloaded `+regexp.QuoteMeta(object)+` to restore it: [\d.]+ [KMG]?i?B in [\d.]+s$`)
	s1.expect(t, controlPlane, `etcd: restored `+regexp.QuoteMeta(object)+` into a new etcd cluster of one member \(s1\); the data it had is kept in /var/lib/cairn/etcd\.before-reset-\d+\. `)
	s1.expect(t, controlPlane, reServerReady)
	s1.expect(t, nodeReady, `node: s1 is Ready`)
	if !admin.exists("before") || admin.exists("after") {
		t.Errorf("after the restore from S3: ConfigMap before %v, after %v; want the one written before the snapshot only", admin.exists("before"), admin.exists("after"))
	}
	noSecretOnConsole(t, []*containerNode{s1}, clusterToken, secret)
}

// snapshotServer is the server of TestEtcdSnapshot*.
const snapshotServer = "192.168.77.11"

// etcdAdmin is the admin of TestEtcdSnapshot*'s server: the kubeconfig
// `cairn etcd-snapshot` is given, and a client for the ConfigMaps that
// tell before from after.
type etcdAdmin struct {
	t          *testing.T
	kubeconfig string // its path
	api        *apiClient
}

// snapshotAdmin asks the server for the admin kubeconfig, as `cairn
// kubeconfig` does.
func snapshotAdmin(t *testing.T, ns *qemu.Netns) *etcdAdmin {
	t.Helper()
	data := mustKubeconfig(t, context.Background(), ns, snapshotServer)
	kc := filepath.Join(t.TempDir(), "admin.conf")
	if err := os.WriteFile(kc, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return &etcdAdmin{t: t, kubeconfig: kc, api: newAPIClient(t, ns, data)}
}

// configMap creates the ConfigMap name in the default namespace.
func (a *etcdAdmin) configMap(name string) {
	a.t.Helper()
	cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name, "namespace": "default"}}
	if code, body, err := a.api.do("POST", "https://"+snapshotServer+":6443/api/v1/namespaces/default/configmaps", cm); code != 201 {
		a.t.Fatalf("creating the ConfigMap %s: %d %v %s", name, code, err, body)
	}
}

// exists says whether the ConfigMap name is in the default namespace.
func (a *etcdAdmin) exists(name string) bool {
	a.t.Helper()
	code, body, err := a.api.do("GET", "https://"+snapshotServer+":6443/api/v1/namespaces/default/configmaps/"+name, nil)
	if code != 200 && code != 404 {
		a.t.Fatalf("reading the ConfigMap %s: %d %v %s", name, code, err, body)
	}
	return code == 200
}

// etcdSnapshotCLI runs `cairn etcd-snapshot ARGS` in ns and returns its
// standard output and error; it fails t when it fails.
func etcdSnapshotCLI(t *testing.T, ns *qemu.Netns, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := ns.Command(ctx, cairn(t), append([]string{"etcd-snapshot"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cairn etcd-snapshot %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), stderr.String()
}
