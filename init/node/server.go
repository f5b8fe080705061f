package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/init/node/pki"
	"github.com/cairn-os/cairn/init/node/render"
	"github.com/cairn-os/cairn/init/node/upgrader"
	"github.com/cairn-os/cairn/init/supervise"
)

// server runs the control plane of one server.
type server struct {
	o   Options
	k   *config.Kubernetes
	l   render.Layout
	ds  *config.Datastore
	tok join.Token
	// agentSecret is the agent token's secret, "" when the cluster has
	// none (agents then join with tok).
	agentSecret string
	// tokMu guards tok and agentSecret once the server runs: a token
	// rotation changes them (rotate.go).
	tokMu sync.Mutex
	// rot is what this server knows of token rotations (rotate.go).
	rot rotation
	// first is when the first component was handed to the supervisor.
	first time.Time
	// kineRestarted is when restartKineForDatabase last restarted kine;
	// its output still holds the old error for a while after.
	kineRestarted time.Time
	// rest is the cluster's keys for Secrets at rest, once read.
	rest *atRest
	// admin is this server's own admin certificate, minted by writePKI
	// (selfadmin.go).
	admin *selfAdmin
}

// Retrying the datastore: growing delays up to datastoreRetryMax; a wrong
// token is retried slowly (someone may be fixing the config).
var (
	datastoreRetryFirst = 2 * time.Second
	datastoreRetryMax   = 30 * time.Second
	wrongTokenRetry     = time.Minute
	datastoreAttempt    = 15 * time.Second
)

func (s *server) run(ctx context.Context) error {
	s.l = s.o.Layout
	ds, err := s.k.Datastore()
	if err != nil {
		return fmt.Errorf("kubernetes.datastore-endpoint: %w", err)
	}
	s.ds = ds
	if s.tok, err = resolveToken(s.k, s.l, s.o.Printf); err != nil {
		return err
	}
	if at, ok, err := givenAgentToken(s.k); err != nil {
		return err
	} else if ok {
		s.agentSecret = at.Secret
	}
	for _, d := range []string{s.l.DataDir, s.l.CertDir, s.l.KubeconfigDir, filepath.Dir(s.l.KineSocket)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
		os.Chmod(d, 0o700)
	}
	s.o.Printf("node: server %s, datastore %s", nodeName(s.o), s.datastoreName())
	if err := s.etcdSnapshots(ctx); err != nil {
		return err
	}
	dsCfg, err := s.startDatastore(ctx)
	if err != nil {
		return err
	}
	res, err := s.claimLoop(ctx, dsCfg)
	// The key derivation took 64 MiB; PID 1 gives it back at once.
	debug.FreeOSMemory()
	if err != nil {
		return err
	}
	s.useRotatedTokens(res)
	if err := s.refuseSettings(res.Settings); err != nil {
		return err
	}
	if res.Created {
		s.o.Printf("node: created a new cluster: its certificate authorities are in the datastore, sealed with a key derived from the token")
	} else {
		s.o.Printf("node: read the cluster's certificate authorities from the datastore")
	}
	s.rest = &atRest{ds: dsCfg, secret: s.tok.Secret, key: res.Key, salt: res.Salt, ring: res.Ring}
	s.sayAtRest(res)
	if s.ds.Kind == config.DatastoreEmbedded {
		if dsCfg, err = s.etcdAfterClaim(ctx, dsCfg, res); err != nil {
			return err
		}
		s.rest.ds = dsCfg
	}
	if err := s.writePKI(res.PKI); err != nil {
		return err
	}
	if err := s.startControlPlane(res.PKI); err != nil {
		return err
	}
	// Every server is a node too (tainted only if its config says so).
	publishedCh := make(chan struct{})
	w := &worker{o: s.o, k: s.k, l: s.l, node: s.renderNode(), apiserver: apiserverLocal,
		servingCA: res.PKI[pki.ServerCA].Cert, clientCA: res.PKI[pki.ClientCA].Cert,
		secret: s.agentJoinSecret(), kubeletNeeds: []string{"kube-apiserver"},
		issue: kubeletClientCert(res.PKI, kubeletName(nodeName(s.o))),
		serve: &upgrader.ServeConfig{CertFile: s.l.Cert("apiserver.crt"), KeyFile: s.l.Cert("apiserver.key"),
			ClientCA: res.PKI[pki.ClientCA].Cert, AdminGroup: join.AdminsGroup, Ready: publishedCh,
			Admin: s.adminRoutes(res.PKI)}}
	if err := w.start(ctx); err != nil {
		return err
	}
	cli, err := clientv3.New(dsCfg)
	if err != nil {
		return fmt.Errorf("a client for the datastore: %w", err)
	}
	supervise.Go("node: publish", func() { s.whenReady(ctx, res.PKI, publishedCh) })
	if s.ds.Kind == config.DatastoreEmbedded {
		s.startEtcdMembers(ctx, dsCfg, publishedCh)
	}
	supervise.Go("node: node names", func() { s.keepNodeNames(ctx, publishedCh) })
	s.startVIP(ctx, res.PKI)
	s.startServiceLB(ctx, res.PKI)
	supervise.Go("node: datastore watch", func() {
		defer cli.Close()
		s.watchDatastore(ctx, cli)
	})
	return nil
}

// Watching the datastore while the server runs.
var (
	watchEvery   = 5 * time.Second
	watchTimeout = 10 * time.Second
)

// watchDatastore reads the cluster record every few seconds and says on
// the console when the datastore stops answering, why, and when it is
// back: while it is away the components fail and are restarted with
// backoff, and the console should tell a person what is going on.
func (s *server) watchDatastore(ctx context.Context, cli *clientv3.Client) {
	if s.ds.Kind == config.DatastoreEmbedded {
		s.watchEtcd(ctx, cli)
		return
	}
	var lostAt time.Time
	for supervise.Sleep(ctx, watchEvery) {
		actx, cancel := context.WithTimeout(ctx, watchTimeout)
		_, err := cli.Get(actx, bootstrapKey, clientv3.WithKeysOnly())
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && lostAt.IsZero():
			lostAt = time.Now()
			s.o.Printf("datastore: %s stopped answering: %s; the control plane waits for it", s.datastoreName(), s.diagnose(err, watchTimeout))
		case err == nil && !lostAt.IsZero():
			s.o.Printf("datastore: %s answers again after %s", s.datastoreName(), time.Since(lostAt).Round(time.Second))
			lostAt = time.Time{}
		}
	}
}

// datastoreName says which datastore this is, without credentials.
func (s *server) datastoreName() string {
	switch s.ds.Kind {
	case config.DatastoreEmbedded:
		return "embedded etcd"
	case config.DatastoreEtcd:
		return "etcd at " + strings.Join(s.ds.Hosts, ",")
	case config.DatastoreSQLite:
		return "sqlite " + s.ds.Database
	}
	return fmt.Sprintf("%s at %s/%s", s.ds.Kind, strings.Join(s.ds.Hosts, ","), s.ds.Database)
}

func (s *server) service(name string, c render.Command) supervise.Service {
	svc := componentService(s.o, c)
	svc.Name = name
	return svc
}

func (s *server) start(svc supervise.Service) error {
	if s.first.IsZero() {
		s.first = time.Now()
		if !s.o.ConfigLoaded.IsZero() {
			s.o.Printf("node: first component (%s) started %.2fs after the config was loaded", svc.Name, s.first.Sub(s.o.ConfigLoaded).Seconds())
		}
	}
	return s.o.Services.Start(svc)
}

func (s *server) renderNode() render.Node {
	n := render.Node{Name: nodeName(s.o), Token: s.secret(), Layout: s.l, IP: s.k.NodeIP, Bin: s.o.Bin, Encryption: s.rest.encryption()}
	if n.IP == "" {
		if addrs := s.addresses(); len(addrs) > 0 {
			n.IP = addrs[0].String()
		}
	}
	return n
}

// addresses are the node's own unicast addresses, IPv4 first.
func (s *server) addresses() []netip.Addr { return nodeAddresses(s.o) }

// nodeAddresses are the machine's own unicast addresses, IPv4 first.
func nodeAddresses(o Options) []netip.Addr {
	if o.Addresses == nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range o.Addresses() {
		if a.IsGlobalUnicast() || a.IsPrivate() {
			out = append(out, a)
		}
	}
	slices.SortStableFunc(out, func(a, b netip.Addr) int {
		if a.Is4() != b.Is4() {
			if a.Is4() {
				return -1
			}
			return 1
		}
		return 0
	})
	return out
}

// startDatastore starts kine or embedded etcd (etcd.go) when the
// datastore needs one, and returns how to reach the store the apiserver
// will use.
func (s *server) startDatastore(ctx context.Context) (clientv3.Config, error) {
	cfg := clientv3.Config{DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	node := s.renderNode()
	switch s.ds.Kind {
	case config.DatastoreEmbedded:
		return s.startEtcd(ctx)
	case config.DatastoreEtcd:
		cfg.Endpoints = s.ds.URLs
		if slices.ContainsFunc(s.ds.URLs, func(u string) bool { return strings.HasPrefix(u, "https://") }) {
			tlsCfg, err := tlsFromFiles(s.k.DatastoreCAFile, s.k.DatastoreCertFile, s.k.DatastoreKeyFile)
			if err != nil {
				return cfg, fmt.Errorf("the etcd datastore's TLS files: %w", err)
			}
			cfg.TLS = tlsCfg
		}
	default:
		c, err := render.Kine(s.o.Config, node)
		if err != nil {
			return cfg, err
		}
		os.Remove(s.l.KineSocket) // a stale socket from a killed kine
		svc := s.service("kine", *c)
		sock := s.l.KineSocket
		svc.Ready = func(ctx context.Context) error {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", sock)
			if err != nil {
				return err
			}
			return conn.Close()
		}
		if err := s.start(svc); err != nil {
			return cfg, err
		}
		cfg.Endpoints = []string{"unix://" + s.l.KineSocket}
	}
	return cfg, nil
}

// tlsFromFiles is a client TLS config: ca (system roots when empty) and a
// client certificate (none when empty).
func tlsFromFiles(ca, cert, key string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		data, err := os.ReadFile(ca)
		if err != nil {
			return nil, err
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("%s holds no PEM certificate", ca)
		}
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// claimLoop reads or creates the cluster, retrying while the datastore is
// unreachable and saying why on the console.
//
// Each attempt has a client of its own: a gRPC connection that failed while
// kine was down backs off for up to two minutes before it tries again.
func (s *server) claimLoop(ctx context.Context, dsCfg clientv3.Config) (*claimResult, error) {
	delay := datastoreRetryFirst
	for {
		res, err := s.attempt(ctx, dsCfg)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, errStopped
		}
		wait := delay
		if errors.Is(err, errWrongToken) {
			wait = wrongTokenRetry
			s.o.Printf("node: %v; retrying in %s", err, wait)
		} else {
			reason := s.diagnose(err, datastoreAttempt)
			if s.restartKineForDatabase() {
				wait, delay = datastoreRetryFirst, datastoreRetryFirst
			} else {
				delay = min(delay*2, datastoreRetryMax)
			}
			s.o.Printf("datastore: %s is not ready: %s; retrying in %s", s.datastoreName(), reason, wait)
		}
		if !supervise.Sleep(ctx, wait) {
			return nil, errStopped
		}
	}
}

// restartKineForDatabase restarts kine (SIGKILL: while it waits for its
// database it does not heed SIGTERM, and it holds no state yet), and says
// so, when its last error says the database is missing: kine creates it only when it starts, so a kine
// that started while the database server was down would otherwise wait
// minutes for a database nobody creates.
func (s *server) restartKineForDatabase() bool {
	if s.o.Services == nil || (s.ds.Kind != config.DatastorePostgres && s.ds.Kind != config.DatastoreMySQL) {
		return false
	}
	last := lastError(string(s.o.Services.Output("kine")))
	missing := strings.Contains(last, "Unknown database") ||
		(strings.Contains(last, "does not exist") && strings.Contains(last, `database "`+s.ds.Database+`"`))
	if !missing || time.Since(s.kineRestarted) < time.Minute || s.o.Services.Signal("kine", syscall.SIGKILL) != nil {
		return false
	}
	s.kineRestarted = time.Now()
	s.o.Printf("datastore: the database %q does not exist yet; restarting kine, which creates it when it starts", s.ds.Database)
	return true
}

// attempt reads or creates the cluster once, within datastoreAttempt.
func (s *server) attempt(ctx context.Context, dsCfg clientv3.Config) (*claimResult, error) {
	cli, err := clientv3.New(dsCfg)
	if err != nil {
		return nil, fmt.Errorf("a client for the datastore: %w", err)
	}
	defer cli.Close()
	actx, cancel := context.WithTimeout(ctx, datastoreAttempt)
	defer cancel()
	return s.claimRotated(actx, cli)
}

// reasons are what a datastore's failure looks like in kine's output or a
// client error, and what the console says for it.
var reasons = []struct{ match, say string }{
	{"password authentication failed", "authentication failed: check the user and password in datastore-endpoint"},
	{"Access denied", "authentication failed: check the user and password in datastore-endpoint"},
	{"connection refused", "connection refused: is the database running and listening on that address?"},
	{"no such host", "host not found: check the host name in datastore-endpoint"},
	{"x509:", "TLS: the server's certificate is not trusted: check datastore-cafile"},
	{"tls:", "TLS handshake failed: check datastore-cafile, -certfile and -keyfile"},
	{"i/o timeout", "timed out: is the address reachable from this node?"},
	{"no route to host", "no route to host: check the address and this node's network"},
	{"does not exist", "the database or user does not exist"},
	{"pg_hba.conf", "the database refuses this node's address: add it to pg_hba.conf"},
	{"not supported for learner", "this server's etcd member is a learner still catching up; the leader's server promotes it once it has"},
	{"is not allowed to connect", "the database refuses this node's address: grant its user access from this host"},
}

// diagnose turns a failed attempt into one short reason, from kine's
// recent output when kine is in between, never with the password.
func (s *server) diagnose(err error, timeout time.Duration) string {
	if s.ds.Kind == config.DatastoreEmbedded {
		if reason := s.etcdTrouble(); reason != "" {
			return reason
		}
		if reason := s.etcdQuorum(context.Background()); reason != "" {
			return reason
		}
	}
	var out []byte
	if s.o.Services != nil && s.ds.Kind != config.DatastoreEmbedded && s.ds.Kind != config.DatastoreEtcd {
		out = s.o.Services.Output("kine")
		if len(out) > 8192 {
			out = out[len(out)-8192:]
		}
	}
	return s.diagnoseText(err, string(out), timeout)
}

// diagnoseText is diagnose given kine's recent output.
func (s *server) diagnoseText(err error, kineOut string, timeout time.Duration) string {
	// Only kine's last error counts: its output holds older ones too.
	kineSays := lastError(kineOut)
	text := kineSays + "\n" + err.Error()
	for _, r := range reasons {
		if strings.Contains(text, r.match) {
			return r.say
		}
	}
	msg := err.Error()
	switch {
	case kineSays != "":
		msg = "kine: " + kineSays
	case errors.Is(err, context.DeadlineExceeded):
		msg = fmt.Sprintf("no answer within %s", timeout)
	}
	msg = s.ds.Redact(msg)
	if len(msg) > 240 {
		msg = msg[:240] + "..."
	}
	return msg
}

// lastError is the message of the last error line in a component's
// output, "" when there is none. It reads both of logrus's text forms:
// `time=… level=error msg="…"`, and `ERRO[time] …` (colours stripped).
func lastError(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := ansi.ReplaceAllString(lines[i], "")
		if j := strings.Index(l, `msg="`); j >= 0 && (strings.Contains(l, "level=error") || strings.Contains(l, "level=fatal")) {
			if q, err := strconv.QuotedPrefix(l[j+4:]); err == nil {
				if m, err := strconv.Unquote(q); err == nil {
					return m
				}
			}
			return l
		}
		if strings.HasPrefix(l, "ERRO[") || strings.HasPrefix(l, "FATA[") {
			if _, m, ok := strings.Cut(l, "] "); ok {
				return strings.TrimSpace(m)
			}
			return l
		}
	}
	return ""
}

// ansi matches terminal colour sequences.
var ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)
