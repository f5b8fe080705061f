package node

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/crypto/argon2"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/init/node/pki"
)

// bootstrapKey is where the cluster's identity lives in the datastore:
// the settings every server must share, in clear, and the cluster's
// certificate authorities, sealed with a key derived from the token.
const bootstrapKey = "/cairn/bootstrap"

// maxRecord bounds the record read back from the datastore.
const maxRecord = 1 << 20

// record is the datastore value at bootstrapKey.
type record struct {
	// Version is 2 for a cluster this cairn creates: an older cairn
	// (version 1 only) refuses to join it, as it could not read its
	// encrypted Secrets. A version 1 record stays version 1 when this
	// cairn adds the Secrets key to it, so that a server rolled back to
	// the older cairn still boots.
	Version int `json:"version"`
	// Settings are the must-match settings of the server that created the
	// cluster, by config key.
	Settings map[string]string `json:"settings"`
	// KDF and its parameters turn the token's secret into the sealing key.
	KDF     string `json:"kdf"`
	Time    uint32 `json:"time"`
	Memory  uint32 `json:"memoryKiB"`
	Threads uint8  `json:"threads"`
	Salt    []byte `json:"salt"`
	// Nonce and Sealed are AES-256-GCM of the JSON of a pki.Cluster
	// (with the keyring of Secrets at rest under ringEntry).
	Nonce  []byte `json:"nonce"`
	Sealed []byte `json:"sealed"`
}

// Argon2id at 64 MiB and two passes: memory-hard, and a few hundred
// milliseconds natively (seconds under emulation) once per boot.
const (
	kdfTime    = 2
	kdfMemory  = 64 << 10
	kdfThreads = 2
	recordAAD  = "cairn bootstrap v1"
	// recordVersion is the version of the records this cairn creates;
	// it reads every version from 1 to it.
	recordVersion = 2
)

// errWrongToken says the datastore holds a cluster sealed with another token.
var errWrongToken = errors.New("the datastore holds a cluster created with a different token; this server's token is wrong (nothing was written)")

func sealKey(secret string, r *record) ([]byte, error) {
	if r.KDF != "argon2id" || r.Memory > 1<<20 || r.Time > 16 || r.Threads == 0 || len(r.Salt) < 16 {
		return nil, fmt.Errorf("the cluster record's key derivation (%s, %d passes, %d KiB) is not one this server accepts", r.KDF, r.Time, r.Memory)
	}
	return argon2.IDKey([]byte(secret), r.Salt, r.Time, r.Memory, r.Threads, 32), nil
}

func newRecord(secret string, c pki.Cluster, settings map[string]string) (*record, error) {
	r, _, err := newSealedRecord(secret, c, settings)
	return r, err
}

// newSealedRecord is newRecord and the key that seals it.
func newSealedRecord(secret string, c pki.Cluster, settings map[string]string) (*record, []byte, error) {
	r := &record{Version: recordVersion, Settings: settings, KDF: "argon2id", Time: kdfTime, Memory: kdfMemory, Threads: kdfThreads,
		Salt: make([]byte, 16)}
	if _, err := rand.Read(r.Salt); err != nil {
		return nil, nil, err
	}
	key, err := sealKey(secret, r)
	if err != nil {
		return nil, nil, err
	}
	if err := r.seal(key, c); err != nil {
		return nil, nil, err
	}
	return r, key, nil
}

// seal replaces what r holds sealed with c, under key (r's own, derived
// from the token and r's salt) and a fresh nonce.
func (r *record) seal(key []byte, c pki.Cluster) error {
	plain, err := json.Marshal(c)
	if err != nil {
		return err
	}
	aead, err := gcm(key)
	if err != nil {
		return err
	}
	r.Nonce = make([]byte, aead.NonceSize())
	if _, err := rand.Read(r.Nonce); err != nil {
		return err
	}
	r.Sealed = aead.Seal(nil, r.Nonce, plain, []byte(recordAAD))
	return nil
}

func gcm(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// open decrypts the cluster's certificates with the token's secret.
func (r *record) open(secret string) (pki.Cluster, error) {
	if err := r.checkVersion(); err != nil {
		return nil, err
	}
	key, err := sealKey(secret, r)
	if err != nil {
		return nil, err
	}
	return r.openWith(key)
}

func (r *record) checkVersion() error {
	if r.Version < 1 || r.Version > recordVersion {
		return fmt.Errorf("the cluster record has version %d; this cairn reads versions 1 to %d (upgrade this server)", r.Version, recordVersion)
	}
	return nil
}

// openWith decrypts the cluster's certificates with the record's key.
func (r *record) openWith(key []byte) (pki.Cluster, error) {
	if err := r.checkVersion(); err != nil {
		return nil, err
	}
	aead, err := gcm(key)
	if err != nil {
		return nil, err
	}
	if len(r.Nonce) != aead.NonceSize() {
		return nil, errors.New("the cluster record is damaged (nonce)")
	}
	plain, err := aead.Open(nil, r.Nonce, r.Sealed, []byte(recordAAD))
	if err != nil {
		return nil, errWrongToken
	}
	var c pki.Cluster
	if err := json.Unmarshal(plain, &c); err != nil {
		return nil, fmt.Errorf("the cluster record is damaged: %w", err)
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	return c, nil
}

// claimResult is what a server learns from the datastore.
type claimResult struct {
	PKI      pki.Cluster
	Settings map[string]string
	// Created is true when this server created the cluster.
	Created bool
	// Ring is the cluster's keys for Secrets at rest; Keyed is true when
	// this server added them to a record an older cairn made.
	Ring  *keyring
	Keyed bool
	// Key seals the record as it is now (derived from the token and the
	// record's Salt).
	Key, Salt []byte
}

// claim reads the cluster from the datastore, or creates it when there is
// none. Creation is an etcd transaction that succeeds only while the key
// is absent (kine and etcd both implement it), so two servers starting
// at once end with one cluster.
func claim(ctx context.Context, kv clientv3.KV, secret string, settings map[string]string) (*claimResult, error) {
	r, _, err := readRecord(ctx, kv)
	if err != nil {
		return nil, err
	}
	if r == nil {
		c, err := pki.NewCluster(time.Now())
		if err != nil {
			return nil, err
		}
		ring, err := newKeyring()
		if err != nil {
			return nil, err
		}
		if err := ring.store(c); err != nil {
			return nil, err
		}
		nr, key, err := newSealedRecord(secret, c, settings)
		if err != nil {
			return nil, err
		}
		data, err := json.Marshal(nr)
		if err != nil {
			return nil, err
		}
		resp, err := kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(bootstrapKey), "=", 0)).
			Then(clientv3.OpPut(bootstrapKey, string(data))).
			Commit()
		if err != nil {
			return nil, fmt.Errorf("storing the new cluster: %w", err)
		}
		if resp.Succeeded {
			return &claimResult{PKI: c, Settings: settings, Created: true, Ring: ring, Key: key, Salt: nr.Salt}, nil
		}
		// Another server was quicker: use its cluster.
	}
	return openCluster(ctx, kv, secret)
}

// openCluster opens the cluster's record and, when an older cairn made it,
// adds the keyring of Secrets at rest to it: a new record sealed with the
// same key that holds everything the old one did, put only if the record
// is still the one read (compare-and-swap), else read again.
func openCluster(ctx context.Context, kv clientv3.KV, secret string) (*claimResult, error) {
	var key, salt []byte
	for try := 0; ; try++ {
		r, rev, err := readRecord(ctx, kv)
		if err != nil {
			return nil, err
		}
		if r == nil {
			return nil, errors.New("the datastore refused to create the cluster record but does not hold one; is another program using the key " + bootstrapKey + "?")
		}
		if err := r.checkVersion(); err != nil {
			return nil, err
		}
		if key == nil || !bytes.Equal(salt, r.Salt) {
			if key, err = sealKey(secret, r); err != nil {
				return nil, err
			}
			salt = r.Salt
		}
		c, err := r.openWith(key)
		if err != nil {
			return nil, err
		}
		res := &claimResult{PKI: c, Settings: r.Settings, Key: key, Salt: r.Salt}
		if res.Ring, err = ringOf(c); err != nil || res.Ring != nil {
			return res, err
		}
		if try == 3 {
			return nil, errors.New("the cluster record changed four times while this server added the key of Secrets at rest to it; is another program writing " + bootstrapKey + "?")
		}
		ring, err := legacyKeyring(r.Settings, secret)
		if err != nil {
			return nil, err
		}
		keyed := maps.Clone(c)
		if err := ring.store(keyed); err != nil {
			return nil, err
		}
		nr := *r
		if err := nr.seal(key, keyed); err != nil {
			return nil, err
		}
		_, written, err := replaceRecord(ctx, kv, rev, &nr)
		if err != nil {
			return nil, fmt.Errorf("adding the key of Secrets at rest to the cluster record: %w", err)
		}
		if written {
			res.PKI, res.Ring, res.Keyed = keyed, ring, true
			return res, nil
		}
		// Another server changed the record meanwhile (most likely it
		// added a key first): read it again.
	}
}

// readRecord reads the cluster record and the revision it was last
// written at; nil when there is none.
func readRecord(ctx context.Context, kv clientv3.KV) (*record, int64, error) {
	resp, err := kv.Get(ctx, bootstrapKey)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the cluster record: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	v := resp.Kvs[0].Value
	if len(v) > maxRecord {
		return nil, 0, fmt.Errorf("the cluster record is %d bytes, more than %d; the datastore holds something else at %s", len(v), maxRecord, bootstrapKey)
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, 0, fmt.Errorf("the cluster record at %s is not cairn's: %w", bootstrapKey, err)
	}
	return &r, resp.Kvs[0].ModRevision, nil
}

// mustMatch are the settings every server of a cluster must share, by the
// key a user writes. secrets-encryption is not one of them: every server
// reads Secrets with every key of the cluster whatever its own setting,
// which decides only how it writes them (and older records hold false,
// the old default, for clusters this cairn now encrypts). The record
// holds them in clear, so agent-token is held by agentTokenSetting, not
// as given. A record written before a key was added lacks it, and
// settingsDiffer passes an absent key. Of disable only servicelb counts
// (as in k3s): the other add-ons may be disabled and enabled again on a
// running cluster. loadbalancer-pool and default-local-storage-path are
// checked across servers by `cairn validate --cluster`, not here, where
// the first server's value would hold for ever and a pool could never grow.
func mustMatch(k *config.Kubernetes) map[string]string {
	return map[string]string{
		"cluster-cidr":    k.ClusterCIDR,
		"service-cidr":    k.ServiceCIDR,
		"cluster-dns":     k.ClusterDNS,
		"cluster-domain":  k.ClusterDomain,
		"disable":         disabledServiceLB(k.Disable),
		"flannel-backend": k.FlannelBackend,
		"agent-token":     agentTokenSetting(k),
	}
}

// disabledServiceLB is "servicelb" when disable holds it, "" otherwise:
// the one name in disable every server must share, since the servers
// hand out and announce LoadBalancer addresses together.
func disabledServiceLB(disable []string) string {
	if slices.Contains(disable, "servicelb") {
		return "servicelb"
	}
	return ""
}

// settingsDiffer lists, one line each, the settings where this server
// disagrees with the cluster.
func settingsDiffer(mine, cluster map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(mine)) {
		theirs, ok := cluster[k]
		if k == "disable" {
			// A cluster made by an older cairn recorded every name.
			theirs = disabledServiceLB(strings.Split(theirs, ","))
		}
		if !ok || theirs == mine[k] {
			continue
		}
		out = append(out, fmt.Sprintf("kubernetes.%s is %q on this server but %q in the cluster (set by its first server)", k, mine[k], theirs))
	}
	return out
}

// replaceRecord writes r over the cluster record if the record is still
// at rev (its ModRevision), and says whether it was, with the datastore's
// revision after the write. kine takes such an update only in this form
// (a Txn with an Else).
func replaceRecord(ctx context.Context, kv clientv3.KV, rev int64, r *record) (newRev int64, written bool, err error) {
	data, err := json.Marshal(r)
	if err != nil {
		return 0, false, err
	}
	resp, err := kv.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(bootstrapKey), "=", rev)).
		Then(clientv3.OpPut(bootstrapKey, string(data))).
		Else(clientv3.OpGet(bootstrapKey)).
		Commit()
	if err != nil {
		return 0, false, err
	}
	return resp.Header.Revision, resp.Succeeded, nil
}
