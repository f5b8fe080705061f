package render

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The EncryptionConfiguration as the apiserver reads it: Secrets only,
// the write key first, every other key and identity (what was written in
// clear) after it; identity first when nothing writes encrypted.
func TestEncryptionConfig(t *testing.T) {
	k1 := EncryptionKey{Name: "key-1", Provider: ProviderSecretbox, Secret: bytes.Repeat([]byte{1}, 32)}
	k2 := EncryptionKey{Name: "key-2", Provider: ProviderSecretbox, Secret: bytes.Repeat([]byte{2}, 32)}
	legacy := EncryptionKey{Name: "cairn-v1", Provider: ProviderAESCBC, Secret: bytes.Repeat([]byte{9}, 32)}
	on, off := "kubernetes:\n  role: server\n", "kubernetes:\n  secrets-encryption: false\n"
	for _, tt := range []struct {
		name, doc string
		enc       Encryption
		// want is the providers in order, each "kind" or "kind:key,key".
		want string
	}{
		{"one key", on, Encryption{Write: "key-1", Keys: []EncryptionKey{k1}}, "secretbox:key-1 identity"},
		{"a new key waits to be read everywhere", on, Encryption{Write: "key-1", Keys: []EncryptionKey{k2, k1}}, "secretbox:key-1,key-2 identity"},
		{"the new key writes", on, Encryption{Write: "key-2", Keys: []EncryptionKey{k2, k1}}, "secretbox:key-2,key-1 identity"},
		{"a cluster an older cairn made, before every apiserver reads the key", on, Encryption{Keys: []EncryptionKey{k1, legacy}}, "identity secretbox:key-1 aescbc:cairn-v1"},
		{"a cluster an older cairn encrypted, before every apiserver reads the key", on, Encryption{Write: "cairn-v1", Keys: []EncryptionKey{k1, legacy}}, "aescbc:cairn-v1 secretbox:key-1 identity"},
		{"an older cairn's key reads after the new one", on, Encryption{Write: "key-1", Keys: []EncryptionKey{k1, legacy}}, "secretbox:key-1 aescbc:cairn-v1 identity"},
		{"secrets-encryption false writes in clear and still reads", off, Encryption{Write: "key-1", Keys: []EncryptionKey{k1}}, "identity secretbox:key-1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := load(t, tt.doc)
			node := testNode
			node.Encryption = &tt.enc
			f, err := EncryptionConfig(cfg, node)
			if err != nil {
				t.Fatal(err)
			}
			if f.Mode != 0o600 || f.Path != "/var/lib/cairn/pki/encryption-config.yaml" {
				t.Errorf("file %s mode %04o, want /var/lib/cairn/pki/encryption-config.yaml 0600", f.Path, f.Mode)
			}
			var doc struct {
				APIVersion string `yaml:"apiVersion"`
				Kind       string `yaml:"kind"`
				Resources  []struct {
					Resources []string                    `yaml:"resources"`
					Providers []map[string]map[string]any `yaml:"providers"`
				} `yaml:"resources"`
			}
			if err := yaml.Unmarshal(f.Data, &doc); err != nil {
				t.Fatalf("the config does not parse: %v\n%s", err, f.Data)
			}
			if doc.APIVersion != "apiserver.config.k8s.io/v1" || doc.Kind != "EncryptionConfiguration" || len(doc.Resources) != 1 ||
				strings.Join(doc.Resources[0].Resources, ",") != "secrets" {
				t.Fatalf("not an EncryptionConfiguration of Secrets:\n%s", f.Data)
			}
			var got []string
			for _, p := range doc.Resources[0].Providers {
				for kind, body := range p {
					entry := kind
					keys, _ := body["keys"].([]any)
					var names []string
					for _, k := range keys {
						m := k.(map[string]any)
						names = append(names, m["name"].(string))
						if s, _ := base64.StdEncoding.DecodeString(m["secret"].(string)); len(s) != 32 {
							t.Errorf("key %s: the secret is not 32 bytes in base64", m["name"])
						}
					}
					if len(names) > 0 {
						entry += ":" + strings.Join(names, ",")
					}
					got = append(got, entry)
				}
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("providers %q, want %q\n%s", strings.Join(got, " "), tt.want, f.Data)
			}
		})
	}
}

// Keys the apiserver would refuse are refused before any file is written.
func TestEncryptionConfigRefuses(t *testing.T) {
	cfg := load(t, "kubernetes:\n  role: server\n")
	good := EncryptionKey{Name: "key-1", Provider: ProviderSecretbox, Secret: make([]byte, 32)}
	for _, tt := range []struct {
		enc  Encryption
		want string
	}{
		{Encryption{Write: "key-1", Keys: []EncryptionKey{{Name: "key-1", Provider: ProviderSecretbox, Secret: make([]byte, 16)}}}, `the key "key-1" is 16 bytes; want 32`},
		{Encryption{Write: "key-1", Keys: []EncryptionKey{{Name: "key:1", Provider: ProviderSecretbox, Secret: make([]byte, 32)}}}, `the key name "key:1" is not`},
		{Encryption{Write: "key-1", Keys: []EncryptionKey{{Name: "key-1", Provider: "aesgcm", Secret: make([]byte, 32)}}}, `provider "aesgcm"`},
		{Encryption{Write: "key-2", Keys: []EncryptionKey{good}}, `the write key "key-2" is not among the keys`},
		{Encryption{Write: "key-1", Keys: []EncryptionKey{good, good}}, `two keys are named "key-1"`},
	} {
		node := testNode
		node.Encryption = &tt.enc
		if _, err := EncryptionConfig(cfg, node); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
		if _, err := APIServer(cfg, node); err == nil {
			t.Errorf("APIServer rendered with %v", tt.want)
		}
	}
	// No keys (an agent, or a server before it read the cluster): no file, no flag.
	node := testNode
	node.Encryption = nil
	api, err := APIServer(cfg, node)
	if err != nil || len(api.Files) != 0 || strings.Contains(strings.Join(api.Args, " "), "encryption") {
		t.Errorf("without keys: %v, files %d, args %q", err, len(api.Files), api.Args)
	}
}
