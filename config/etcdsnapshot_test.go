package config

import (
	"strings"
	"testing"
)

// TestEtcdSnapshotKeys: k3s's snapshot and cluster-reset keys as a user
// sees them from cairn validate (FILE:LINE:COL, the key, what to write),
// and the values a server uses when the config loads.
func TestEtcdSnapshotKeys(t *testing.T) {
	const agent = "  role: agent\n  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n  vip: 10.0.0.100\n"
	const pg = "  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n  datastore-endpoint: postgres://k:p@db:5432/k\n"
	tests := []struct {
		name string
		doc  string
		want string // the one diagnostic, exactly its start; "" for none
	}{
		{"k3s's keys as k3s writes them", "kubernetes:\n  etcd-snapshot-schedule-cron: \"0 */6 * * *\"\n  etcd-snapshot-retention: 10\n  etcd-snapshot-dir: /var/lib/cairn/backups\n  etcd-snapshot-compress: true\n  etcd-snapshot-name: nightly\n", ""},
		{"zstd", "kubernetes:\n  etcd-snapshot-compress: zstd\n", ""},
		{"the shorthands", "kubernetes:\n  etcd-snapshot-schedule-cron: \"@daily\"\n", ""},
		{"a restore", "kubernetes:\n  cluster-reset: true\n  cluster-reset-restore-path: /var/lib/cairn/etcd-snapshots/etcd-snapshot-s1-1765000000.zip\n", ""},
		{"a reset keeping the data", "kubernetes:\n  cluster-reset: true\n", ""},
		{"cluster-reset: false is nothing", "kubernetes:\n  cluster-reset: false\n", ""},
		{"a cron field out of range", "kubernetes:\n  etcd-snapshot-schedule-cron: \"0 25 * * *\"\n",
			`c:2:32: error: kubernetes.etcd-snapshot-schedule-cron "0 25 * * *": the hour field "25" is not a number from 0 to 23`},
		{"seconds", "kubernetes:\n  etcd-snapshot-schedule-cron: \"0 0 */12 * * *\"\n",
			`c:2:32: error: kubernetes.etcd-snapshot-schedule-cron "0 0 */12 * * *" has 6 fields; cron takes five (minute hour day-of-month month day-of-week), without seconds`},
		{"never", "kubernetes:\n  etcd-snapshot-schedule-cron: \"0 0 30 2 *\"\n",
			`c:2:32: error: kubernetes.etcd-snapshot-schedule-cron "0 0 30 2 *" never fires: no month has that day`},
		{"a very long schedule", "kubernetes:\n  etcd-snapshot-schedule-cron: \"" + strings.Repeat("1,", 200) + "1 * * * *\"\n",
			`c:2:32: error: kubernetes.etcd-snapshot-schedule-cron is 409 characters long; a schedule is at most 256, like "0 */12 * * *"`},
		{"retention 0", "kubernetes:\n  etcd-snapshot-retention: 0\n",
			`c:2:28: error: kubernetes.etcd-snapshot-retention 0 is not from 1 to 256: it is how many snapshots each server keeps; to take none on a schedule, set etcd-disable-snapshots: true`},
		{"retention not a number", "kubernetes:\n  etcd-snapshot-retention: five\n",
			`c:2:28: error: kubernetes.etcd-snapshot-retention must be a whole number, not "five"`},
		{"compress gzip", "kubernetes:\n  etcd-snapshot-compress: gzip\n",
			`c:2:27: error: kubernetes.etcd-snapshot-compress "gzip" is not true (a zip archive, as k3s writes), zip, zstd or false`},
		{"zstd for k3s", "kubernetes:\n  distribution: k3s\n  etcd-snapshot-compress: zstd\n",
			`c:3:27: error: kubernetes.etcd-snapshot-compress zstd is cairn's own; k3s (distribution: k3s) compresses only as zip: write true`},
		{"a name with a slash", "kubernetes:\n  etcd-snapshot-name: a/b\n",
			`c:2:23: error: kubernetes.etcd-snapshot-name "a/b" is not a name of lowercase letters`},
		{"a relative directory", "kubernetes:\n  etcd-snapshot-dir: snapshots\n",
			`c:2:22: error: kubernetes.etcd-snapshot-dir "snapshots" is relative; give an absolute directory, like /var/lib/cairn/etcd-snapshots`},
		{"inside etcd's data", "kubernetes:\n  etcd-snapshot-dir: /var/lib/cairn/etcd/snapshots\n",
			`c:2:22: error: kubernetes.etcd-snapshot-dir "/var/lib/cairn/etcd/snapshots" is inside embedded etcd's data (/var/lib/cairn/etcd), which a restore moves aside`},
		{"STATE itself", "kubernetes:\n  etcd-snapshot-dir: /var/lib/cairn\n",
			`c:2:22: error: kubernetes.etcd-snapshot-dir is /var/lib/cairn; snapshots need a directory of their own`},
		{"in RAM", "kubernetes:\n  etcd-snapshot-dir: /backups\n",
			`c:2:22: warning: kubernetes.etcd-snapshot-dir "/backups" is not under /var/lib/cairn, the node's STATE partition: the rest of the root file system is in RAM, so the snapshots would be lost at every reboot`},
		{"disabled, with a schedule", "kubernetes:\n  etcd-disable-snapshots: true\n  etcd-snapshot-schedule-cron: \"0 * * * *\"\n",
			`c:3:32: warning: kubernetes.etcd-snapshot-schedule-cron is set, but etcd-disable-snapshots is true: no snapshots are taken on a schedule (cairn etcd-snapshot save still takes one)`},
		{"on an external datastore", "kubernetes:\n" + pg + "  etcd-snapshot-retention: 3\n",
			`c:4:28: warning: kubernetes.etcd-snapshot-retention does nothing with datastore-endpoint: only servers on embedded etcd take snapshots; back the datastore up with its own tools`},
		{"on an agent", "kubernetes:\n" + agent + "  etcd-disable-snapshots: true\n",
			`c:5:27: warning: kubernetes.etcd-disable-snapshots is a server setting (servers on embedded etcd take the snapshots); agents ignore it`},
		{"a restore path without cluster-reset", "kubernetes:\n  cluster-reset-restore-path: /var/lib/cairn/etcd-snapshots/x\n",
			`c:2:31: error: kubernetes.cluster-reset-restore-path is set without cluster-reset: true; a restore is a cluster reset from a snapshot: add cluster-reset: true (on one server, once)`},
		{"a relative restore path", "kubernetes:\n  cluster-reset: true\n  cluster-reset-restore-path: snap.zip\n",
			`c:3:31: error: kubernetes.cluster-reset-restore-path "snap.zip" is relative; give the snapshot file's absolute path on this server`},
		{"a reset on an external datastore", "kubernetes:\n" + pg + "  cluster-reset: true\n",
			`c:4:18: error: kubernetes.cluster-reset resets embedded etcd, and this server keeps the cluster in datastore-endpoint: remove it, and restore that datastore with its own tools`},
		{"a reset on an agent", "kubernetes:\n" + agent + "  cluster-reset: true\n",
			`c:5:18: error: kubernetes.cluster-reset resets a server's embedded etcd, and an agent has none: remove it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Load(src("c", tt.doc))
			got := strings.TrimSuffix(messages(diags), "\n")
			switch {
			case tt.want == "" && got != "":
				t.Errorf("diagnostics:\n%s\nwant none", got)
			case tt.want != "" && (len(diags) != 1 || !strings.HasPrefix(got, tt.want)):
				t.Errorf("diagnostics:\n%s\nwant exactly one, starting:\n%s", got, tt.want)
			}
		})
	}
}

// The values a server on embedded etcd uses: k3s's defaults, the
// directory on STATE.
func TestEtcdSnapshotDefaults(t *testing.T) {
	cfg, diags := Load(src("c", "kubernetes:\n  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n"))
	if diags.HasErrors() {
		t.Fatal(messages(diags))
	}
	k := &cfg.Kubernetes
	c, _ := k.SnapshotCompression()
	if k.SnapshotSchedule() != "0 */12 * * *" || k.SnapshotRetention() != 5 || k.SnapshotDir() != "/var/lib/cairn/etcd-snapshots" ||
		k.SnapshotName() != "etcd-snapshot" || c != CompressNone || k.EtcdDisableSnapshots || k.ClusterReset {
		t.Errorf("defaults: %q %d %q %q %q", k.SnapshotSchedule(), k.SnapshotRetention(), k.SnapshotDir(), k.SnapshotName(), c)
	}
	cfg, diags = Load(src("c", "kubernetes:\n  etcd-snapshot-compress: \"yes\"\n  etcd-snapshot-retention: 2\n"))
	if diags.HasErrors() {
		t.Fatal(messages(diags))
	}
	if c, _ := cfg.Kubernetes.SnapshotCompression(); c != CompressZip || cfg.Kubernetes.SnapshotRetention() != 2 {
		t.Errorf("compress yes: %q, retention %d; want zip, 2", c, cfg.Kubernetes.SnapshotRetention())
	}
}
