package node

import (
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
	// Nonce and Sealed are AES-256-GCM of the JSON of a pki.Cluster.
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
	r := &record{Version: 1, Settings: settings, KDF: "argon2id", Time: kdfTime, Memory: kdfMemory, Threads: kdfThreads,
		Salt: make([]byte, 16), Nonce: make([]byte, 12)}
	if _, err := rand.Read(r.Salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(r.Nonce); err != nil {
		return nil, err
	}
	key, err := sealKey(secret, r)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	aead, err := gcm(key)
	if err != nil {
		return nil, err
	}
	r.Sealed = aead.Seal(nil, r.Nonce, plain, []byte(recordAAD))
	return r, nil
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
	if r.Version != 1 {
		return nil, fmt.Errorf("the cluster record has version %d; this cairn reads version 1 (upgrade this server)", r.Version)
	}
	key, err := sealKey(secret, r)
	if err != nil {
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
}

// claim reads the cluster from the datastore, or creates it when there is
// none. Creation is an etcd transaction that succeeds only while the key
// is absent (kine and etcd both implement it), so two servers starting
// at once end with one cluster.
func claim(ctx context.Context, kv clientv3.KV, secret string, settings map[string]string) (*claimResult, error) {
	r, err := readRecord(ctx, kv)
	if err != nil {
		return nil, err
	}
	if r == nil {
		c, err := pki.NewCluster(time.Now())
		if err != nil {
			return nil, err
		}
		nr, err := newRecord(secret, c, settings)
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
			return &claimResult{PKI: c, Settings: settings, Created: true}, nil
		}
		// Another server was quicker: use its cluster.
		if r, err = readRecord(ctx, kv); err != nil {
			return nil, err
		}
		if r == nil {
			return nil, errors.New("the datastore refused to create the cluster record but does not hold one; is another program using the key " + bootstrapKey + "?")
		}
	}
	c, err := r.open(secret)
	if err != nil {
		return nil, err
	}
	return &claimResult{PKI: c, Settings: r.Settings}, nil
}

func readRecord(ctx context.Context, kv clientv3.KV) (*record, error) {
	resp, err := kv.Get(ctx, bootstrapKey)
	if err != nil {
		return nil, fmt.Errorf("reading the cluster record: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	v := resp.Kvs[0].Value
	if len(v) > maxRecord {
		return nil, fmt.Errorf("the cluster record is %d bytes, more than %d; the datastore holds something else at %s", len(v), maxRecord, bootstrapKey)
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("the cluster record at %s is not cairn's: %w", bootstrapKey, err)
	}
	return &r, nil
}

// mustMatch are the settings every server of a cluster must share, by the
// key a user writes.
func mustMatch(k *config.Kubernetes) map[string]string {
	return map[string]string{
		"cluster-cidr":       k.ClusterCIDR,
		"service-cidr":       k.ServiceCIDR,
		"cluster-dns":        k.ClusterDNS,
		"cluster-domain":     k.ClusterDomain,
		"disable":            packaged(k.Disable),
		"secrets-encryption": fmt.Sprint(k.SecretsEncryption),
		"flannel-backend":    k.FlannelBackend,
	}
}

// packaged is the components of disable k3s packages, sorted and joined:
// the names of manifests there (init/node/manifests) may differ between
// servers, and change.
func packaged(disable []string) string {
	var out []string
	for _, d := range disable {
		if config.Packaged(d) {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return strings.Join(slices.Compact(out), ",")
}

// settingsDiffer lists, one line each, the settings where this server
// disagrees with the cluster.
func settingsDiffer(mine, cluster map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(mine)) {
		theirs, ok := cluster[k]
		if k == "disable" {
			// A cluster made before manifests recorded every name.
			theirs = packaged(strings.Split(theirs, ","))
		}
		if !ok || theirs == mine[k] {
			continue
		}
		out = append(out, fmt.Sprintf("kubernetes.%s is %q on this server but %q in the cluster (set by its first server)", k, mine[k], theirs))
	}
	return out
}
