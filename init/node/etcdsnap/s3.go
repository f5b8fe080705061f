package etcdsnap

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	snaprec "github.com/cairn-os/cairn/config/etcdsnap"
)

// S3 is the bucket a server copies its snapshots to (etcd-s3), and how
// it reaches it, as k3s does: each snapshot uploaded after it is taken,
// the newest Retention of this server's copies kept, a restore's
// snapshot downloaded by its name.
type S3 struct {
	// Endpoint is host or host:port; Insecure talks plain HTTP to it.
	Endpoint string
	Insecure bool
	// CA is PEM: the CAs that sign the endpoint's certificate (nil: the
	// system's). SkipVerify accepts any certificate.
	CA         []byte
	SkipVerify bool
	// Bucket, Region and Folder (no leading or trailing slash; "" for
	// the bucket's top) say where the copies go.
	Bucket, Region, Folder string
	// AccessKey and SecretKey are the credentials; both empty: the
	// instance's IAM role, from its metadata service. SecretKey is a
	// secret: never in a message.
	AccessKey, SecretKey string
	// Timeout bounds each upload, each download and each listing with
	// its removals.
	Timeout time.Duration
}

// Bounds in S3: a listing of this server's copies stops after maxS3List
// objects (a bucket someone else fills); metaSHA256 is the object
// metadata that carries a snapshot's sha256.
var (
	maxS3List  = 10_000
	metaSHA256 = "Cairn-Sha256"
	metaNode   = "Cairn-Node"
)

// key is the object key of a snapshot named name.
func (s *S3) key(name string) string {
	if s.Folder == "" {
		return name
	}
	return s.Folder + "/" + name
}

// Location is where the copy of the snapshot named name is, as the
// record and the console say it: s3://BUCKET/FOLDER/NAME.
func (s *S3) Location(name string) string { return "s3://" + s.Bucket + "/" + s.key(name) }

// where is the bucket and folder, for messages.
func (s *S3) where() string { return strings.TrimSuffix(s.Location(""), "/") }

// client is a client of the endpoint. It makes no request.
func (s *S3) client() (*minio.Client, error) {
	tr, err := minio.DefaultTransport(!s.Insecure)
	if err != nil {
		return nil, err
	}
	if !s.Insecure {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.SkipVerify}
		if len(s.CA) > 0 {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(s.CA) {
				return nil, errors.New("etcd-s3-endpoint-ca holds no PEM certificate")
			}
			tc.RootCAs = pool
		}
		tr.TLSClientConfig = tc
	}
	creds := credentials.NewIAM("")
	if s.AccessKey != "" || s.SecretKey != "" {
		creds = credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")
	}
	return minio.New(s.Endpoint, &minio.Options{Creds: creds, Secure: !s.Insecure, Region: s.Region, Transport: tr, MaxRetries: 3})
}

// clean is err for a console line or the record: the secret key cut out
// should a server ever echo it, and what to do about a certificate
// nobody here trusts.
func (s *S3) clean(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if s.SecretKey != "" {
		msg = strings.ReplaceAll(msg, s.SecretKey, "<redacted>")
	}
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) || strings.Contains(msg, "certificate signed by unknown authority") {
		if len(s.CA) == 0 {
			msg += " (the image holds no CA certificates: give the endpoint's CA with etcd-s3-endpoint-ca)"
		} else {
			msg += " (etcd-s3-endpoint-ca does not hold the CA that signed the endpoint's certificate)"
		}
	}
	return errors.New(msg)
}

// upload copies the snapshot file at file to the bucket as name within
// s.Timeout, its sha256 and node as the object's metadata, and returns
// its size.
func (s *S3) upload(ctx context.Context, cli *minio.Client, file, name, node, sum string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	_, err = cli.PutObject(ctx, s.Bucket, s.key(name), f, st.Size(), minio.PutObjectOptions{
		ContentType:  "application/octet-stream",
		UserMetadata: map[string]string{metaSHA256: sum, metaNode: node},
		// One part in memory at a time: PID 1 uploads it.
		NumThreads: 1,
	})
	if err != nil {
		return 0, s.clean(err)
	}
	return st.Size(), nil
}

// remote is one of this server's copies in the bucket.
type remote struct {
	name string
	unix int64
	size int64
}

// list lists this server's copies in the bucket (names as o.pattern
// matches them, under the folder), newest first, within s.Timeout.
// complete is false when the listing stopped at maxS3List objects.
func (s *S3) list(ctx context.Context, cli *minio.Client, o Options) (have []remote, complete bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel() // ends the listing's requests when it stops early
	folder := s.key("")
	re := o.pattern()
	n := 0
	complete = true
	for obj := range cli.ListObjectsIter(ctx, s.Bucket, minio.ListObjectsOptions{Prefix: s.key(o.Name + "-" + o.Node + "-")}) {
		if obj.Err != nil {
			return nil, false, s.clean(obj.Err)
		}
		if n++; n > maxS3List {
			complete = false
			break
		}
		name := strings.TrimPrefix(obj.Key, folder)
		m := re.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		u, _ := strconv.ParseInt(m[1], 10, 64)
		have = append(have, remote{name: name, unix: u, size: obj.Size})
	}
	sortNewest(have)
	return have, complete, nil
}

// sortNewest sorts copies newest first.
func sortNewest(have []remote) {
	slices.SortFunc(have, func(a, b remote) int {
		if c := cmp.Compare(b.unix, a.unix); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
}

// prune removes this server's copies beyond the newest retention from
// have (newest first) within s.Timeout, and returns the names removed.
func (s *S3) prune(ctx context.Context, cli *minio.Client, have []remote, retention int) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	var removed []string
	var errs []error
	for _, r := range have[min(len(have), max(retention, 1)):] {
		if err := cli.RemoveObject(ctx, s.Bucket, s.key(r.name), minio.RemoveObjectOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.name, s.clean(err)))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		removed = append(removed, r.name)
	}
	return removed, errors.Join(errs...)
}

// download copies the object name (under the folder) into dst, a new
// file of mode 0600, within s.Timeout, refusing one larger than a
// snapshot may be; when the object carries a sha256 (cairn uploaded it),
// the copy must match it. It returns the size.
func (s *S3) download(ctx context.Context, name, dst string) (int64, error) {
	cli, err := s.client()
	if err != nil {
		return 0, s.clean(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	obj, err := cli.GetObject(ctx, s.Bucket, s.key(name), minio.GetObjectOptions{})
	if err != nil {
		return 0, s.clean(err)
	}
	defer obj.Close()
	info, err := obj.Stat()
	if err != nil {
		return 0, s.clean(err)
	}
	if info.Size > maxSnapshot {
		return 0, fmt.Errorf("it is %s, larger than a snapshot may be (%s)", snaprec.Size(info.Size), snaprec.Size(maxSnapshot))
	}
	os.Remove(dst)
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(obj, maxSnapshot+1))
	if err == nil && n > maxSnapshot {
		err = fmt.Errorf("it is larger than a snapshot may be (%s)", snaprec.Size(maxSnapshot))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != info.Size {
		err = fmt.Errorf("%d bytes came of %d", n, info.Size)
	}
	if want := metaValue(info.UserMetadata, metaSHA256); err == nil && want != "" {
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			err = fmt.Errorf("its sha256 is %s, but it was uploaded with %s: damaged in the bucket or on the way", got, want)
		}
	}
	if err != nil {
		os.Remove(dst)
		return 0, s.clean(err)
	}
	return n, nil
}

// metaValue is the user metadata key's value, whatever the case the
// server returns the key in.
func metaValue(m map[string]string, key string) string {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// startS3 makes the client of o.S3 (it makes no request), and says so in
// one console line when it cannot; false: no copies.
func (r *runner) startS3() bool {
	s := r.o.S3
	if s == nil {
		return false
	}
	cli, err := s.client()
	if err != nil {
		r.o.Printf("etcd-snapshot: snapshots are not copied to %s: %v", s.where(), s.clean(err))
		return false
	}
	r.mu.Lock()
	r.s3 = cli
	r.mu.Unlock()
	return true
}

// firstListing lists this server's copies in the bucket, so that the
// record shows them, unless a copy has listed them since; a failure is
// one console line.
func (r *runner) firstListing(ctx context.Context) {
	s := r.o.S3
	have, complete, err := s.list(ctx, r.s3, r.o)
	r.mu.Lock()
	if err == nil && r.s3Lists == 0 {
		r.s3Have, r.s3Known = have, complete
	}
	r.mu.Unlock()
	switch {
	case ctx.Err() != nil:
	case err != nil:
		r.o.Printf("etcd-snapshot: listing this server's copies in %s: %v; each snapshot is still copied there", s.where(), err)
	case r.o.API != nil:
		r.sync(ctx) // an answer that fails is the watch's to tell
	}
}

// copyToS3 uploads snap (this server's new file) to the bucket, says so
// in one console line, and keeps the newest o.Retention of this server's
// copies there, adding to entries what the record gains and loses. Its
// error is the upload's; r.mu is held.
func (r *runner) copyToS3(ctx context.Context, snap snaprec.Snapshot, entries map[string]any) error {
	s := r.o.S3
	began := time.Now()
	n, err := s.upload(ctx, r.s3, snap.Path, snap.Name, r.o.Node, snap.SHA256)
	if err != nil {
		if ctx.Err() == nil {
			r.o.Printf("etcd-snapshot: copying %s to %s failed: %v; the snapshot is in %s only", snap.Name, s.Location(snap.Name), err, r.o.Dir)
		}
		return err
	}
	r.o.Printf("etcd-snapshot: %s copied to %s: %s in %.1fs", snap.Name, s.Location(snap.Name), snaprec.Size(n), time.Since(began).Seconds())
	c := snap
	c.Path, c.S3, c.Size = "", s.Location(snap.Name), n
	entries[c.Key()] = snaprec.Entry(c)

	have, complete, err := s.list(ctx, r.s3, r.o)
	if err != nil {
		if ctx.Err() == nil {
			r.o.Printf("etcd-snapshot: listing this server's copies in %s to keep the newest %d: %v", s.where(), r.o.Retention, err)
		}
		return nil
	}
	if !slices.ContainsFunc(have, func(h remote) bool { return h.name == snap.Name }) {
		// A listing may lag behind an upload.
		have = append(have, remote{name: snap.Name, unix: snap.Time.Unix(), size: n})
		sortNewest(have)
	}
	removed, err := s.prune(ctx, r.s3, have, r.o.Retention)
	if err != nil && ctx.Err() == nil {
		r.o.Printf("etcd-snapshot: removing copies beyond the newest %d from %s: %v", r.o.Retention, s.where(), err)
	}
	for _, name := range removed {
		entries[snaprec.Snapshot{Name: name, S3: s.Location(name)}.Key()] = nil
	}
	r.s3Have = slices.DeleteFunc(have, func(h remote) bool { return slices.Contains(removed, h.name) })
	r.s3Known = complete
	r.s3Lists++
	return nil
}

// syncS3 makes the record's entries of this server's copies in S3 those
// last listed there, once a listing was whole: a copy nobody recorded is
// recorded, an entry whose copy is gone (or in another bucket or folder
// now) is deleted. r.mu is held.
func (r *runner) syncS3(rec *snaprec.Record, entries map[string]any) {
	s := r.o.S3
	if s == nil || !r.s3Known {
		return
	}
	listed := map[string]remote{}
	for _, h := range r.s3Have {
		listed[s.Location(h.name)] = h
	}
	for _, snap := range rec.Snapshots {
		if snap.Node != r.o.Node || snap.S3 == "" {
			continue
		}
		if _, ok := listed[snap.S3]; ok {
			delete(listed, snap.S3)
			continue
		}
		entries[snap.Key()] = nil
	}
	for loc, h := range listed {
		c := snaprec.Snapshot{Node: r.o.Node, Name: h.name, S3: loc, Size: h.size, Time: time.Unix(h.unix, 0).UTC()}
		entries[c.Key()] = snaprec.Entry(c)
	}
}
