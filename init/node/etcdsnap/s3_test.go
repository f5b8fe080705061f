package etcdsnap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"

	snaprec "github.com/cairn-os/cairn/config/etcdsnap"
)

// The S3 in these tests is gofakes3 (github.com/johannesboyne/gofakes3),
// an S3 server in this process over an in-memory store, in _test files
// only: no real S3 server can run here (MinIO's server is AGPL and cannot
// be had; Debian packages none). It checks no signature, so the
// credentials are only carried; what it proves is the client's side:
// keys, metadata, listing, removal, download, bounds.

// testSecret is the secret key every test target carries: it must never
// be in a console line or an error.
const testSecret = "s3cret-KEY-never-shown/xyz"

type fakeS3 struct {
	t       *testing.T
	backend *s3mem.Backend
	srv     *httptest.Server
}

// newFakeS3 serves an S3 over plain HTTP (tls: over HTTPS with
// httptest's certificate) holding buckets.
func newFakeS3(t *testing.T, tls bool, buckets ...string) *fakeS3 {
	f := &fakeS3{t: t, backend: s3mem.New()}
	h := gofakes3.New(f.backend).Server()
	f.srv = httptest.NewUnstartedServer(h)
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // a client refusing the certificate is a test's point
	if tls {
		f.srv.StartTLS()
	} else {
		f.srv.Start()
	}
	t.Cleanup(f.srv.Close)
	for _, b := range buckets {
		if err := f.backend.CreateBucket(b); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// target is a server's etcd-s3 settings for bucket and folder.
func (f *fakeS3) target(bucket, folder string) *S3 {
	return &S3{Endpoint: strings.TrimPrefix(strings.TrimPrefix(f.srv.URL, "http://"), "https://"), Insecure: strings.HasPrefix(f.srv.URL, "http://"),
		Bucket: bucket, Region: "us-east-1", Folder: folder, AccessKey: "AKIATEST", SecretKey: testSecret, Timeout: 20 * time.Second}
}

// put stores an object through the server, as someone else puts it,
// with meta as its user metadata.
func (f *fakeS3) put(bucket, key string, data []byte, meta map[string]string) {
	f.t.Helper()
	cli, err := f.target(bucket, "").client()
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := cli.PutObject(context.Background(), bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{UserMetadata: meta}); err != nil {
		f.t.Fatal(err)
	}
}

// keys are the bucket's object keys, sorted.
func (f *fakeS3) keys(bucket string) []string {
	f.t.Helper()
	l, err := f.backend.ListBucket(bucket, nil, gofakes3.ListBucketPage{})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, c := range l.Contents {
		out = append(out, c.Key)
	}
	slices.Sort(out)
	return out
}

// object is an object's content and metadata.
func (f *fakeS3) object(bucket, key string) ([]byte, map[string]string) {
	f.t.Helper()
	o, err := f.backend.GetObject(bucket, key, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	defer o.Contents.Close()
	data, _ := io.ReadAll(o.Contents)
	return data, o.Metadata
}

// snapshotFile writes a snapshot file as Take leaves it and returns its
// record.
func snapshotFile(t *testing.T, o Options, unix int64, content string) snaprec.Snapshot {
	t.Helper()
	name := fmt.Sprintf("%s-%s-%d.zst", o.Name, o.Node, unix)
	p := filepath.Join(o.Dir, name)
	os.MkdirAll(o.Dir, 0o700)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(content))
	return snaprec.Snapshot{Node: o.Node, Name: name, Path: p, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:]), Time: time.Unix(unix, 0).UTC()}
}

// Each snapshot is copied to bucket/folder/NAME with its sha256, one
// console line each; the newest Retention of this server's copies are
// kept, nothing else in the bucket is touched; the record gains the copy
// and loses the copies removed; the list is what sync records.
func TestS3CopiesAndRetention(t *testing.T) {
	f := newFakeS3(t, false, "backups")
	f.put("backups", "cluster-1/etcd-snapshot-s2-1765000000.zst", []byte("s2's"), nil)
	f.put("backups", "cluster-1/etcd-snapshot-s1-notes.txt", []byte("x"), nil)
	f.put("backups", "cluster-1/notes.txt", []byte("x"), nil)
	f.put("backups", "etcd-snapshot-s1-1765000001.zst", []byte("outside the folder"), nil)
	var console lines
	o := Options{Node: "s1", Name: "etcd-snapshot", Dir: filepath.Join(t.TempDir(), "etcd-snapshots"), Retention: 2,
		S3: f.target("backups", "cluster-1"), Printf: console.printf}
	r := &runner{o: o}
	ctx := context.Background()
	if !r.startS3() {
		t.Fatalf("no client: %q", console.all())
	}
	r.firstListing(ctx)
	if r.s3 == nil || !r.s3Known || len(r.s3Have) != 0 || len(console.all()) != 0 {
		t.Fatalf("after the first listing: client %v, known %v, have %v, console %q", r.s3 != nil, r.s3Known, r.s3Have, console.all())
	}

	var snaps []snaprec.Snapshot
	var last map[string]any
	for i := range 3 {
		snap := snapshotFile(t, o, 1765000010+int64(i), strings.Repeat("snapshot ", 100*(i+1)))
		snaps = append(snaps, snap)
		last = map[string]any{}
		if err := r.copyToS3(ctx, snap, last); err != nil {
			t.Fatalf("copying %s: %v", snap.Name, err)
		}
	}
	said := strings.Join(console.all(), "\n")
	for _, s := range snaps {
		re := `(?m)^etcd-snapshot: ` + regexp.QuoteMeta(s.Name) + ` copied to s3://backups/cluster-1/` + regexp.QuoteMeta(s.Name) + `: [\d.]+ (B|KiB) in [\d.]+s$`
		if !regexp.MustCompile(re).MatchString(said) {
			t.Errorf("the console says:\n%s\nwant a line matching %s", said, re)
		}
	}
	if n := len(console.all()); n != 3 {
		t.Errorf("the console says %d lines; want one per copy:\n%s", n, said)
	}
	want := []string{"cluster-1/etcd-snapshot-s1-1765000011.zst", "cluster-1/etcd-snapshot-s1-1765000012.zst", "cluster-1/etcd-snapshot-s1-notes.txt",
		"cluster-1/etcd-snapshot-s2-1765000000.zst", "cluster-1/notes.txt", "etcd-snapshot-s1-1765000001.zst"}
	if got := f.keys("backups"); !slices.Equal(got, want) {
		t.Errorf("the bucket holds %v; want %v (the oldest copy of s1 removed, nothing else)", got, want)
	}
	data, meta := f.object("backups", "cluster-1/"+snaps[2].Name)
	if string(data) != strings.Repeat("snapshot ", 300) || metaValue(meta, "X-Amz-Meta-"+metaSHA256) != snaps[2].SHA256 {
		t.Errorf("the copy holds %d bytes, metadata %v; want the file and its sha256 %s", len(data), meta, snaps[2].SHA256)
	}
	// What the last round records: its copy, and the oldest copy gone.
	copied := snaps[2]
	copied.Path, copied.S3 = "", "s3://backups/cluster-1/"+snaps[2].Name
	if got, _ := last["s3_"+snaps[2].Name].(string); got != snaprec.Entry(copied) {
		t.Errorf("the record gains %s; want %s", got, snaprec.Entry(copied))
	}
	if v, ok := last["s3_"+snaps[0].Name]; !ok || v != nil {
		t.Errorf("the record's entry of the removed copy: %v %v; want it deleted", v, ok)
	}
	if len(r.s3Have) != 2 || r.s3Have[0].name != snaps[2].Name || !r.s3Known {
		t.Errorf("the copies known: %+v (%v); want the newest two, newest first", r.s3Have, r.s3Known)
	}

	// The record brought in line with the bucket: a copy nobody recorded
	// is recorded, an entry whose copy is gone is deleted; another
	// server's entries and this server's files are not touched.
	rec := &snaprec.Record{Snapshots: []snaprec.Snapshot{
		{Node: "s1", Name: snaps[2].Name, S3: "s3://backups/cluster-1/" + snaps[2].Name},
		{Node: "s1", Name: snaps[0].Name, S3: "s3://backups/cluster-1/" + snaps[0].Name},
		{Node: "s1", Name: snaps[0].Name, Path: snaps[0].Path},
		{Node: "s2", Name: "etcd-snapshot-s2-1765000000.zst", S3: "s3://backups/cluster-1/etcd-snapshot-s2-1765000000.zst"},
	}}
	entries := map[string]any{}
	r.syncS3(rec, entries)
	wantEntries := map[string]any{"s3_" + snaps[0].Name: nil, "s3_" + snaps[1].Name: snaprec.Entry(snaprec.Snapshot{Node: "s1", Name: snaps[1].Name,
		S3: "s3://backups/cluster-1/" + snaps[1].Name, Size: snaps[1].Size, Time: snaps[1].Time})}
	if fmt.Sprint(entries) != fmt.Sprint(wantEntries) {
		t.Errorf("sync records %v; want %v", entries, wantEntries)
	}
}

// A restore's snapshot comes from the bucket whole, checked against the
// sha256 it was uploaded with, bounded; what fails says why, and leaves
// no file.
func TestS3Download(t *testing.T) {
	f := newFakeS3(t, false, "backups")
	s := f.target("backups", "")
	var console lines
	o := Options{Node: "s1", Name: "etcd-snapshot", Dir: t.TempDir(), Retention: 5, S3: s, Printf: console.printf}
	r := &runner{o: o}
	ctx := context.Background()
	r.startS3()
	snap := snapshotFile(t, o, 1765000100, "the cluster as it was")
	if err := r.copyToS3(ctx, snap, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), ".etcd-restore-s3")
	n, err := s.download(ctx, snap.Name, dst)
	if err != nil || n != snap.Size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	if st, err := os.Stat(dst); err != nil || st.Mode().Perm() != 0o600 || fileSHA(t, dst) != snap.SHA256 {
		t.Errorf("the downloaded file: %v %v; want the snapshot, mode 0600", st, err)
	}

	// Damaged in the bucket: the sha256 it was uploaded with says so.
	f.put("backups", snap.Name, []byte("the cluster as it was not"), map[string]string{metaSHA256: snap.SHA256})
	// Too large, missing, a bucket that does not exist.
	f.put("backups", "huge", bytes.Repeat([]byte("x"), 64), nil)
	defer func(m int64) { maxSnapshot = m }(maxSnapshot)
	maxSnapshot = 32
	missing := f.target("no-such-bucket", "")
	for _, tt := range []struct {
		s          *S3
		name, want string
	}{
		{s, snap.Name, "its sha256 is "},
		{s, "huge", "it is 64 B, larger than a snapshot may be (32 B)"},
		{s, "etcd-snapshot-s1-1", "The specified key does not exist."},
		{missing, snap.Name, "does not exist"},
	} {
		os.Remove(dst)
		_, err := tt.s.download(ctx, tt.name, dst)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), testSecret) {
			t.Errorf("downloading %s: %v; want %q", tt.name, err, tt.want)
		}
		if _, err := os.Stat(dst); err == nil {
			t.Errorf("downloading %s failed and left %s", tt.name, dst)
		}
	}
	// A listing of a bucket that does not exist is one console line.
	console = lines{}
	r = &runner{o: Options{Node: "s1", Name: "etcd-snapshot", S3: missing, Printf: console.printf}}
	r.startS3()
	r.firstListing(ctx)
	if said := console.all(); len(said) != 1 || !strings.HasPrefix(said[0], "etcd-snapshot: listing this server's copies in s3://no-such-bucket: The specified bucket does not exist") {
		t.Errorf("a missing bucket: the console says %q", said)
	}
}

// What goes wrong on the way: a server that echoes the secret key gets
// it cut out of every line; one that never answers ends at the timeout;
// an HTTPS endpoint nobody here trusts says to give its CA, and with its
// CA the copy goes through.
func TestS3Failures(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>signature mismatch for secret %s</Message></Error>`, testSecret)
	}))
	defer echo.Close()
	block := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-block:
		}
	}))
	defer hang.Close()
	defer close(block)
	tlsS3 := newFakeS3(t, true, "backups")
	withCA := tlsS3.target("backups", "")
	withCA.CA = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsS3.srv.Certificate().Raw})

	ctx := context.Background()
	for _, tt := range []struct {
		name string
		s    *S3
		want string // in the console line; "" for a copy made
	}{
		{"the secret echoed", &S3{Endpoint: strings.TrimPrefix(echo.URL, "http://"), Insecure: true, Bucket: "backups", Region: "us-east-1", AccessKey: "AKIATEST", SecretKey: testSecret, Timeout: 10 * time.Second},
			"failed: signature mismatch for secret <redacted>; the snapshot is in "},
		{"no answer", &S3{Endpoint: strings.TrimPrefix(hang.URL, "http://"), Insecure: true, Bucket: "backups", Region: "us-east-1", AccessKey: "AKIATEST", SecretKey: testSecret, Timeout: time.Second},
			"context deadline exceeded"},
		{"an unknown CA", tlsS3.target("backups", ""), "(the image holds no CA certificates: give the endpoint's CA with etcd-s3-endpoint-ca)"},
		{"its CA", withCA, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var console lines
			o := Options{Node: "s1", Name: "etcd-snapshot", Dir: t.TempDir(), Retention: 5, S3: tt.s, Printf: console.printf}
			r := &runner{o: o}
			cli, err := tt.s.client()
			if err != nil {
				t.Fatal(err)
			}
			r.s3 = cli
			snap := snapshotFile(t, o, 1765000200, "snapshot")
			err = r.copyToS3(ctx, snap, map[string]any{})
			said := strings.Join(console.all(), "\n")
			if strings.Contains(said, testSecret) || (err != nil && strings.Contains(err.Error(), testSecret)) {
				t.Errorf("the secret key is shown: %s / %v", said, err)
			}
			if tt.want == "" {
				if err != nil || !strings.Contains(said, " copied to s3://backups/"+snap.Name) {
					t.Errorf("copy: %v; the console says %q", err, said)
				}
				return
			}
			head := "etcd-snapshot: copying " + snap.Name + " to s3://backups/" + snap.Name + " failed: "
			if err == nil || len(console.all()) != 1 || !strings.HasPrefix(said, head) || !strings.Contains(said, tt.want) {
				t.Errorf("copy: %v; the console says %q; want one line starting %q and holding %q", err, said, head, tt.want)
			}
		})
	}
}

// A listing stops at its bound.
func TestS3ListBound(t *testing.T) {
	f := newFakeS3(t, false, "backups")
	for i := range 5 {
		f.put("backups", fmt.Sprintf("etcd-snapshot-s1-%d", 1765000000+i), []byte("x"), nil)
	}
	defer func(n int) { maxS3List = n }(maxS3List)
	maxS3List = 3
	s := f.target("backups", "")
	cli, _ := s.client()
	have, complete, err := s.list(context.Background(), cli, Options{Node: "s1", Name: "etcd-snapshot"})
	if err != nil || complete || len(have) != 3 {
		t.Errorf("a listing past its bound: %d copies, complete %v, %v; want 3, false", len(have), complete, err)
	}
}

// The whole round with etcd: `cairn etcd-snapshot save` against a server
// with etcd-s3 answers with the file and its copy; the record lists both;
// a restore by the copy's name downloads it and restores it: the key
// written before the snapshot is there, the one after is not.
func TestRunS3SaveRestore(t *testing.T) {
	e := newTestEtcd(t)
	e.start()
	f := newFakeS3(t, false, "backups")
	s := f.target("backups", "etcd")
	api := newFakeAPI(t, "s1")
	var console lines
	state := filepath.Dir(e.dir)
	dir := filepath.Join(state, "etcd-snapshots")
	ctx, cancel := context.WithCancel(context.Background())
	o := Options{Node: "s1", Etcd: e.config(), API: api.client(), Dir: dir, Name: "etcd-snapshot", Retention: 3, S3: s, Printf: console.printf}
	done := make(chan struct{})
	go func() { Run(ctx, o); close(done) }()
	stopped := false
	stop := func() {
		if !stopped {
			cancel()
			<-done
			stopped = true
		}
	}
	defer stop()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if rec, err := snaprec.Read(ctx, api.client()); err == nil && len(rec.Servers) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not register")
		}
	}
	e.put("before")
	answers, err := snaprec.Save(ctx, api.client(), 30*time.Second, func(snaprec.Answer) {})
	if err != nil || len(answers) != 1 || answers[0].Snapshot == nil || answers[0].S3 == nil || answers[0].S3Error != "" {
		t.Fatalf("save: %+v %v; want a snapshot and its copy", answers, err)
	}
	a := answers[0]
	loc := "s3://backups/etcd/" + a.Snapshot.Name
	if got := snaprec.Describe(a); !strings.HasSuffix(got, "), copied to "+loc) {
		t.Errorf("save prints %q; want the copy named", got)
	}
	if a.S3.S3 != loc || a.S3.SHA256 != a.Snapshot.SHA256 || a.S3.Size != a.Snapshot.Size {
		t.Errorf("the copy recorded: %+v; the file: %+v", a.S3, a.Snapshot)
	}
	var b bytes.Buffer
	rec, _ := snaprec.Read(ctx, api.client())
	snaprec.WriteList(&b, rec)
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(a.Snapshot.Name) + ` +s1 +` + regexp.QuoteMeta(loc) + ` `).MatchString(b.String()) {
		t.Errorf("list prints:\n%s\nwant the copy in S3", b.String())
	}
	said := strings.Join(console.all(), "\n")
	if !strings.Contains(said, "takes one into "+dir+", each copied to s3://backups/etcd (the newest 3 kept there too)") ||
		!strings.Contains(said, "etcd-snapshot: "+a.Snapshot.Name+" copied to "+loc+": ") {
		t.Errorf("the console says:\n%s", said)
	}
	e.put("after")
	stop()

	// The restore, as a boot with cluster-reset-restore-path: NAME does it.
	e.stop()
	os.Remove(a.Snapshot.Path) // it comes from the bucket, not from here
	console = lines{}
	ro := ResetOptions{Reset: true, RestorePath: a.Snapshot.Name, S3: s, DataDir: e.dir, StateDir: state, Member: "s1", PeerURL: e.peer, Printf: console.printf}
	if err := Reset(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	e.start()
	if before, _ := e.has("before"); !before {
		t.Error("the restored cluster lacks the key written before the snapshot")
	}
	if after, _ := e.has("after"); after {
		t.Error("the restored cluster holds the key written after the snapshot")
	}
	said = strings.Join(console.all(), "\n")
	if !regexp.MustCompile(`(?m)^etcd: downloaded `+regexp.QuoteMeta(loc)+` to restore it: [\d.]+ [KM]iB in [\d.]+s$`).MatchString(said) ||
		!regexp.MustCompile(`(?m)^etcd: restored `+regexp.QuoteMeta(loc)+` into a new etcd cluster of one member \(s1\)`).MatchString(said) {
		t.Errorf("the restore says:\n%s", said)
	}
	if left, _ := filepath.Glob(filepath.Join(state, ".etcd-restore*")); len(left) != 0 {
		t.Errorf("the restore left %v", left)
	}
	if strings.Contains(said, testSecret) {
		t.Error("the secret key is on the console")
	}

	// Without etcd-s3 a name is refused, saying why.
	os.Remove(filepath.Join(state, MarkerName))
	ro.S3 = nil
	if err := Reset(context.Background(), ro); err == nil || !strings.Contains(err.Error(), "is not an absolute path, and etcd-s3 is not set") {
		t.Errorf("a restore by name without etcd-s3: %v", err)
	}
}
