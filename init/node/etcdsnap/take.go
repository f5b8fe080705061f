package etcdsnap

import (
	"archive/zip"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/config"
	snaprec "github.com/cairn-os/cairn/config/etcdsnap"
)

// Bounds of a snapshot: etcd's database is at most 8 GiB (its largest
// quota), and streaming it must end within snapshotTimeout.
var (
	maxSnapshot     int64 = 10 << 30
	snapshotTimeout       = 30 * time.Minute
	statusTimeout         = 15 * time.Second
)

// ext is a compression's file name ending, as k3s names its files.
func ext(compress string) string {
	switch compress {
	case config.CompressZip:
		return ".zip"
	case config.CompressZstd:
		return ".zst"
	}
	return ""
}

// Take streams a snapshot of the member o.Etcd names into o.Dir,
// compressed as o.Compress: written to a temporary file (mode 0600),
// synced and renamed, so the directory holds whole snapshots only. request
// is recorded with it.
func Take(ctx context.Context, o Options, request string) (snaprec.Snapshot, error) {
	if len(o.Etcd.Endpoints) != 1 {
		return snaprec.Snapshot{}, fmt.Errorf("a snapshot is of one member; %d endpoints given", len(o.Etcd.Endpoints))
	}
	now := o.now()
	name := fmt.Sprintf("%s-%s-%d%s", o.Name, o.Node, now.Unix(), ext(o.Compress))
	snap := snaprec.Snapshot{Node: o.Node, Name: name, Path: filepath.Join(o.Dir, name), Time: now.UTC(), Request: request}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return snap, err
	}
	if _, err := os.Lstat(snap.Path); err == nil {
		return snap, fmt.Errorf("%s exists already: one snapshot a second at most", snap.Path)
	}
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	cli, err := clientv3.New(o.Etcd)
	if err != nil {
		return snap, fmt.Errorf("a client of etcd: %w", err)
	}
	defer cli.Close()
	// A member that does not answer fails at once, not at the end of the
	// stream's timeout.
	sctx, scancel := context.WithTimeout(ctx, statusTimeout)
	_, err = cli.Status(sctx, o.Etcd.Endpoints[0])
	scancel()
	if err != nil {
		return snap, fmt.Errorf("etcd at %s does not answer: %w", o.Etcd.Endpoints[0], err)
	}
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		return snap, fmt.Errorf("asking etcd at %s for a snapshot: %w", strings.Join(o.Etcd.Endpoints, ","), err)
	}
	defer rc.Close()
	tmp := filepath.Join(o.Dir, "."+name+".part")
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return snap, err
	}
	defer os.Remove(tmp) // fails harmlessly after the rename
	h := sha256.New()
	n, err := write(io.MultiWriter(f, h), rc, o.Compress, strings.TrimSuffix(name, ".zip"), now)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return snap, err
	}
	if n == 0 {
		return snap, errors.New("etcd sent an empty snapshot")
	}
	if err := os.Rename(tmp, snap.Path); err != nil {
		return snap, err
	}
	syncDir(o.Dir)
	st, err := os.Stat(snap.Path)
	if err != nil {
		return snap, err
	}
	snap.Size, snap.SHA256 = st.Size(), hex.EncodeToString(h.Sum(nil))
	return snap, nil
}

// write copies the snapshot stream r to w, compressed, and returns how
// many bytes etcd sent; more than maxSnapshot is an error.
func write(w io.Writer, r io.Reader, compress, inner string, now time.Time) (int64, error) {
	var out io.Writer = w
	var closeOut func() error
	switch compress {
	case config.CompressZip:
		zw := zip.NewWriter(w)
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: inner, Method: zip.Deflate, Modified: now})
		if err != nil {
			return 0, err
		}
		out, closeOut = fw, zw.Close
	case config.CompressZstd:
		zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return 0, err
		}
		out, closeOut = zw, zw.Close
	}
	n, err := io.Copy(out, io.LimitReader(r, maxSnapshot+1))
	if err != nil {
		return n, fmt.Errorf("reading the snapshot from etcd: %w", err)
	}
	if n > maxSnapshot {
		return n, fmt.Errorf("etcd's snapshot is larger than %d GiB", maxSnapshot>>30)
	}
	if closeOut != nil {
		if err := closeOut(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// local is one of this server's snapshot files in the directory.
type local struct {
	name string
	unix int64
}

// pattern matches the names of this server's snapshot files.
func (o Options) pattern() *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(o.Name+"-"+o.Node+"-") + `([0-9]{1,19})(\.zip|\.zst)?$`)
}

// locals are this server's snapshot files in o.Dir, newest first.
func locals(o Options) ([]local, error) {
	ents, err := os.ReadDir(o.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	re := o.pattern()
	var out []local
	for _, e := range ents {
		m := re.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		u, _ := strconv.ParseInt(m[1], 10, 64)
		out = append(out, local{name: e.Name(), unix: u})
	}
	slices.SortFunc(out, func(a, b local) int {
		if c := cmp.Compare(b.unix, a.unix); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return out, nil
}

// Prune removes this server's snapshot files beyond the newest
// o.Retention and returns their names. Other files in the directory are
// left alone.
func Prune(o Options) ([]string, error) {
	files, err := locals(o)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, f := range files[min(len(files), max(o.Retention, 1)):] {
		if err := os.Remove(filepath.Join(o.Dir, f.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, f.name)
	}
	if len(removed) > 0 {
		syncDir(o.Dir)
	}
	return removed, errors.Join(errs...)
}

// cleanParts removes what a snapshot cut short (a crash, a power cut)
// left in the directory.
func cleanParts(o Options) {
	ents, _ := os.ReadDir(o.Dir)
	prefix := "." + o.Name + "-" + o.Node + "-"
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) && strings.HasSuffix(e.Name(), ".part") {
			os.Remove(filepath.Join(o.Dir, e.Name()))
		}
	}
}
