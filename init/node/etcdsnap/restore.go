package etcdsnap

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	snaprec "github.com/cairn-os/cairn/config/etcdsnap"
	"github.com/cairn-os/cairn/config/files"
)

// ResetOptions say what cluster-reset does on this server, before its
// etcd starts.
type ResetOptions struct {
	// Reset is kubernetes.cluster-reset; RestorePath its
	// cluster-reset-restore-path ("" keeps this member's own data): a
	// file, or with S3 a relative name, a snapshot in the bucket.
	Reset       bool
	RestorePath string
	// S3 is etcd-s3's bucket; nil without it.
	S3 *S3
	// DataDir is etcd's data directory; StateDir holds the marker of a
	// reset done.
	DataDir, StateDir string
	// Member is the member's name, PeerURL where it listens for peers:
	// as etcd is started with them.
	Member, PeerURL string
	// Printf writes one console line.
	Printf func(format string, args ...any)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// MarkerName is the file in StateDir that says a cluster-reset was done.
const MarkerName = "etcd-reset-done"

// marker is what the marker file says.
type marker struct {
	Time  time.Time `json:"time"`
	From  string    `json:"from,omitempty"`  // the snapshot restored; "" for a reset keeping the data
	Aside string    `json:"aside,omitempty"` // where the data before went
}

// Revisions jump ahead this far on a restore, and the old ones count as
// compacted: a watch that clients of the apiserver resume from a
// revision they saw before the restore starts over from a list, rather
// than missing what changed (etcd's advice for Kubernetes).
const revisionBump = 1_000_000_000

// Reset does what cluster-reset asks, once: it restores the snapshot at
// RestorePath (a file k3s or cairn wrote: plain, zip or zstd; with S3, a
// relative RestorePath names one in the bucket, downloaded to StateDir
// first), or this member's own database, into a new etcd data directory
// holding one member, and moves the old directory aside, never deleting
// it. It writes a marker on STATE, so the next boot with the same config
// starts etcd as it is and says to remove the keys; a boot without
// cluster-reset removes the marker. Each outcome is one console line.
func Reset(ctx context.Context, o ResetOptions) error {
	mpath := filepath.Join(o.StateDir, MarkerName)
	if !o.Reset {
		if err := os.Remove(mpath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing %s: %w", mpath, err)
		}
		return nil
	}
	if data, err := files.Read(mpath, 4096); err == nil {
		var m marker
		json.Unmarshal(data, &m)
		what := "reset to this server alone"
		if m.From != "" {
			what = "restored from " + m.From
		}
		o.Printf("etcd: cluster-reset was done already (%s, %s), so etcd starts as it is: remove cluster-reset and cluster-reset-restore-path from this server's config (delete %s to reset again)",
			what, m.Time.Format(time.RFC3339), mpath)
		return nil
	}
	now := time.Now()
	if o.Now != nil {
		now = o.Now()
	}
	src, skipHash, from := o.RestorePath, false, o.RestorePath
	if src == "" {
		// This member's own database, as it last wrote it: etcd is not
		// running, so the file is whole.
		src, skipHash = filepath.Join(o.DataDir, "member", "snap", "db"), true
		if _, err := os.Stat(src); err != nil {
			return fmt.Errorf("cluster-reset: %s holds no etcd data to reset (%v); give cluster-reset-restore-path a snapshot, or remove cluster-reset", o.DataDir, err)
		}
	} else {
		if !filepath.IsAbs(src) {
			if o.S3 == nil {
				return fmt.Errorf("cluster-reset-restore-path %s is not an absolute path, and etcd-s3 is not set: give the snapshot file on this server, or set etcd-s3 to restore one from the bucket", src)
			}
			from = o.S3.Location(src)
			src = filepath.Join(o.StateDir, ".etcd-restore-s3")
			defer os.Remove(src)
			began := time.Now()
			n, err := o.S3.download(ctx, o.RestorePath, src)
			if err != nil {
				return fmt.Errorf("cluster-reset-restore-path %s: downloading %s: %w", o.RestorePath, from, err)
			}
			o.Printf("etcd: downloaded %s to restore it: %s in %.1fs", from, snaprec.Size(n), time.Since(began).Seconds())
		}
		plain, cleanup, err := decompress(src, filepath.Join(o.StateDir, ".etcd-restore.db"))
		if err != nil {
			return fmt.Errorf("cluster-reset-restore-path %s: %w", o.RestorePath, err)
		}
		defer cleanup()
		src = plain
	}
	out := o.DataDir + ".restoring"
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	defer os.RemoveAll(out) // fails harmlessly after the rename
	if err := restore(snapshot.RestoreConfig{
		SnapshotPath: src, Name: o.Member, OutputDataDir: out,
		PeerURLs: []string{o.PeerURL}, InitialCluster: o.Member + "=" + o.PeerURL,
		// A new cluster's id: a server still holding the old cluster's
		// data cannot talk to this one by mistake.
		InitialClusterToken: "cairn-reset-" + strconv.FormatInt(now.Unix(), 10),
		SkipHashCheck:       skipHash, RevisionBump: revisionBump, MarkCompacted: true,
	}); err != nil {
		if o.RestorePath != "" {
			return fmt.Errorf("cluster-reset-restore-path %s: restoring it: %w", from, err)
		}
		return fmt.Errorf("cluster-reset: rebuilding %s as one member: %w", o.DataDir, err)
	}
	m := marker{Time: now.UTC(), From: from}
	if _, err := os.Lstat(o.DataDir); err == nil {
		m.Aside = o.DataDir + ".before-reset-" + strconv.FormatInt(now.Unix(), 10)
		if err := moveAside(o.DataDir, m.Aside); err != nil {
			return fmt.Errorf("cluster-reset: moving %s aside: %w", o.DataDir, err)
		}
	}
	if err := os.Rename(out, o.DataDir); err != nil {
		return fmt.Errorf("cluster-reset: %w", err)
	}
	os.Chmod(o.DataDir, 0o700)
	syncDir(filepath.Dir(o.DataDir))
	data, _ := json.Marshal(m)
	if err := files.WriteAtomic(mpath, data, 0o600, -1, -1); err != nil {
		return fmt.Errorf("cluster-reset: writing %s: %w", mpath, err)
	}
	aside := ""
	if m.Aside != "" {
		aside = "; the data it had is kept in " + m.Aside
	}
	what := "reset embedded etcd's membership to this server alone (member " + o.Member + "), keeping its data"
	if o.RestorePath != "" {
		what = "restored " + from + " into a new etcd cluster of one member (" + o.Member + ")"
	}
	o.Printf("etcd: %s%s. Remove cluster-reset and cluster-reset-restore-path from this server's config; the other servers join again once their etcd data is cleared (docs/server.md, Snapshots and restore)", what, aside)
	return nil
}

// moveAside renames dir to aside; where the kernel will not rename it
// (EXDEV: a directory of an overlay's lower layer, as /var/lib/cairn is on
// a live boot and on the container platform), it copies the tree and then
// removes dir. etcd's data directory holds directories and regular files.
func moveAside(dir, aside string) error {
	err := os.Rename(dir, aside)
	if !errors.Is(err, syscall.EXDEV) {
		return err
	}
	// CopyFS makes files readable by all: only root may enter aside.
	if err := os.Mkdir(aside, 0o700); err != nil {
		return err
	}
	if err := os.CopyFS(aside, os.DirFS(dir)); err != nil {
		os.RemoveAll(aside)
		return err
	}
	return os.RemoveAll(dir)
}

// restore runs etcd's restore, telling a panic (a damaged database) as
// an error.
func restore(cfg snapshot.RestoreConfig) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the database is damaged: %v", r)
		}
	}()
	return snapshot.NewV3(zap.NewNop()).Restore(cfg)
}

// Magic numbers of the compressed forms.
var (
	zipMagic  = []byte("PK\x03\x04")
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompress returns a plain snapshot file for src: src itself, or tmp
// holding it decompressed (a zip archive of one file, as k3s writes, or
// a zstd stream), and what removes tmp.
func decompress(src, tmp string) (string, func(), error) {
	f, err := os.Open(src)
	if err != nil {
		return "", nil, fmt.Errorf("%w: copy the snapshot to this server (it is on the server that took it, in its etcd-snapshot-dir), or fix the path", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", nil, err
	}
	if !st.Mode().IsRegular() {
		return "", nil, errors.New("is not a file")
	}
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err != nil {
		return "", nil, errors.New("is too short to be an etcd snapshot")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", nil, err
	}
	var r io.Reader
	switch {
	case bytes.Equal(head, zipMagic):
		zr, err := zip.NewReader(f, st.Size())
		if err != nil {
			return "", nil, fmt.Errorf("a zip archive that does not open: %w", err)
		}
		var entry *zip.File
		for _, e := range zr.File {
			if e.Mode().IsRegular() {
				if entry != nil {
					return "", nil, errors.New("a zip archive of more than one file; a snapshot's holds one")
				}
				entry = e
			}
		}
		if entry == nil {
			return "", nil, errors.New("a zip archive with no file in it")
		}
		rc, err := entry.Open()
		if err != nil {
			return "", nil, err
		}
		defer rc.Close()
		r = rc
	case bytes.Equal(head, zstdMagic):
		zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			return "", nil, err
		}
		defer zr.Close()
		r = zr
	default:
		return src, func() {}, nil
	}
	os.Remove(tmp)
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(tmp) }
	n, err := io.Copy(out, io.LimitReader(r, maxSnapshot+1))
	if err == nil && n > maxSnapshot {
		err = fmt.Errorf("decompresses to more than %d GiB", maxSnapshot>>30)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("decompressing: %w", err)
	}
	return tmp, cleanup, nil
}
