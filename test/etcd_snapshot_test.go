//go:build qemu

package test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/qemu"
)

// TestEtcdSnapshot is embedded etcd's snapshots and restore (issue #25),
// on the container platform: one server on embedded etcd, snapshots
// every minute (zstd, the newest 10 kept).
//
//  1. A snapshot on the schedule: one console line with its name, size
//     and time.
//  2. A ConfigMap "before"; `cairn etcd-snapshot save` prints where the
//     snapshot landed; `cairn etcd-snapshot list` shows it; then a
//     ConfigMap "after".
//  3. The server restarts, its STATE kept, with cluster-reset and
//     cluster-reset-restore-path naming that snapshot: one line says it
//     restored it and where the old data went; the server serves again
//     with "before" and without "after".
//  4. It restarts again with the same config: one line says the reset
//     was done already and to remove the keys; what was written since the
//     restore is still there.
func TestEtcdSnapshot(t *testing.T) {
	ctx := context.Background()
	ns := bridgeNS(t)
	const url = "https://192.168.77.11:6443"
	extra := []string{`  etcd-snapshot-schedule-cron: "* * * * *"`, "  etcd-snapshot-retention: 10", "  etcd-snapshot-compress: zstd"}
	s1 := startPeer(t, ns, "s1", nodeRoot(t, serverConfig("s1", "192.168.77.11", clusterToken, "", extra...)))
	s1.expect(t, controlPlane, reServerReady)
	s1.expect(t, nodeReady, `node: s1 is Ready`)

	// 1. The schedule.
	m := s1.expect(t, 3*time.Minute, `etcd-snapshot: (etcd-snapshot-s1-\d+\.zst) saved in /var/lib/cairn/etcd-snapshots: ([\d.]+ [KMG]?i?B) in ([\d.]+)s$`)
	t.Logf("figures: a scheduled snapshot of a fresh cluster: %s, %ss (container platform)", m[2], m[3])

	// 2. A snapshot between two ConfigMaps.
	tok, _ := join.ParseToken(clusterToken)
	kcData, err := (&join.Client{Server: url, Token: tok, DialContext: ns.DialContext}).AdminKubeconfig(ctx)
	if err != nil {
		t.Fatalf("cairn kubeconfig: %v", err)
	}
	kc := filepath.Join(t.TempDir(), "admin.conf")
	os.WriteFile(kc, kcData, 0o600)
	api := newAPIClient(t, ns, kcData)
	configMap := func(name string) {
		t.Helper()
		cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name, "namespace": "default"}}
		if code, body, err := api.do("POST", url+"/api/v1/namespaces/default/configmaps", cm); code != 201 {
			t.Fatalf("creating the ConfigMap %s: %d %v %s", name, code, err, body)
		}
	}
	exists := func(name string) bool {
		t.Helper()
		code, body, err := api.do("GET", url+"/api/v1/namespaces/default/configmaps/"+name, nil)
		if code != 200 && code != 404 {
			t.Fatalf("reading the ConfigMap %s: %d %v %s", name, code, err, body)
		}
		return code == 200
	}
	configMap("before")
	began := time.Now()
	stdout, stderr := etcdSnapshotCLI(t, ns, "save", "--kubeconfig", kc)
	saved := regexp.MustCompile(`(?m)^s1: (/var/lib/cairn/etcd-snapshots/etcd-snapshot-s1-\d+\.zst) \(([\d.]+ [KMG]?i?B), sha256 [0-9a-f]{64}\)$`).FindStringSubmatch(stdout)
	if saved == nil || stderr != "" {
		t.Fatalf("cairn etcd-snapshot save printed:\n%s%s\nwant a line naming s1's snapshot", stdout, stderr)
	}
	t.Logf("figures: cairn etcd-snapshot save: %s in %s", saved[2], secs(time.Since(began)))
	s1.expect(t, time.Minute, `etcd-snapshot: `+regexp.QuoteMeta(filepath.Base(saved[1]))+` saved in /var/lib/cairn/etcd-snapshots: `)
	list, _ := etcdSnapshotCLI(t, ns, "list", "--kubeconfig", kc)
	if !regexp.MustCompile(`(?m)^NAME +NODE +LOCATION +SIZE +CREATED\n`).MatchString(list) ||
		!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(filepath.Base(saved[1]))+` +s1 +file://`+regexp.QuoteMeta(saved[1])+` +`).MatchString(list) {
		t.Errorf("cairn etcd-snapshot list printed:\n%s\nwant the snapshot saved", list)
	}
	configMap("after")

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
	if !exists("before") || exists("after") {
		t.Errorf("after the restore: ConfigMap before %v, after %v; want the one written before the snapshot only", exists("before"), exists("after"))
	}
	list, _ = etcdSnapshotCLI(t, ns, "list", "--kubeconfig", kc)
	if !strings.Contains(list, filepath.Base(saved[1])) {
		t.Errorf("cairn etcd-snapshot list after the restore:\n%s\nwant the snapshot restored from still listed", list)
	}

	// 4. The next boot, the keys still there: no second restore.
	configMap("since")
	root2 := nodeRoot(t, restoreCfg)
	keepState(t, s1, root2)
	s1.stop(t)
	s1 = startPeer(t, ns, "s1", root2)
	s1.expect(t, controlPlane, `etcd: cluster-reset was done already \(restored from `+regexp.QuoteMeta(saved[1])+`, [^)]+\), so etcd starts as it is: remove cluster-reset and cluster-reset-restore-path from this server's config`)
	s1.expect(t, controlPlane, reServerReady)
	if !exists("since") || !exists("before") || exists("after") {
		t.Errorf("the boot after the restore: since %v, before %v, after %v; want since and before", exists("since"), exists("before"), exists("after"))
	}
	if k := countLines(s1, `^etcd: restored `); k != 0 {
		t.Errorf("the boot after the restore restored %d times; want none", k)
	}
	noSecretOnConsole(t, []*containerNode{s1}, clusterToken)
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
