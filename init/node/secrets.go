package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/pki"
	"github.com/cairn-os/cairn/init/node/render"
	"github.com/cairn-os/cairn/init/supervise"
)

// Secrets at rest. The cluster's keys for Secrets travel sealed in the
// cluster record, beside the certificate authorities, so every server has
// the same ones and nothing in the datastore opens them without the token.
// A key goes through three steps, each taken by whichever server sees it
// due first, under the record's compare-and-swap:
//
//  1. It is added, newest first, read by every apiserver but written by
//     none (an apiserver that does not know it yet could not read it).
//  2. Once every live apiserver reads it, it becomes the write key.
//  3. Once every live apiserver writes with it, every Secret is rewritten
//     (a no-op update, which the apiserver stores again with the write
//     key when the stored value is under another key or in clear), and
//     the other keys are dropped.
//
// The apiserver reads its EncryptionConfiguration again when the file
// changes; what it loaded is known from when it started (a file cairn
// wrote before the process started, secrets_start.go), else confirmed
// from its own metrics, and each server publishes that in the datastore
// (ackPrefix) for the others.

// ringEntry is the keyring's entry in the sealed pki.Cluster: Pair.Key
// holds its JSON. An older cairn ignores entries it does not know.
const ringEntry = "secrets-encryption"

// keyring is the cluster's keys for Secrets at rest.
type keyring struct {
	// Keys decrypt, newest first.
	Keys []ringKey `json:"keys"`
	// Write names the key new Secrets are written with; "" in clear.
	Write string `json:"write,omitempty"`
	// Rewritten is Write once every Secret has been rewritten since every
	// apiserver writes with it.
	Rewritten string `json:"rewritten,omitempty"`
	// Rotation identifies the last rotation request acted on.
	Rotation string `json:"rotation,omitempty"`
	// Next numbers the next key's name.
	Next int `json:"next"`
}

// ringKey is one key of the keyring.
type ringKey struct {
	Name     string `json:"name"`
	Provider string `json:"provider"`
	Secret   []byte `json:"secret"`
}

// newKeyring is the keyring of a new cluster: one key, which writes from
// the first Secret on.
func newKeyring() (*keyring, error) {
	k, err := newRingKey(1)
	if err != nil {
		return nil, err
	}
	return &keyring{Keys: []ringKey{k}, Write: k.Name, Rewritten: k.Name, Next: 2}, nil
}

func newRingKey(n int) (ringKey, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return ringKey{}, fmt.Errorf("making a key for Secrets at rest: %w", err)
	}
	return ringKey{Name: fmt.Sprintf("key-%d", n), Provider: render.ProviderSecretbox, Secret: secret}, nil
}

// legacyKeyring is the keyring added to a cluster an older cairn made: a
// new key, read only until every apiserver reads it; when that cairn had
// secrets-encryption on, also its AES-CBC key, derived from the token,
// which keeps writing until then.
func legacyKeyring(settings map[string]string, secret string) (*keyring, error) {
	k, err := newRingKey(1)
	if err != nil {
		return nil, err
	}
	r := &keyring{Keys: []ringKey{k}, Next: 2}
	if settings["secrets-encryption"] == "true" {
		old, err := hkdf.Key(sha256.New, []byte(secret), nil, "cairn secrets-encryption v1", 32)
		if err != nil {
			return nil, err
		}
		r.Keys = append(r.Keys, ringKey{Name: "cairn-v1", Provider: render.ProviderAESCBC, Secret: old})
		r.Write = "cairn-v1"
	}
	return r, nil
}

// ringOf reads the keyring from the cluster's sealed certificates; nil
// when an older cairn made the record.
func ringOf(c pki.Cluster) (*keyring, error) {
	p, ok := c[ringEntry]
	if !ok {
		return nil, nil
	}
	var r keyring
	if err := json.Unmarshal(p.Key, &r); err != nil {
		return nil, fmt.Errorf("the cluster record's keys for Secrets at rest are damaged: %w", err)
	}
	if len(r.Keys) == 0 {
		return nil, errors.New("the cluster record's keys for Secrets at rest are empty")
	}
	return &r, nil
}

// store puts the keyring into the cluster's certificates, to be sealed.
func (r *keyring) store(c pki.Cluster) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	c[ringEntry] = pki.Pair{Key: data}
	return nil
}

func (r *keyring) clone() *keyring {
	c := *r
	c.Keys = slices.Clone(r.Keys)
	return &c
}

func (r *keyring) names() []string {
	var out []string
	for _, k := range r.Keys {
		out = append(out, k.Name)
	}
	return out
}

// settled: the newest key writes, every Secret was rewritten with it, and
// no other key is left.
func (r *keyring) settled() bool {
	return len(r.Keys) == 1 && r.Write == r.Keys[0].Name && r.Rewritten == r.Write
}

func (r *keyring) encryption() *render.Encryption {
	e := &render.Encryption{Write: r.Write}
	for _, k := range r.Keys {
		e.Keys = append(e.Keys, render.EncryptionKey{Name: k.Name, Provider: k.Provider, Secret: k.Secret})
	}
	return e
}

// ack is what one server's apiserver has loaded, published in the
// datastore at ackPrefix+hostname (the apiserver's identity Lease carries
// the same host name). Names only: never a key.
type ack struct {
	// Read are the names of the keys it reads.
	Read []string `json:"read"`
	// Write is the key it writes with, "" in clear.
	Write string    `json:"write"`
	At    time.Time `json:"at"`
}

const ackPrefix = "/cairn/secrets-at-rest/"

// The status of Secrets at rest, and where an admin asks for a new key:
// `kubectl -n kube-system annotate configmap cairn-secrets-encryption
// cairn.dev/rotate=<anything new> --overwrite`.
const (
	statusConfigMap  = "cairn-secrets-encryption"
	rotateAnnotation = "cairn.dev/rotate"
)

// Timings of keepSecretsAtRest; the apiserver looks at its encryption
// config once a minute.
var (
	atRestEvery = 10 * time.Second
	// atRestSettled is the period while the cluster's keys are settled
	// and this apiserver's ack is published: a rotation asked for, or
	// begun by another server, is seen within it, and each step after at
	// atRestEvery.
	atRestSettled = 30 * time.Second
	// liveWithin: an apiserver whose identity Lease was renewed (every 10
	// s) within this long is running.
	liveWithin = 90 * time.Second
)

// Bounds of what is read.
const (
	maxMetrics     = 32 << 20
	secretsPage    = 10
	maxSecretsPage = 16 << 20
	maxSecrets     = 1 << 20
)

// atRest is a server's view of the keyring.
type atRest struct {
	ds clientv3.Config
	// keyMu guards secret, key and salt, and is held from reading the
	// record to opening it: a token rotation (rotate.go) re-seals the
	// record and changes all three under it, so the record is never read
	// sealed with one token and opened with the other.
	keyMu sync.Mutex
	// secret is the server token's; key seals the record, derived from
	// secret and salt, the record's salt.
	secret    string
	key, salt []byte

	mu   sync.Mutex
	ring *keyring
	rev  int64 // the record's revision ring was read at
	// written is cairn's last write of the apiserver's encryption config
	// in this boot (secrets_start.go).
	written configWrite

	acked   string // the config hash this server's ack names
	status  string // the status last applied
	lastErr string
	// settled: the last step found the keys settled, nothing asked for
	// and this server's ack published.
	settled bool
}

func (a *atRest) current() *keyring {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ring == nil {
		return nil
	}
	return a.ring.clone()
}

func (a *atRest) set(r *keyring, rev int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ring, a.rev = r, rev
}

// encryption is what render writes the apiserver's config from; nil
// before the cluster was read.
func (a *atRest) encryption() *render.Encryption {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ring == nil {
		return nil
	}
	return a.ring.encryption()
}

// open opens the record with the key this server holds, deriving it again
// (64 MiB, once) when the record was sealed anew under another salt. The
// caller holds keyMu.
func (a *atRest) open(r *record) (pki.Cluster, []byte, error) {
	if !bytes.Equal(a.salt, r.Salt) {
		key, err := sealKey(a.secret, r)
		debug.FreeOSMemory()
		if err != nil {
			return nil, nil, err
		}
		a.key, a.salt = key, r.Salt
	}
	c, err := r.openWith(a.key)
	if errors.Is(err, errWrongToken) {
		err = errTokenRotated
	}
	return c, a.key, err
}

// errTokenRotated: the record no longer opens with this server's token.
var errTokenRotated = errors.New("the cluster record is sealed with another token than this server's now: the server token was rotated (cairn token rotate) and this server was not reached; run cairn token rotate again with the new token, or restart this server with it in kubernetes.token")

// read reads the record and opens it with this server's token, under
// keyMu; r is nil when the datastore holds none.
func (a *atRest) read(ctx context.Context, kv clientv3.KV) (r *record, rev int64, c pki.Cluster, key []byte, err error) {
	a.keyMu.Lock()
	defer a.keyMu.Unlock()
	if r, rev, err = readRecord(ctx, kv); err != nil || r == nil {
		return r, rev, nil, nil, err
	}
	c, key, err = a.open(r)
	return r, rev, c, key, err
}

// refresh reads the keyring again when the record changed.
func (a *atRest) refresh(ctx context.Context, kv clientv3.KV) error {
	ctx, cancel := context.WithTimeout(ctx, datastoreAttempt)
	defer cancel()
	resp, err := kv.Get(ctx, bootstrapKey, clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("reading the cluster record: %w", err)
	}
	if len(resp.Kvs) == 1 && resp.Kvs[0].ModRevision == a.rev {
		return nil
	}
	r, rev, c, _, err := a.read(ctx, kv)
	if err != nil {
		return err
	}
	if r == nil {
		return errors.New("the cluster record is gone from the datastore")
	}
	ring, err := ringOf(c)
	if err != nil {
		return err
	}
	if ring == nil {
		return errors.New("the cluster record has lost its keys for Secrets at rest (a server with an older cairn wrote it?)")
	}
	a.set(ring, rev)
	return nil
}

// errRecordChanged: another server changed the record first.
var errRecordChanged = errors.New("the cluster record changed meanwhile")

// update changes the keyring in the record with change (given the
// keyring as the record holds it now; false: nothing to do) and seals it
// again, everything else kept, if the record is still the one read.
func (a *atRest) update(ctx context.Context, kv clientv3.KV, change func(*keyring) bool) (*keyring, error) {
	ctx, cancel := context.WithTimeout(ctx, datastoreAttempt)
	defer cancel()
	r, rev, c, key, err := a.read(ctx, kv)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errors.New("the cluster record is gone from the datastore")
	}
	ring, err := ringOf(c)
	if err != nil || ring == nil {
		return nil, cmpErr(err, errors.New("the cluster record has lost its keys for Secrets at rest"))
	}
	if !change(ring) {
		a.set(ring, rev)
		return ring, nil
	}
	c = maps.Clone(c)
	if err := ring.store(c); err != nil {
		return nil, err
	}
	nr := *r
	if err := nr.seal(key, c); err != nil {
		return nil, err
	}
	newRev, written, err := replaceRecord(ctx, kv, rev, &nr)
	if err != nil {
		return nil, fmt.Errorf("writing the cluster record: %w", err)
	}
	if !written {
		return nil, errRecordChanged
	}
	a.set(ring, newRev)
	return ring, nil
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// keepSecretsAtRest runs on every server once its apiserver is ready: it
// keeps the apiserver's config at the keyring, publishes what the
// apiserver loaded, and takes the cluster's next step when it is due.
func (s *server) keepSecretsAtRest(ctx context.Context, api *kube.Client) {
	a := s.rest
	cli, err := clientv3.New(a.ds)
	if err != nil {
		s.o.Printf("node: secrets-encryption: a client for the datastore: %v", err)
		return
	}
	defer cli.Close()
	host, err := os.Hostname()
	if err != nil {
		s.o.Printf("node: secrets-encryption: %v", err)
		return
	}
	// What this host's apiserver loaded on an earlier boot is not known
	// now.
	if err := deleteKey(ctx, cli, ackPrefix+host); err != nil && ctx.Err() == nil {
		s.o.Printf("node: secrets-encryption: %v", err)
	}
	var rotatedSince time.Time // when the record stopped opening with this server's token
	for {
		err := s.atRestStep(ctx, api, cli, host)
		if !errors.Is(err, errTokenRotated) {
			rotatedSince = time.Time{}
		} else if rotatedSince.IsZero() {
			rotatedSince = time.Now()
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errTokenRotated) && time.Since(rotatedSince) < rotationGrace:
			// Another server re-sealed the record; cairn token rotate
			// reaches this one within seconds.
		case err != nil && !errors.Is(err, errRecordChanged) && err.Error() != a.lastErr:
			a.lastErr = err.Error()
			s.o.Printf("node: secrets-encryption: %v; trying again every %s", err, atRestEvery)
		case err == nil:
			a.lastErr = ""
		}
		every := atRestEvery
		if err == nil && a.settled {
			every = atRestSettled
		}
		if !supervise.Sleep(ctx, every) {
			return
		}
	}
}

// deleteKey deletes key in the form kine takes: at the revision it holds.
func deleteKey(ctx context.Context, kv clientv3.KV, key string) error {
	ctx, cancel := context.WithTimeout(ctx, datastoreAttempt)
	defer cancel()
	for range 3 {
		resp, err := kv.Get(ctx, key, clientv3.WithKeysOnly())
		if err != nil || len(resp.Kvs) == 0 {
			return err
		}
		del, err := kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).
			Then(clientv3.OpDelete(key)).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil || del.Succeeded {
			return err
		}
	}
	return fmt.Errorf("deleting %s: it keeps changing", key)
}

// atRestStep is one round of keepSecretsAtRest.
func (s *server) atRestStep(ctx context.Context, api *kube.Client, kv clientv3.KV, host string) error {
	a := s.rest
	a.settled = false
	if err := a.refresh(ctx, kv); err != nil {
		return err
	}
	ring := a.current()
	f, err := render.EncryptionConfig(s.o.Config, s.renderNode())
	if err != nil {
		return err
	}
	if ring == nil || f == nil {
		return errors.New("no keys for Secrets at rest")
	}
	if old, err := os.ReadFile(f.Path); err != nil || !bytes.Equal(old, f.Data) {
		if err := writeFile(f.Path, f.Data, f.Mode); err != nil {
			return err
		}
		a.wroteConfig(f.Data)
	}
	hash := configHash(f.Data)
	if a.acked != hash {
		// What cairn wrote before the running apiserver started is
		// loaded; anything else is once the apiserver's metrics say so.
		if !loadedAtStart(a.lastWrite(), hash, s.apiserverStarted()) {
			loaded, err := apiserverLoaded(ctx, api, hash)
			if err != nil || !loaded {
				return err // it looks at the file again within a minute
			}
		}
		me := ack{Read: ring.names(), Write: ring.Write, At: time.Now().UTC()}
		if !s.k.EncryptSecrets() {
			me.Write = ""
		}
		data, _ := json.Marshal(me)
		pctx, cancel := context.WithTimeout(ctx, datastoreAttempt)
		_, err = kv.Put(pctx, ackPrefix+host, string(data))
		cancel()
		if err != nil {
			return fmt.Errorf("publishing what this apiserver loaded: %w", err)
		}
		a.acked = hash
	}
	return s.advance(ctx, api, kv, host, ring)
}

// advance takes the cluster's next step with its Secrets' keys, when every
// live apiserver is ready for it, and applies the status ConfigMap.
func (s *server) advance(ctx context.Context, api *kube.Client, kv clientv3.KV, host string, ring *keyring) error {
	a := s.rest
	request, err := rotationRequest(ctx, api)
	if err != nil {
		return err
	}
	live, err := liveAPIServers(ctx, api)
	if err != nil {
		return err
	}
	if !slices.Contains(live, host) {
		return nil // this apiserver's own Lease is not there yet
	}
	acks, err := readAcks(ctx, kv)
	if err != nil {
		return err
	}
	// behind are the live apiservers that are not ok, or have not said.
	behind := func(ok func(ack) bool) []string {
		var out []string
		for _, h := range live {
			if x, found := acks[h]; !found || !ok(x) {
				out = append(out, h)
			}
		}
		return out
	}
	newest := ring.Keys[0].Name
	notReading := behind(func(x ack) bool { return slices.Contains(x.Read, newest) })
	notWriting := behind(func(x ack) bool { return x.Write == ring.Write })
	writingOtherwise := slices.DeleteFunc(slices.Clone(notWriting), func(h string) bool { _, found := acks[h]; return !found })
	var state string
	switch {
	case request != "" && request != ring.Rotation && ring.settled():
		next, err := a.update(ctx, kv, func(r *keyring) bool {
			if r.Rotation == request || !r.settled() {
				return false
			}
			k, err := newRingKey(r.Next)
			if err != nil {
				return false
			}
			r.Keys, r.Next, r.Rotation = append([]ringKey{k}, r.Keys...), r.Next+1, request
			return true
		})
		if err != nil {
			return err
		}
		ring = next
		if ring.Rotation == request {
			s.o.Printf("node: secrets-encryption: a new key was asked for on kube-system/%s: added %s; it writes once every apiserver reads it", statusConfigMap, ring.Keys[0].Name)
		}
		state = "added " + ring.Keys[0].Name + "; waiting for every apiserver to read it"

	case ring.Write != newest && len(notReading) > 0:
		state = fmt.Sprintf("waiting for %s to read %s", strings.Join(notReading, ", "), newest)
	case ring.Write != newest:
		next, err := a.update(ctx, kv, func(r *keyring) bool {
			if r.Keys[0].Name != newest || r.Write == newest {
				return false
			}
			r.Write = newest
			return true
		})
		if err != nil {
			return err
		}
		ring = next
		s.o.Printf("node: secrets-encryption: every apiserver reads %s; Secrets are written with it from now on", newest)
		state = "waiting for every apiserver to write with " + newest

	case ring.Rewritten == ring.Write && len(writingOtherwise) > 0:
		// An apiserver writes otherwise (secrets-encryption false there):
		// what it writes is to be rewritten once it writes with the key.
		next, err := a.update(ctx, kv, func(r *keyring) bool {
			if r.Write != ring.Write || r.Rewritten != r.Write {
				return false
			}
			r.Rewritten = ""
			return true
		})
		if err != nil {
			return err
		}
		ring = next
		state = fmt.Sprintf("%s writes Secrets in clear (secrets-encryption false there)", strings.Join(writingOtherwise, ", "))

	case (ring.Rewritten != ring.Write || len(ring.Keys) > 1) && len(notWriting) > 0:
		state = fmt.Sprintf("waiting for %s to write with %s", strings.Join(notWriting, ", "), ring.Write)
	case ring.Rewritten != ring.Write:
		write := ring.Write
		rewritten, total, err := rewriteSecrets(ctx, api)
		if err != nil {
			return fmt.Errorf("rewriting the Secrets with %s: %w", write, err)
		}
		next, err := a.update(ctx, kv, func(r *keyring) bool {
			if r.Write != write || r.Rewritten == write {
				return false
			}
			r.Rewritten = write
			return true
		})
		if err != nil {
			return err
		}
		ring = next
		s.o.Printf("node: secrets-encryption: rewrote %d of %d Secrets with %s; the datastore holds none in clear or under an older key (its history keeps old values until it is compacted)", rewritten, total, write)
		state = "every Secret is written with " + write
	case len(ring.Keys) > 1:
		write := ring.Write
		var dropped []string
		next, err := a.update(ctx, kv, func(r *keyring) bool {
			if r.Write != write || r.Rewritten != write || len(r.Keys) < 2 || !slices.ContainsFunc(r.Keys, func(k ringKey) bool { return k.Name == write }) {
				return false
			}
			dropped = nil
			for _, k := range r.Keys {
				if k.Name != write {
					dropped = append(dropped, k.Name)
				}
			}
			r.Keys = slices.DeleteFunc(r.Keys, func(k ringKey) bool { return k.Name != write })
			return true
		})
		if err != nil {
			return err
		}
		ring = next
		if len(dropped) > 0 {
			s.o.Printf("node: secrets-encryption: dropped %s: no Secret is written with it any more", strings.Join(dropped, ", "))
		}
	}
	if state == "" && ring.settled() {
		state = "settled: every Secret is written with " + ring.Write
		if request != "" && request != ring.Rotation {
			state = "a new key was asked for; adding it"
		}
	}
	if state == "" {
		state = "in progress"
	}
	if err := a.applyStatus(ctx, api, ring, state); err != nil {
		return err
	}
	a.settled = strings.HasPrefix(state, "settled:")
	return nil
}

// applyStatus keeps kube-system/cairn-secrets-encryption saying where the
// cluster's Secrets stand: names, never keys.
func (a *atRest) applyStatus(ctx context.Context, api *kube.Client, ring *keyring, state string) error {
	write := ring.Write
	if write == "" {
		write = "none (in clear)"
	}
	data := map[string]string{"keys": strings.Join(ring.names(), " "), "write": write, "state": state}
	sum, _ := json.Marshal(data)
	if string(sum) == a.status {
		return nil
	}
	obj := kube.Object{"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(statusConfigMap, "kube-system"), "data": data}
	if err := api.Apply(ctx, obj, fieldManager); err != nil {
		return err
	}
	a.status = string(sum)
	return nil
}

// rotationRequest is the rotation an admin asked for on the status
// ConfigMap (a digest of the annotation's value), "" when none.
func rotationRequest(ctx context.Context, api *kube.Client) (string, error) {
	var cm struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	err := api.Get(ctx, "/api/v1/namespaces/kube-system/configmaps/"+statusConfigMap, &cm)
	if kube.IsStatus(err, http.StatusNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	v, ok := cm.Metadata.Annotations[rotateAnnotation]
	if !ok || v == "" {
		return "", nil
	}
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:8]), nil
}

// liveAPIServers are the host names of the apiservers that renewed their
// identity Lease lately.
func liveAPIServers(ctx context.Context, api *kube.Client) ([]string, error) {
	var leases struct {
		Items []struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				RenewTime string `json:"renewTime"`
			} `json:"spec"`
		} `json:"items"`
	}
	sel := url.QueryEscape("apiserver.kubernetes.io/identity=kube-apiserver")
	if err := api.Get(ctx, "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases?labelSelector="+sel, &leases); err != nil {
		return nil, fmt.Errorf("listing the apiservers' identity Leases: %w", err)
	}
	var out []string
	for _, l := range leases.Items {
		t, err := time.Parse(time.RFC3339Nano, l.Spec.RenewTime)
		host := l.Metadata.Labels["kubernetes.io/hostname"]
		if err != nil || host == "" || time.Since(t) > liveWithin {
			continue
		}
		out = append(out, host)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// readAcks reads what every server's apiserver loaded, by host name.
func readAcks(ctx context.Context, kv clientv3.KV) (map[string]ack, error) {
	ctx, cancel := context.WithTimeout(ctx, datastoreAttempt)
	defer cancel()
	resp, err := kv.Get(ctx, ackPrefix, clientv3.WithPrefix(), clientv3.WithLimit(1000))
	if err != nil {
		return nil, fmt.Errorf("reading what the apiservers loaded: %w", err)
	}
	out := map[string]ack{}
	for _, kv := range resp.Kvs {
		var x ack
		if len(kv.Value) > 64<<10 || json.Unmarshal(kv.Value, &x) != nil {
			continue
		}
		out[strings.TrimPrefix(string(kv.Key), ackPrefix)] = x
	}
	return out, nil
}

// metricLoaded is the apiserver's metric of the encryption config it
// loaded last, labelled with the SHA-256 of the file.
const metricLoaded = "apiserver_encryption_config_controller_last_config_info{"

// apiserverLoaded says whether this server's apiserver has loaded the
// encryption config whose file hashes to hash ("sha256:…"), from its
// metrics.
func apiserverLoaded(ctx context.Context, api *kube.Client, hash string) (bool, error) {
	code, body, err := api.WithMaxReply(maxMetrics).Raw(ctx, http.MethodGet, "/metrics")
	if err != nil {
		return false, fmt.Errorf("reading the apiserver's metrics: %w", err)
	}
	if code != http.StatusOK {
		return false, kube.ReplyError(http.MethodGet, "/metrics", code, body)
	}
	return metricsSayLoaded(body, hash), nil
}

func metricsSayLoaded(metrics []byte, hash string) bool {
	sc := bufio.NewScanner(bytes.NewReader(metrics))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		labels := "," + strings.TrimPrefix(l, metricLoaded)
		if strings.HasPrefix(l, metricLoaded) && strings.Contains(labels, `,hash="`+hash+`"`) && strings.HasSuffix(l, "} 1") {
			return true
		}
	}
	return false
}

// rewriteSecrets updates every Secret with itself, a page at a time: the
// apiserver stores again, with its write key, each one whose stored value
// is under another key or in clear, and leaves the others alone. It
// returns how many were stored again, of how many.
func rewriteSecrets(ctx context.Context, api *kube.Client) (rewritten, total int, err error) {
	lister := api.WithMaxReply(maxSecretsPage)
	cont := ""
	for {
		var page struct {
			Metadata struct {
				Continue string `json:"continue"`
			} `json:"metadata"`
			Items []json.RawMessage `json:"items"`
		}
		path := fmt.Sprintf("/api/v1/secrets?limit=%d", secretsPage)
		if cont != "" {
			path += "&continue=" + url.QueryEscape(cont)
		}
		if err := lister.Get(ctx, path, &page); err != nil {
			return rewritten, total, err
		}
		for _, item := range page.Items {
			var was struct {
				Metadata struct {
					Name, Namespace, ResourceVersion string
				} `json:"metadata"`
			}
			if err := json.Unmarshal(item, &was); err != nil {
				return rewritten, total, err
			}
			m := was.Metadata
			var now struct {
				Metadata struct{ ResourceVersion string } `json:"metadata"`
			}
			err := api.Do(ctx, http.MethodPut, "/api/v1/namespaces/"+m.Namespace+"/secrets/"+m.Name, item, &now)
			switch {
			case kube.IsStatus(err, http.StatusConflict), kube.IsStatus(err, http.StatusNotFound):
				// Written or deleted meanwhile: with the write key, if at all.
			case err != nil:
				return rewritten, total, err
			case now.Metadata.ResourceVersion != m.ResourceVersion:
				rewritten++
			}
			total++
		}
		cont = page.Metadata.Continue
		if cont == "" {
			return rewritten, total, nil
		}
		if total >= maxSecrets {
			return rewritten, total, fmt.Errorf("more than %d Secrets", maxSecrets)
		}
	}
}

// sayAtRest says on the console what changed for Secrets at rest at this
// boot, and removes what an older cairn left.
func (s *server) sayAtRest(res *claimResult) {
	os.Remove(filepath.Join(s.l.DataDir, "encryption-config.yaml")) // an older cairn's, holding its token-derived key
	if res.Keyed {
		s.o.Printf("node: secrets-encryption: added %s to this cluster, which an older cairn made; Secrets are written with it once every apiserver reads it, then rewritten", res.Ring.Keys[0].Name)
	}
	if !s.k.EncryptSecrets() {
		s.o.Printf("node: secrets-encryption is off (kubernetes.secrets-encryption: false): this server writes Secrets to the datastore in clear; it still reads encrypted ones")
	}
}
