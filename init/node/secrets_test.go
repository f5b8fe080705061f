package node

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/pki"
	"github.com/cairn-os/cairn/init/node/render"
)

// putOldRecord stores the record an older cairn made (version 1, no keys
// for Secrets at rest) and returns it.
func putOldRecord(t *testing.T, cli *clientv3.Client, settings map[string]string) (*record, pki.Cluster) {
	t.Helper()
	c, err := pki.NewCluster(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, err := newRecord("s3cret", c, settings)
	if err != nil {
		t.Fatal(err)
	}
	r.Version = 1
	data, _ := json.Marshal(r)
	if _, err := cli.Put(context.Background(), bootstrapKey, string(data)); err != nil {
		t.Fatal(err)
	}
	return r, c
}

func rawRecord(t *testing.T, cli *clientv3.Client) *record {
	t.Helper()
	r, _, err := readRecord(context.Background(), cli)
	if err != nil || r == nil {
		t.Fatalf("reading the record: %v (%v)", r, err)
	}
	return r
}

// A cluster an older cairn made gets its key for Secrets at rest from the
// first server that reads it, and loses nothing: the same version,
// settings, salt and every sealed pair, plus the keyring. Two servers
// that start at once add one keyring between them.
func TestOldRecordGetsAKey(t *testing.T) {
	cli := startEtcd(t)
	for _, encrypted := range []bool{false, true} {
		settings := maps.Clone(testSettings)
		settings["secrets-encryption"] = fmt.Sprint(encrypted) // what an older cairn recorded
		before, c := putOldRecord(t, cli, settings)

		var wg sync.WaitGroup
		results := make([]*claimResult, 2)
		errs := make([]error, 2)
		for i := range 2 {
			wg.Go(func() { results[i], errs[i] = claim(context.Background(), cli, "s3cret", testSettings) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if results[0].Keyed == results[1].Keyed {
			t.Errorf("keyed = %v and %v; exactly one server adds the key", results[0].Keyed, results[1].Keyed)
		}
		if results[0].Created || results[1].Created {
			t.Error("a server says it created a cluster that was there")
		}
		a, b := results[0].Ring, results[1].Ring
		if a == nil || b == nil || !bytes.Equal(a.Keys[0].Secret, b.Keys[0].Secret) {
			t.Fatalf("the two servers hold different keys: %+v %+v", a, b)
		}

		after := rawRecord(t, cli)
		if after.Version != 1 || !maps.Equal(after.Settings, settings) || !bytes.Equal(after.Salt, before.Salt) ||
			after.KDF != before.KDF || after.Time != before.Time || after.Memory != before.Memory || after.Threads != before.Threads {
			t.Errorf("the record's clear fields changed: %+v, was %+v", after, before)
		}
		if bytes.Equal(after.Nonce, before.Nonce) {
			t.Error("the record was sealed again under the same nonce")
		}
		opened, err := after.open("s3cret")
		if err != nil {
			t.Fatal(err)
		}
		for name, p := range c {
			if !bytes.Equal(opened[name].Cert, p.Cert) || !bytes.Equal(opened[name].Key, p.Key) {
				t.Errorf("%s changed when the key was added", name)
			}
		}
		ring, err := ringOf(opened)
		if err != nil || ring == nil {
			t.Fatalf("no keyring in the record: %v", err)
		}
		if ring.Keys[0].Name != "key-1" || ring.Keys[0].Provider != render.ProviderSecretbox || len(ring.Keys[0].Secret) != 32 {
			t.Errorf("the new key is %s %s of %d bytes", ring.Keys[0].Name, ring.Keys[0].Provider, len(ring.Keys[0].Secret))
		}
		// Until every apiserver reads the new key, Secrets are written as
		// the older cairn wrote them: in clear, or with its key.
		if !encrypted && (ring.Write != "" || len(ring.Keys) != 1) {
			t.Errorf("an unencrypted cluster's keyring: write %q, keys %v", ring.Write, ring.names())
		}
		if encrypted {
			old, _ := hkdf.Key(sha256.New, []byte("s3cret"), nil, "cairn secrets-encryption v1", 32)
			if ring.Write != "cairn-v1" || len(ring.Keys) != 2 || ring.Keys[1].Provider != render.ProviderAESCBC || !bytes.Equal(ring.Keys[1].Secret, old) {
				t.Errorf("an encrypted cluster's keyring: write %q, keys %v", ring.Write, ring.names())
			}
		}

		// A server that starts later reads the keyring and writes nothing.
		rev := rawRev(t, cli)
		res, err := claim(context.Background(), cli, "s3cret", testSettings)
		if err != nil || res.Keyed || !bytes.Equal(res.Ring.Keys[0].Secret, a.Keys[0].Secret) || rawRev(t, cli) != rev {
			t.Errorf("a later server: %v, keyed %v, record rewritten %v", err, res.Keyed, rawRev(t, cli) != rev)
		}
	}
}

func rawRev(t *testing.T, cli *clientv3.Client) int64 {
	_, rev, err := readRecord(context.Background(), cli)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// A new cluster is version 2 (an older cairn refuses it, as it could not
// read its Secrets) and writes Secrets with its key from the start.
func TestNewRecordHasAKey(t *testing.T) {
	cli := startEtcd(t)
	res, err := claim(context.Background(), cli, "s3cret", testSettings)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Keyed || res.Ring == nil || !res.Ring.settled() || res.Ring.Write != "key-1" {
		t.Fatalf("created %v keyed %v ring %+v", res.Created, res.Keyed, res.Ring)
	}
	r := rawRecord(t, cli)
	if r.Version != 2 {
		t.Errorf("a new record is version %d, want 2", r.Version)
	}
	if _, ok := r.Settings["secrets-encryption"]; ok {
		t.Error("secrets-encryption is recorded as a setting every server must share")
	}
	if strings.Contains(string(r.Sealed), string(res.Ring.Keys[0].Secret)) {
		t.Error("the key is in the record in clear")
	}
	r.Version = 3
	if _, err := r.open("s3cret"); err == nil || !strings.Contains(err.Error(), "upgrade this server") {
		t.Errorf("a record from a newer cairn: err = %v", err)
	}
}

// fakeAPI is the apiserver as keepSecretsAtRest sees it: its metrics name
// the encryption config on disk once loaded, its identity Leases, the
// status ConfigMap and a few Secrets, some stored in clear.
type fakeAPI struct {
	t        *testing.T
	file     string // the encryption config the apiserver reads
	mu       sync.Mutex
	hosts    []string          // the live apiservers
	loaded   bool              // the apiserver reloads the file
	rotate   string            // the status ConfigMap's rotate annotation
	status   map[string]string // the status ConfigMap's data
	secrets  map[string]string // name: the key it is stored with ("" in clear)
	writeKey string            // the key the apiserver writes with
	puts     int
	metrics  int // reads of /metrics
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.URL.Path == "/metrics":
		f.metrics++
		fmt.Fprintln(w, "# TYPE apiserver_encryption_config_controller_last_config_info gauge")
		if data, err := os.ReadFile(f.file); err == nil && f.loaded {
			sum := sha256.Sum256(data)
			fmt.Fprintf(w, "apiserver_encryption_config_controller_last_config_info{apiserver_id_hash=\"sha256:x\",hash=\"sha256:%x\"} 1\n", sum)
			f.writeKey = writeKeyOf(string(data))
		}
	case r.URL.Path == "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases":
		if r.URL.Query().Get("labelSelector") != "apiserver.kubernetes.io/identity=kube-apiserver" {
			f.t.Errorf("leases listed with %q", r.URL.RawQuery)
		}
		var items []any
		for _, h := range f.hosts {
			items = append(items, map[string]any{"metadata": map[string]any{"labels": map[string]string{"kubernetes.io/hostname": h}},
				"spec": map[string]any{"renewTime": time.Now().UTC().Format(time.RFC3339Nano)}})
		}
		json.NewEncoder(w).Encode(map[string]any{"items": items})
	case r.URL.Path == "/api/v1/namespaces/kube-system/configmaps/"+statusConfigMap && r.Method == http.MethodGet:
		if f.status == nil && f.rotate == "" {
			http.Error(w, `{"kind":"Status","code":404}`, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"metadata": map[string]any{"annotations": map[string]string{rotateAnnotation: f.rotate}}})
	case r.URL.Path == "/api/v1/namespaces/kube-system/configmaps/"+statusConfigMap && r.Method == http.MethodPatch:
		var cm struct {
			Data map[string]string `json:"data"`
		}
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &cm)
		f.status = cm.Data
		w.Write(body)
	case r.URL.Path == "/api/v1/secrets":
		// Two pages: the client follows continue.
		names := slices.Sorted(maps.Keys(f.secrets))
		from := 0
		if c := r.URL.Query().Get("continue"); c != "" {
			fmt.Sscan(c, &from)
		}
		to := min(from+2, len(names))
		var items []any
		for _, n := range names[from:to] {
			items = append(items, map[string]any{"metadata": map[string]any{"name": n, "namespace": "default", "resourceVersion": "7"}})
		}
		cont := ""
		if to < len(names) {
			cont = fmt.Sprint(to)
		}
		json.NewEncoder(w).Encode(map[string]any{"metadata": map[string]any{"continue": cont}, "items": items})
	case strings.HasPrefix(r.URL.Path, "/api/v1/namespaces/default/secrets/") && r.Method == http.MethodPut:
		f.puts++
		name := strings.TrimPrefix(r.URL.Path, "/api/v1/namespaces/default/secrets/")
		rv := "7"
		if f.secrets[name] != f.writeKey {
			// Stored under another key or in clear: stored again.
			f.secrets[name], rv = f.writeKey, "8"
		}
		json.NewEncoder(w).Encode(map[string]any{"metadata": map[string]any{"name": name, "resourceVersion": rv}})
	default:
		f.t.Errorf("unexpected %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	}
}

// writeKeyOf is the key an EncryptionConfiguration writes with: the first
// key of its first provider, "" for identity.
func writeKeyOf(doc string) string {
	_, rest, _ := strings.Cut(doc, "providers:\n")
	first, _, _ := strings.Cut(strings.TrimSpace(rest), "\n")
	if strings.Contains(first, "identity") {
		return ""
	}
	_, after, _ := strings.Cut(rest, "name: ")
	name, _, _ := strings.Cut(after, "\n")
	return name
}

// atRestServer is a server that read the cluster with claim, its files in
// a temporary directory.
func atRestServer(t *testing.T, cli *clientv3.Client, res *claimResult, cfg *config.Config, lines *[]string) *server {
	dir := t.TempDir()
	l := render.Layout{DataDir: dir, CertDir: filepath.Join(dir, "pki"), KubeconfigDir: filepath.Join(dir, "kubeconfig")}
	s := &server{
		o: Options{Config: cfg, Hostname: "s1", Layout: l, Printf: func(f string, a ...any) {
			*lines = append(*lines, fmt.Sprintf(f, a...))
			t.Logf(f, a...)
		}},
		k: &cfg.Kubernetes, l: l, tok: join.Token{Secret: "s3cret"},
	}
	s.rest = &atRest{secret: "s3cret", key: res.Key, salt: res.Salt, ring: res.Ring}
	return s
}

// The way from a cluster an older cairn encrypted with its token-derived
// key to one whose every Secret is under a new key, then a rotation asked
// for on the status ConfigMap: each step waits for every live apiserver,
// the record says where the cluster stands, the console says each step
// once, and the file the apiserver reads is 0600.
func TestSecretsAtRestSteps(t *testing.T) {
	cli := startEtcd(t)
	settings := maps.Clone(testSettings)
	settings["secrets-encryption"] = "true"
	putOldRecord(t, cli, settings)
	res, err := claim(context.Background(), cli, "s3cret", testSettings)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	cfg := &config.Config{Kubernetes: config.Kubernetes{Role: "server"}}
	s := atRestServer(t, cli, res, cfg, &lines)
	fake := &fakeAPI{t: t, file: render.EncryptionFile(s.l), hosts: []string{"s1", "s2"}, loaded: true,
		secrets: map[string]string{"a": "", "b": "cairn-v1", "c": ""}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	api := kube.New(srv.URL, kube.Options{})
	ctx := context.Background()
	step := func() *keyring {
		t.Helper()
		if err := s.atRestStep(ctx, api, cli, "s1"); err != nil {
			t.Fatalf("step: %v", err)
		}
		opened, err := rawRecord(t, cli).open("s3cret")
		if err != nil {
			t.Fatal(err)
		}
		ring, _ := ringOf(opened)
		return ring
	}
	said := func(want string) {
		t.Helper()
		n := 0
		for _, l := range lines {
			if strings.Contains(l, want) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the console said %q %d times, want once:\n%s", want, n, strings.Join(lines, "\n"))
		}
	}

	// s2 runs an older cairn: nothing moves, and the status says why.
	ring := step()
	if info, err := os.Stat(fake.file); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the encryption config: %v, %v; want mode 0600", info, err)
	}
	if ring.Write != "cairn-v1" || fake.status["state"] != "waiting for s2 to read key-1" || s.rest.settled {
		t.Fatalf("with s2 behind: write %q, status %q, settled %v (the next step in %s)", ring.Write, fake.status, s.rest.settled, atRestSettled)
	}
	// s2 is upgraded and reads key-1: it becomes the write key.
	cli.Put(ctx, ackPrefix+"s2", `{"read":["key-1","cairn-v1"],"write":"cairn-v1"}`)
	if ring = step(); ring.Write != "key-1" || ring.Rewritten == "key-1" {
		t.Fatalf("every apiserver reads key-1: write %q rewritten %q", ring.Write, ring.Rewritten)
	}
	said("every apiserver reads key-1; Secrets are written with it from now on")
	// s1's apiserver reloads; s2 has not yet: no rewrite.
	if ring = step(); ring.Rewritten == "key-1" || fake.puts != 0 {
		t.Fatalf("rewritten %q after %d updates while s2 still writes with cairn-v1", ring.Rewritten, fake.puts)
	}
	cli.Put(ctx, ackPrefix+"s2", `{"read":["key-1","cairn-v1"],"write":"key-1"}`)
	if ring = step(); ring.Rewritten != "key-1" || fake.puts != 3 {
		t.Fatalf("rewritten %q after %d updates, want key-1 after 3; status %q", ring.Rewritten, fake.puts, fake.status)
	}
	said("rewrote 3 of 3 Secrets with key-1")
	if ring = step(); len(ring.Keys) != 1 || !ring.settled() {
		t.Fatalf("keys %v after the rewrite, want key-1 alone", ring.names())
	}
	said("dropped cairn-v1")
	step()
	if !strings.HasPrefix(fake.status["state"], "settled") || fake.status["keys"] != "key-1" || fake.status["write"] != "key-1" || !s.rest.settled {
		t.Errorf("status %q, settled %v (the next step in %s, not %s)", fake.status, s.rest.settled, atRestEvery, atRestSettled)
	}
	data, _ := os.ReadFile(fake.file)
	if strings.Contains(string(data), "aescbc") || writeKeyOf(string(data)) != "key-1" {
		t.Errorf("the apiserver's config after the steps:\n%s", data)
	}

	// An admin asks for a new key.
	fake.rotate = "2026-12-07"
	if ring = step(); ring.Keys[0].Name != "key-2" || ring.Write != "key-1" {
		t.Fatalf("after the request: keys %v write %q", ring.names(), ring.Write)
	}
	said("a new key was asked for on kube-system/cairn-secrets-encryption: added key-2")
	if s.rest.settled {
		t.Errorf("settled with key-2 added, read by s1 alone")
	}
	cli.Put(ctx, ackPrefix+"s2", `{"read":["key-2","key-1"],"write":"key-1"}`)
	for range 2 {
		ring = step()
	}
	cli.Put(ctx, ackPrefix+"s2", `{"read":["key-2","key-1"],"write":"key-2"}`)
	for range 3 {
		ring = step()
	}
	if !ring.settled() || ring.Write != "key-2" {
		t.Fatalf("after the rotation: keys %v write %q rewritten %q", ring.names(), ring.Write, ring.Rewritten)
	}
	said("rewrote 3 of 3 Secrets with key-2")
	said("dropped key-1")
	// The request is done: the same annotation asks for nothing more.
	if ring = step(); len(ring.Keys) != 1 || ring.Keys[0].Name != "key-2" {
		t.Errorf("the same request added a key again: %v", ring.names())
	}
	// Nothing the console said, nor the status, holds a key.
	for _, k := range []*keyring{ring, res.Ring} {
		for _, key := range k.Keys {
			for _, l := range append(lines, fmt.Sprint(fake.status)) {
				if strings.Contains(l, string(key.Secret)) || strings.Contains(l, hex.EncodeToString(key.Secret)) {
					t.Errorf("a key reached %q", l)
				}
			}
		}
	}
}

// A server with secrets-encryption false writes in clear, and what it
// wrote is rewritten once it writes with the key again.
func TestSecretsAtRestOffServer(t *testing.T) {
	cli := startEtcd(t)
	res, err := claim(context.Background(), cli, "s3cret", testSettings)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	off := false
	cfg := &config.Config{Kubernetes: config.Kubernetes{Role: "server", SecretsEncryption: &off}}
	s := atRestServer(t, cli, res, cfg, &lines)
	fake := &fakeAPI{t: t, file: render.EncryptionFile(s.l), hosts: []string{"s1"}, loaded: true, secrets: map[string]string{"a": "key-1"}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	api := kube.New(srv.URL, kube.Options{})
	s.sayAtRest(res)
	if err := s.atRestStep(context.Background(), api, cli, "s1"); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(fake.file)
	if writeKeyOf(string(data)) != "" || !strings.Contains(string(data), "key-1") {
		t.Errorf("with secrets-encryption false the apiserver writes with %q:\n%s", writeKeyOf(string(data)), data)
	}
	if !slices.ContainsFunc(lines, func(l string) bool {
		return strings.HasPrefix(l, "node: secrets-encryption is off (kubernetes.secrets-encryption: false)")
	}) {
		t.Errorf("the console did not say it is off:\n%s", strings.Join(lines, "\n"))
	}
	opened, _ := rawRecord(t, cli).open("s3cret")
	if ring, _ := ringOf(opened); ring.Rewritten != "" || fake.status["state"] != "s1 writes Secrets in clear (secrets-encryption false there)" {
		t.Errorf("rewritten %q, status %q: the Secrets s1 writes in clear are not owed a rewrite", ring.Rewritten, fake.status)
	}
	// Turned on again: rewritten.
	on := true
	cfg.Kubernetes.SecretsEncryption = &on
	for range 2 {
		if err := s.atRestStep(context.Background(), api, cli, "s1"); err != nil {
			t.Fatal(err)
		}
	}
	opened, _ = rawRecord(t, cli).open("s3cret")
	if ring, _ := ringOf(opened); ring.Rewritten != "key-1" || fake.secrets["a"] != "key-1" {
		t.Errorf("after turning it on: rewritten %q, a stored with %q", ring.Rewritten, fake.secrets["a"])
	}
}

// The apiserver's metrics say which file it loaded.
func TestMetricsSayLoaded(t *testing.T) {
	m := []byte(`# HELP apiserver_encryption_config_controller_last_config_info [ALPHA] Information about the last applied encryption configuration with hash as label, split by apiserver identity.
# TYPE apiserver_encryption_config_controller_last_config_info gauge
apiserver_encryption_config_controller_last_config_info{apiserver_id_hash="sha256:cd8a",hash="sha256:6f6a"} 1
apiserver_request_total{code="200"} 12
`)
	if !metricsSayLoaded(m, "sha256:6f6a") || metricsSayLoaded(m, "sha256:6f6") || metricsSayLoaded(m, "sha256:cd8a") {
		t.Error("the loaded config's hash is misread")
	}
}
