package upgrader

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/init/supervise"
)

// blobStore holds an upgrade's files by sha256 on STATE: what this node
// fetched for itself and, on a server, what `cairn upgrade --image DIR`
// uploaded for every node.
type blobStore struct {
	dir string
	mu  sync.Mutex
	// busy are the sha256s being written now.
	busy map[string]bool
}

func newBlobStore(dataDir string) *blobStore {
	return &blobStore{dir: filepath.Join(dataDir, "upgrade", "blobs"), busy: map[string]bool{}}
}

func (b *blobStore) path(sum string) string { return filepath.Join(b.dir, sum) }

// has says whether the store holds f, whole.
func (b *blobStore) has(f upgrade.File) bool {
	st, err := os.Stat(b.path(f.SHA256))
	return err == nil && st.Size() == f.Size
}

// put writes f from r, which must give exactly f's bytes: a file of
// another size or sha256 is refused and nothing of it kept. Only one
// writer per file at a time.
func (b *blobStore) put(f upgrade.File, r io.Reader) error {
	b.mu.Lock()
	if b.busy[f.SHA256] {
		b.mu.Unlock()
		return errBusy
	}
	b.busy[f.SHA256] = true
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.busy, f.SHA256)
		b.mu.Unlock()
	}()
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return err
	}
	var fs unix.Statfs_t
	if unix.Statfs(b.dir, &fs) == nil && int64(fs.Bavail)*fs.Bsize < f.Size+64<<20 {
		return fmt.Errorf("%s has %d MiB free, %s needs %d MiB", b.dir, int64(fs.Bavail)*fs.Bsize>>20, f.Name, f.Size>>20)
	}
	tmp := b.path(f.SHA256) + ".part"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(r, f.Size+1))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return err
	case n != f.Size:
		return fmt.Errorf("%s: got %d bytes, want %d", f.Name, n, f.Size)
	case hex.EncodeToString(h.Sum(nil)) != f.SHA256:
		return fmt.Errorf("%s: its sha256 is %s, not %s", f.Name, hex.EncodeToString(h.Sum(nil)), f.SHA256)
	}
	return os.Rename(tmp, b.path(f.SHA256))
}

var errBusy = errors.New("this file is being written already")

// prune removes every file but those in keep.
func (b *blobStore) prune(keep map[string]bool) {
	ents, _ := os.ReadDir(b.dir)
	for _, e := range ents {
		if !keep[e.Name()] && !strings.HasSuffix(e.Name(), ".part") {
			os.Remove(filepath.Join(b.dir, e.Name()))
		}
	}
}

// wanted finds f by sha256 among the files of the upgrades that have not
// ended, with the uids of the upgrades that name it (none: no upgrade
// does).
func wanted(ctx context.Context, api *kube.Client, sum string) (upgrade.File, []string, error) {
	var list struct{ Items []upgrade.Upgrade }
	if err := api.Get(ctx, upgrade.Path(""), &list); err != nil {
		return upgrade.File{}, nil, err
	}
	var found upgrade.File
	var uids []string
	for _, u := range list.Items {
		if upgrade.Done(u.Status.Phase) {
			continue
		}
		for _, im := range u.Spec.Images {
			for _, f := range im.Files {
				if f.SHA256 == sum {
					found = f
					uids = append(uids, u.Metadata.UID)
				}
			}
		}
	}
	return found, uids, nil
}

// Bounds of the file service's requests. A request's headers must come
// within blobHeaderTimeout, and every request is given blobRequestTimeout
// to be read; an upload that is let in gets that and its file's size at
// blobFloor more, so a stalled one gives its slot back. The floor is
// below the CLI's (256 KiB/s), whose own deadline then ends a slow upload
// first, with its own words.
const (
	blobHeaderTimeout = 10 * time.Second
	blobIdleTimeout   = time.Minute
	blobFloor         = 64 << 10
	// blobUploads is how many uploads go on at once.
	blobUploads = 4
)

var blobRequestTimeout = 30 * time.Second

// blobDeadline is how long a transfer of size bytes may take.
func blobDeadline(size int64) time.Duration {
	return blobRequestTimeout + time.Duration(size/blobFloor)*time.Second
}

// blobAccess says who may use the file service.
type blobAccess struct {
	// clientCAs are the cluster's client CA: a certificate of it may
	// fetch (GET).
	clientCAs *x509.CertPool
	// adminGroup is the organisation of the admin's certificate (of the
	// client CA): only it may upload (PUT).
	adminGroup string
	// node is this server's Node name, which an upload's proof names.
	node string
	// stillAdmin asks the apiserver whether an admin's certificate may
	// still act as one (adminCache over mayAdmin); nil refuses every
	// upload.
	stillAdmin func(ctx context.Context, cert *x509.Certificate) error
}

// serveBlobs serves the store on upgrade.BlobPort (HTTPS, with the
// apiserver's certificate): GET to nodes presenting a certificate of the
// cluster's client CA, PUT by an admin of files a live Upgrade names
// (their sha256 and size checked as they arrive, so no one can store
// anything else). Whether an admin is still one the apiserver says, asked
// with api (the node's credentials, which may ask).
func serveBlobs(ctx context.Context, store *blobStore, api *kube.Client, node string, sc *ServeConfig, printf func(string, ...any)) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(sc.ClientCA)
	tlsCfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  pool,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(sc.CertFile, sc.KeyFile)
			return &c, err
		},
	}
	admins := &adminCache{ask: func(ctx context.Context, cert *x509.Certificate) error { return mayAdmin(ctx, api, cert) }}
	access := blobAccess{clientCAs: pool, adminGroup: sc.AdminGroup, node: node, stillAdmin: admins.check}
	mux := blobHandler(store, access, func(ctx context.Context, sum string) (upgrade.File, []string, error) { return wanted(ctx, api, sum) }, printf)
	srv := &http.Server{Handler: withAdmin(mux, access, sc.Admin), TLSConfig: tlsCfg, MaxHeaderBytes: 16 << 10,
		// A request's body and reply get deadlines of their own, by size
		// (blobHandler); these bound the rest: the handshake and the
		// headers, and a connection left open.
		ReadHeaderTimeout: blobHeaderTimeout, IdleTimeout: blobIdleTimeout,
		// HTTP/1.1 only: one large body per connection, with TCP's own
		// flow control, not HTTP/2's windows.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
	for delay := time.Second; ctx.Err() == nil; delay = min(delay*2, time.Minute) {
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", upgrade.BlobPort))
		if err != nil {
			printf("upgrade: serving upgrade files on port %d: %v; retrying in %s", upgrade.BlobPort, err, delay)
			supervise.Sleep(ctx, delay)
			continue
		}
		supervise.Go("upgrade: file service stop", func() { <-ctx.Done(); srv.Close() })
		srv.ServeTLS(ln, "", "")
		return
	}
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// uploader checks that r comes from an admin: the TLS client certificate
// is one, or the request carries an admin's proof of this upload (through
// the apiserver's node proxy, which presents no certificate), and the
// apiserver still lets that certificate act as an admin (its binding may
// have been deleted since it was minted). It returns the uid of the
// Upgrade a proof names ("" for a TLS certificate, which names none).
func (a blobAccess) uploader(r *http.Request, f upgrade.File) (string, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		leaf := r.TLS.VerifiedChains[0][0]
		if !slices.Contains(leaf.Subject.Organization, a.adminGroup) {
			return "", fmt.Errorf("the client certificate (%s) is not an admin's (%s)", leaf.Subject.CommonName, a.adminGroup)
		}
		return "", a.admin(r.Context(), leaf)
	}
	cert, uid, err := upgrade.VerifyUpload(r.Header, a.clientCAs, a.node, f)
	if err != nil {
		return "", err
	}
	if !slices.Contains(cert.Subject.Organization, a.adminGroup) {
		return "", fmt.Errorf("the upload's certificate (%s) is not an admin's (%s)", cert.Subject.CommonName, a.adminGroup)
	}
	if uid == "" {
		return "", errors.New("the upload's proof names no upgrade")
	}
	return uid, a.admin(r.Context(), cert)
}

// admin asks stillAdmin about cert.
func (a blobAccess) admin(ctx context.Context, cert *x509.Certificate) error {
	if a.stillAdmin == nil {
		return errors.New("this server cannot ask the apiserver who is an admin")
	}
	return a.stillAdmin(ctx, cert)
}

// blobHandler serves store: GET to clients with a verified certificate,
// PUT by an admin of the files want names.
func blobHandler(store *blobStore, access blobAccess, want func(ctx context.Context, sum string) (upgrade.File, []string, error), printf func(string, ...any)) http.Handler {
	uploads := make(chan struct{}, blobUploads)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+upgrade.BlobPath("{sum}"), func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "a certificate of the cluster's client CA is needed", http.StatusForbidden)
			return
		}
		sum := r.PathValue("sum")
		if !isSHA256(sum) {
			http.NotFound(w, r)
			return
		}
		if st, err := os.Stat(store.path(sum)); err == nil {
			http.NewResponseController(w).SetWriteDeadline(time.Now().Add(blobDeadline(st.Size())))
		}
		http.ServeFile(w, r, store.path(sum))
	})
	mux.HandleFunc("PUT "+upgrade.BlobPath("{sum}"), func(w http.ResponseWriter, r *http.Request) {
		sum := r.PathValue("sum")
		if !isSHA256(sum) {
			http.Error(w, "not a sha256", http.StatusBadRequest)
			return
		}
		if r.ContentLength < 0 {
			http.Error(w, "an upload needs a Content-Length", http.StatusLengthRequired)
			return
		}
		// Who uploads is checked before anything else is done for them.
		uid, err := access.uploader(r, upgrade.File{SHA256: sum, Size: r.ContentLength})
		if errors.Is(err, errCannotAsk) {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if err != nil {
			http.Error(w, "only an admin uploads upgrade files: "+err.Error(), http.StatusForbidden)
			return
		}
		f, uids, err := want(r.Context(), sum)
		switch {
		case err != nil:
			http.Error(w, "reading the upgrades: "+err.Error(), http.StatusServiceUnavailable)
			return
		case len(uids) == 0 || uid != "" && !slices.Contains(uids, uid):
			http.Error(w, "no upgrade in progress names a file with this sha256", http.StatusForbidden)
			return
		case r.ContentLength != f.Size:
			http.Error(w, "Content-Length must be "+strconv.FormatInt(f.Size, 10), http.StatusBadRequest)
			return
		case store.has(f):
			w.WriteHeader(http.StatusOK)
			return
		}
		select {
		case uploads <- struct{}{}:
			defer func() { <-uploads }()
		default:
			http.Error(w, "too many uploads at once", http.StatusTooManyRequests)
			return
		}
		rc := http.NewResponseController(w)
		rc.SetReadDeadline(time.Now().Add(blobDeadline(f.Size)))
		rc.SetWriteDeadline(time.Now().Add(blobDeadline(f.Size) + blobRequestTimeout))
		if err := store.put(f, r.Body); err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, errBusy) {
				code = http.StatusConflict
			}
			http.Error(w, err.Error(), code)
			return
		}
		printf("upgrade: stored %s (%s, %d MiB) for the nodes to fetch", f.Name, sum[:12], f.Size>>20)
		w.WriteHeader(http.StatusCreated)
	})
	// Every request is read and answered within a bound, whatever its
	// method and path (a connection's deadlines outlast its request); an
	// upload that is let in, or a file fetched, gets more.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.SetReadDeadline(time.Now().Add(blobRequestTimeout))
		rc.SetWriteDeadline(time.Now().Add(blobRequestTimeout))
		mux.ServeHTTP(w, r)
	})
}
