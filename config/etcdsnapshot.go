package config

import (
	"path"
	"regexp"
	"strings"

	"github.com/cairn-os/cairn/config/cron"
	"github.com/cairn-os/cairn/config/layout"
)

// Embedded etcd's snapshots: k3s's defaults, with the directory on STATE.
const (
	DefaultEtcdSnapshotDir       = layout.StateDir + "/etcd-snapshots"
	DefaultEtcdSnapshotSchedule  = "0 */12 * * *"
	DefaultEtcdSnapshotRetention = 5
	DefaultEtcdSnapshotName      = "etcd-snapshot"
	// MaxEtcdSnapshotRetention bounds etcd-snapshot-retention: every
	// snapshot kept is an entry in the cluster's record of them.
	MaxEtcdSnapshotRetention = 256
)

// Compressions of etcd-snapshot-compress, as SnapshotCompression names them.
const (
	CompressNone = ""
	CompressZip  = "zip"  // k3s's: a zip archive holding the snapshot
	CompressZstd = "zstd" // a zstd stream
)

// EtcdDataDir is where embedded etcd keeps its data on a node.
const EtcdDataDir = layout.StateDir + "/etcd"

// maxPathKey bounds etcd-snapshot-dir and cluster-reset-restore-path.
const maxPathKey = 1024

// snapshotNameRe is what etcd-snapshot-name may be: it starts every
// snapshot's file name.
var snapshotNameRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,62}[a-z0-9])?$`)

// SnapshotSchedule is etcd-snapshot-schedule-cron, or its default.
func (k *Kubernetes) SnapshotSchedule() string {
	if k.EtcdSnapshotScheduleCron == "" {
		return DefaultEtcdSnapshotSchedule
	}
	return k.EtcdSnapshotScheduleCron
}

// SnapshotRetention is etcd-snapshot-retention, or its default.
func (k *Kubernetes) SnapshotRetention() int {
	if k.EtcdSnapshotRetention == 0 {
		return DefaultEtcdSnapshotRetention
	}
	return k.EtcdSnapshotRetention
}

// SnapshotDir is etcd-snapshot-dir, or its default.
func (k *Kubernetes) SnapshotDir() string {
	if k.EtcdSnapshotDir == "" {
		return DefaultEtcdSnapshotDir
	}
	return k.EtcdSnapshotDir
}

// SnapshotName is etcd-snapshot-name, or its default.
func (k *Kubernetes) SnapshotName() string {
	if k.EtcdSnapshotName == "" {
		return DefaultEtcdSnapshotName
	}
	return k.EtcdSnapshotName
}

// SnapshotCompression is etcd-snapshot-compress as one of CompressNone,
// CompressZip and CompressZstd; ok is false for anything else.
func (k *Kubernetes) SnapshotCompression() (string, bool) {
	switch strings.ToLower(k.EtcdSnapshotCompress) {
	case "", "false", "no", "off":
		return CompressNone, true
	case "true", "yes", "on", "zip":
		return CompressZip, true
	case "zstd":
		return CompressZstd, true
	}
	return "", false
}

// snapshotKeys are the keys of embedded etcd's snapshots.
var snapshotKeys = []string{"etcd-disable-snapshots", "etcd-snapshot-schedule-cron", "etcd-snapshot-retention",
	"etcd-snapshot-dir", "etcd-snapshot-name", "etcd-snapshot-compress"}

// etcdSnapshots checks the snapshot and cluster-reset keys.
func (ck *checker) etcdSnapshots() {
	k := &ck.c.Kubernetes
	const kp = "kubernetes."
	if key := kp + "etcd-snapshot-schedule-cron"; ck.set(key) {
		s := k.EtcdSnapshotScheduleCron
		if len(s) > cron.MaxLen {
			ck.errorf(key, "%s is %d characters long; a schedule is at most %d, like %q", key, len(s), cron.MaxLen, DefaultEtcdSnapshotSchedule)
		} else if _, err := cron.Parse(s); err != nil {
			msg := err.Error()
			if strings.HasPrefix(msg, "the ") {
				ck.errorf(key, "%s %q: %s", key, s, msg)
			} else {
				ck.errorf(key, "%s %q %s", key, s, msg)
			}
		}
	}
	if key := kp + "etcd-snapshot-retention"; ck.set(key) {
		if r := k.EtcdSnapshotRetention; r < 1 || r > MaxEtcdSnapshotRetention {
			ck.errorf(key, "%s %d is not from 1 to %d: it is how many snapshots each server keeps; to take none on a schedule, set etcd-disable-snapshots: true", key, r, MaxEtcdSnapshotRetention)
		}
	}
	if key := kp + "etcd-snapshot-dir"; ck.set(key) {
		ck.snapshotDir(key, k.EtcdSnapshotDir)
	}
	if key := kp + "etcd-snapshot-name"; ck.set(key) && !snapshotNameRe.MatchString(k.EtcdSnapshotName) {
		ck.errorf(key, "%s %q is not a name of lowercase letters, digits, '-' and '.' (at most 64, starting and ending with a letter or digit), like %s", key, k.EtcdSnapshotName, DefaultEtcdSnapshotName)
	}
	if key := kp + "etcd-snapshot-compress"; ck.set(key) {
		c, ok := k.SnapshotCompression()
		switch {
		case !ok:
			ck.errorf(key, "%s %q is not true (a zip archive, as k3s writes), zip, zstd or false", key, k.EtcdSnapshotCompress)
		case c == CompressZstd && k.Distribution == "k3s":
			ck.errorf(key, "%s zstd is cairn's own; k3s (distribution: k3s) compresses only as zip: write true", key)
		}
	}
	if k.EtcdDisableSnapshots && ck.set(kp+"etcd-snapshot-schedule-cron") {
		ck.warnf(kp+"etcd-snapshot-schedule-cron", "kubernetes.etcd-snapshot-schedule-cron is set, but etcd-disable-snapshots is true: no snapshots are taken on a schedule (cairn etcd-snapshot save still takes one)")
	}
	if key := kp + "cluster-reset-restore-path"; ck.set(key) {
		p := k.ClusterResetRestorePath
		switch {
		case !k.ClusterReset:
			ck.errorf(key, "%s is set without cluster-reset: true; a restore is a cluster reset from a snapshot: add cluster-reset: true (on one server, once)", key)
		case p == "":
			ck.errorf(key, "%s is empty; give the snapshot file on this server, or leave it out to reset membership keeping this server's data", key)
		case len(p) > maxPathKey:
			ck.errorf(key, "%s is %d bytes long; at most %d", key, len(p), maxPathKey)
		case !strings.HasPrefix(p, "/") && k.EtcdS3:
			// k3s's meaning: with etcd-s3, the snapshot's name in the bucket.
			if msg := checkS3ObjectName(p); msg != "" {
				ck.errorf(key, "%s %q %s", key, p, msg)
			}
		case !strings.HasPrefix(p, "/"):
			ck.errorf(key, "%s %q is relative; give the snapshot file's absolute path on this server, like %s/etcd-snapshot-NODE-1700000000 (or, with etcd-s3: true, a snapshot's name in the bucket's etcd-s3-folder)", key, p, DefaultEtcdSnapshotDir)
		case path.Clean(p) != p:
			ck.errorf(key, "%s %q is not a clean path; write it as %s", key, p, path.Clean(p))
		}
	}

	// Where the keys mean something: servers on embedded etcd.
	ds, err := k.Datastore()
	if err != nil {
		return // reported with datastore-endpoint
	}
	for _, key := range []string{"cluster-reset", "cluster-reset-restore-path"} {
		if !ck.set(kp+key) || (key == "cluster-reset" && !k.ClusterReset) {
			continue
		}
		switch {
		case k.Role == "agent":
			ck.errorf(kp+key, "kubernetes.%s resets a server's embedded etcd, and an agent has none: remove it", key)
		case ds.Kind != DatastoreEmbedded:
			ck.errorf(kp+key, "kubernetes.%s resets embedded etcd, and this server keeps the cluster in datastore-endpoint: remove it, and restore that datastore with its own tools", key)
		}
	}
	for _, key := range snapshotKeys {
		if !ck.set(kp + key) {
			continue
		}
		switch {
		case k.Role == "agent":
			ck.warnf(kp+key, "kubernetes.%s is a server setting (servers on embedded etcd take the snapshots); agents ignore it", key)
		case ds.Kind != DatastoreEmbedded:
			ck.warnf(kp+key, "kubernetes.%s does nothing with datastore-endpoint: only servers on embedded etcd take snapshots; back the datastore up with its own tools", key)
		}
	}
}

// snapshotDir checks etcd-snapshot-dir, the directory at key.
func (ck *checker) snapshotDir(key, p string) {
	switch {
	case p == "":
		ck.errorf(key, "%s is empty; give an absolute directory, or leave it out for %s", key, DefaultEtcdSnapshotDir)
	case len(p) > maxPathKey:
		ck.errorf(key, "%s is %d bytes long; at most %d", key, len(p), maxPathKey)
	case !strings.HasPrefix(p, "/"):
		ck.errorf(key, "%s %q is relative; give an absolute directory, like %s", key, p, DefaultEtcdSnapshotDir)
	case path.Clean(p) != p:
		ck.errorf(key, "%s %q is not a clean path; write it as %s", key, p, path.Clean(p))
	case p == "/" || p == layout.StateDir:
		ck.errorf(key, "%s is %s; snapshots need a directory of their own, like %s", key, p, DefaultEtcdSnapshotDir)
	case p == EtcdDataDir || strings.HasPrefix(p, EtcdDataDir+"/") || strings.HasPrefix(p, EtcdDataDir+"."):
		ck.errorf(key, "%s %q is inside embedded etcd's data (%s), which a restore moves aside; give the snapshots a directory of their own, like %s", key, p, EtcdDataDir, DefaultEtcdSnapshotDir)
	case !strings.HasPrefix(p, layout.StateDir+"/"):
		ck.warnf(key, "%s %q is not under %s, the node's STATE partition: the rest of the root file system is in RAM, so the snapshots would be lost at every reboot; keep them under %s", key, p, layout.StateDir, layout.StateDir)
	}
}
