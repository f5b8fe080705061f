package render

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/cairn-os/cairn/config"
)

// Encryption is the cluster's keys for Secrets at rest, as every server
// holds them.
type Encryption struct {
	// Keys decrypt what the datastore holds, newest first.
	Keys []EncryptionKey
	// Write names the key Secrets are written with; "" writes them in
	// clear while every key still decrypts (a new key waiting until every
	// apiserver reads it).
	Write string
}

// EncryptionKey is one key of Encryption.
type EncryptionKey struct {
	// Name is the key's name in the datastore's values
	// ("k8s:enc:secretbox:v1:NAME:").
	Name string
	// Provider is ProviderSecretbox, or ProviderAESCBC for the key an
	// older cairn derived from the token.
	Provider string
	// Secret is the key: 32 bytes.
	Secret []byte
}

// The providers of an EncryptionKey.
const (
	// ProviderSecretbox is XSalsa20-Poly1305 with a random nonce per
	// write: no limit on writes per key (aesgcm's random 96-bit nonce
	// asks for a new key every 200,000 writes), authenticated (aescbc is
	// not).
	ProviderSecretbox = "secretbox"
	// ProviderAESCBC is the key an older cairn derived from the token: it
	// writes only until every apiserver of such a cluster reads its new
	// key.
	ProviderAESCBC = "aescbc"
)

// EncryptionFile is where a server keeps its EncryptionConfiguration,
// beside its other keys.
func EncryptionFile(l Layout) string { return l.withDefaults().Cert("encryption-config.yaml") }

// EncryptionConfig is kube-apiserver's EncryptionConfiguration for
// node.Encryption (nil when there is none): Secrets written with the write
// key, and read with every key or in clear (identity: what was written
// before encryption was on). With secrets-encryption false, Secrets are
// written in clear and every key still reads.
//
// Only Secrets are encrypted, as in k3s: ConfigMaps are not for secrets,
// and every list of them would pay for decryption.
func EncryptionConfig(cfg *config.Config, node Node) (*File, error) {
	e := node.Encryption
	if e == nil {
		return nil, nil
	}
	write := e.Write
	if !cfg.Kubernetes.EncryptSecrets() {
		write = ""
	}
	var write1 *EncryptionKey
	seen := map[string]bool{}
	for i, k := range e.Keys {
		if err := checkKey(k); err != nil {
			return nil, fmt.Errorf("rendering the encryption config: %w", err)
		}
		if seen[k.Name] {
			return nil, fmt.Errorf("rendering the encryption config: two keys are named %q", k.Name)
		}
		seen[k.Name] = true
		if k.Name == write {
			write1 = &e.Keys[i]
		}
	}
	if write != "" && write1 == nil {
		return nil, fmt.Errorf("rendering the encryption config: the write key %q is not among the keys", write)
	}

	// One provider per kind, the write key's first and the write key
	// first in it; the others in the order of Keys.
	var b strings.Builder
	b.WriteString("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n")
	identity := func() { b.WriteString("      - identity: {}\n") }
	provider := func(kind string) {
		var keys []EncryptionKey
		if write1 != nil && write1.Provider == kind {
			keys = append(keys, *write1)
		}
		for _, k := range e.Keys {
			if k.Provider == kind && k.Name != write {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			return
		}
		fmt.Fprintf(&b, "      - %s:\n          keys:\n", kind)
		for _, k := range keys {
			fmt.Fprintf(&b, "            - name: %s\n              secret: %s\n", k.Name, base64.StdEncoding.EncodeToString(k.Secret))
		}
	}
	kinds := []string{ProviderSecretbox, ProviderAESCBC}
	if write1 == nil {
		identity()
	} else if write1.Provider == ProviderAESCBC {
		slices.Reverse(kinds)
	}
	for _, kind := range kinds {
		provider(kind)
	}
	if write1 != nil {
		identity()
	}
	return &File{Path: EncryptionFile(node.layout()), Mode: 0o600, Data: []byte(b.String())}, nil
}

// checkKey refuses a key the apiserver would refuse, before it is written
// where the apiserver reads it.
func checkKey(k EncryptionKey) error {
	if k.Name == "" || len(k.Name) > 32 || strings.Trim(k.Name, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return fmt.Errorf("the key name %q is not 1-32 of a-z, 0-9 and -", k.Name)
	}
	switch k.Provider {
	case ProviderSecretbox, ProviderAESCBC:
	default:
		return fmt.Errorf("the key %q has provider %q; want %s or %s", k.Name, k.Provider, ProviderSecretbox, ProviderAESCBC)
	}
	if len(k.Secret) != 32 {
		return fmt.Errorf("the key %q is %d bytes; want 32", k.Name, len(k.Secret))
	}
	return nil
}
