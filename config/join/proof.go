package join

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// The proof's key derivation: Argon2id with the parameters the datastore
// record is sealed with (init/node/bootstrap.go's kdfTime, kdfMemory,
// kdfThreads; a test there keeps the two equal), so a guess at the token
// costs the same against the proof anyone may read as against a copy of
// the datastore.
const (
	ProofTime    = 2
	ProofMemory  = 64 << 10 // KiB
	ProofThreads = 2
)

// Bounds on the parameters a client accepts from a server, which may be a
// man in the middle: twice the default memory and four times its passes at
// most, so no one makes a joining node's PID 1 spend more than 128 MiB or
// a few seconds on a proof.
const (
	maxProofMemory = 2 * ProofMemory // KiB
	maxProofTime   = 4 * ProofTime
	maxProofSalt   = 64
	minProofSalt   = 16
)

// KDF is the published key derivation of the CA proof: Argon2id with its
// parameters and salt, written in the PHC string format
// ("$argon2id$v=19$m=65536,t=2,p=2$<salt>").
type KDF struct {
	Time    uint32
	Memory  uint32 // KiB
	Threads uint8
	Salt    []byte
}

// NewKDF is the proof's derivation for a cluster whose serving CA is
// caPEM: the default parameters and a salt made from the CA, so that
// every server publishes the same proof and no two clusters share a salt.
func NewKDF(caPEM []byte) KDF {
	sum := sha256.Sum256(append([]byte("cairn ca-proof salt v2\n"), caPEM...))
	return KDF{Time: ProofTime, Memory: ProofMemory, Threads: ProofThreads, Salt: sum[:16]}
}

// String is the PHC string of k.
func (k KDF) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s", argon2.Version, k.Memory, k.Time, k.Threads,
		base64.RawStdEncoding.EncodeToString(k.Salt))
}

// ParseKDF reads a PHC string, refusing parameters out of bounds.
func ParseKDF(s string) (KDF, error) {
	f := strings.Split(strings.TrimSpace(s), "$")
	if len(f) != 5 || f[0] != "" || f[1] != "argon2id" || f[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return KDF{}, errors.New("the proof's key derivation is not $argon2id$v=19$m=…,t=…,p=…$<salt>")
	}
	var k KDF
	var p uint32
	if n, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &k.Memory, &k.Time, &p); n != 3 || err != nil {
		return KDF{}, fmt.Errorf("the proof's key derivation parameters %q are not m=…,t=…,p=…", f[3])
	}
	salt, err := base64.RawStdEncoding.DecodeString(f[4])
	if err != nil {
		return KDF{}, errors.New("the proof's salt is not base64")
	}
	k.Salt = salt
	if k.Time < 1 || k.Time > maxProofTime || p < 1 || p > 16 || k.Memory < 8*p || k.Memory > maxProofMemory ||
		len(salt) < minProofSalt || len(salt) > maxProofSalt {
		return KDF{}, fmt.Errorf("the proof's key derivation (%d passes, %d KiB, %d threads, a %d-byte salt) is out of the bounds a client accepts", k.Time, k.Memory, p, len(salt))
	}
	k.Threads = uint8(p)
	return k, nil
}

// Key is the proof key of secret: one Argon2id run.
func (k KDF) Key(secret string) []byte {
	return argon2.IDKey([]byte(secret), k.Salt, k.Time, k.Memory, k.Threads, 32)
}

// Proof is an HMAC, under a proof key, of the cluster's two CA bundles: a
// server publishes it beside them, and a client holding a token checks it,
// so a man in the middle who does not know the token cannot hand out his
// own CAs.
func Proof(key, servingPEM, clientCAPEM []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("cairn ca-proof v2\n"))
	for _, b := range [][]byte{servingPEM, clientCAPEM} {
		m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
		m.Write(b)
	}
	return hex.EncodeToString(m.Sum(nil))
}

// CheckPin checks a K10 token's CA hash against the serving bundle.
func CheckPin(t Token, servingPEM []byte) error {
	if t.CAHash == nil {
		return nil
	}
	sum := sha256.Sum256(servingPEM)
	if !hmac.Equal(sum[:], t.CAHash) {
		return fmt.Errorf("%w: its SHA-256 is %x, the token pins %x; a man in the middle, or the token of another cluster",
			ErrCAMismatch, sum[:6], t.CAHash[:6])
	}
	return nil
}

// proofMatches says whether proof is the one key makes for the bundles.
func proofMatches(key, servingPEM, clientCAPEM []byte, proof string) bool {
	proof = strings.TrimSpace(proof)
	return proof != "" && hmac.Equal([]byte(Proof(key, servingPEM, clientCAPEM)), []byte(proof))
}
