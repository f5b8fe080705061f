package join

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"testing"

	"golang.org/x/crypto/argon2"
)

// BenchmarkGuess is what one guess at a token costs an attacker, side by
// side, in guesses per second on this machine's cores (b.N guesses on
// GOMAXPROCS goroutines): against the proof older cairns published
// (HKDF, then HMAC: readable by anyone), against the proof published now,
// and against the datastore record (Argon2id with the record's parameters,
// then AES-256-GCM: readable by whoever holds a copy of the datastore).
// Each candidate is checked in full, as an attacker must.
func BenchmarkGuess(b *testing.B) {
	ca := []byte("-----BEGIN CERTIFICATE-----\nthe cluster's CA\n-----END CERTIFICATE-----\n")
	kdf := NewKDF(ca)
	target := Proof(kdf.Key("the real token"), ca, ca)
	oldTarget := oldProof("the real token", ca)
	// The record: the same Argon2id, then GCM's tag check.
	salt, nonce := make([]byte, 16), make([]byte, 12)
	sealed := gcmSeal(b, argon2.IDKey([]byte("the real token"), salt, ProofTime, ProofMemory, ProofThreads, 32), nonce)
	for _, bb := range []struct {
		name  string
		guess func(string) bool
	}{
		{"old-proof-hkdf", func(g string) bool { return hmac.Equal([]byte(oldProof(g, ca)), []byte(oldTarget)) }},
		{"proof-argon2id", func(g string) bool { return proofMatches(kdf.Key(g), ca, ca, target) }},
		{"record-argon2id", func(g string) bool {
			key := argon2.IDKey([]byte(g), salt, ProofTime, ProofMemory, ProofThreads, 32)
			return gcmOpen(key, nonce, sealed)
		}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					if bb.guess("Winter" + strconv.Itoa(i)) {
						b.Fatal("a wrong guess matched")
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "guesses/s")
		})
	}
}

// oldProof is the proof cairn published before agent tokens: HMAC under
// an HKDF of the token, no stretching.
func oldProof(secret string, caPEM []byte) string {
	m := hmac.New(sha256.New, derive(secret, "ca-proof v1", 32))
	m.Write(caPEM)
	return hex.EncodeToString(m.Sum(nil))
}

func gcmSeal(b *testing.B, key, nonce []byte) []byte {
	block, err := aes.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	return aead.Seal(nil, nonce, []byte(`{"server-ca":{}}`), []byte("cairn bootstrap v1"))
}

func gcmOpen(key, nonce, sealed []byte) bool {
	block, err := aes.NewCipher(key)
	if err != nil {
		return false
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return false
	}
	_, err = aead.Open(nil, nonce, sealed, []byte("cairn bootstrap v1"))
	return err == nil
}

// BenchmarkProofKey is what verifying the CA costs a joining client: one
// Argon2id run (a node pays it once per boot, `cairn kubeconfig` once).
func BenchmarkProofKey(b *testing.B) {
	kdf := NewKDF([]byte("a CA"))
	b.ReportAllocs()
	for b.Loop() {
		kdf.Key("a token")
	}
}
