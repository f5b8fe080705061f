// Package join holds what a client needs to reach a cairn cluster with
// nothing but a token: the token formats (a plain secret, or k3s's
// `K10<CA hash>::server:<secret>`), their estimated strength, the keys
// derived from a token (the bootstrap tokens, the proof that a server
// knows the token), and the client that fetches and verifies the
// cluster's CAs and gets an admin kubeconfig from a server. It is the join
// contract: servers publish what it reads, agents and `cairn kubeconfig`
// read it.
package join

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Token is a parsed cluster token. Its String never shows the secret.
type Token struct {
	// Secret is what every key is derived from: the whole plain token, or
	// the part after "::server:" of a K10 token.
	Secret string
	// CAHash is the SHA-256 of the cluster's serving CA bundle, from a K10
	// token; nil for a plain one.
	CAHash []byte
}

// ParseToken accepts a plain secret or `K10<sha256 hex>::<user>:<secret>`.
// Errors never contain the token.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Token{}, errors.New("the token is empty")
	}
	if !strings.HasPrefix(s, "K10") {
		if strings.ContainsAny(s, " \t\r\n") {
			return Token{}, errors.New("the token contains white space")
		}
		return Token{Secret: s}, nil
	}
	hash, cred, ok := strings.Cut(s[3:], "::")
	if !ok {
		return Token{}, errors.New(`a K10 token has the form K10<CA hash>::server:<secret>; "::" is missing`)
	}
	sum, err := hex.DecodeString(hash)
	if err != nil || len(sum) != sha256.Size {
		return Token{}, errors.New("the CA hash of the K10 token is not 64 hex digits (a SHA-256)")
	}
	user, secret, ok := strings.Cut(cred, ":")
	if !ok || user == "" || secret == "" {
		return Token{}, errors.New(`a K10 token ends in <user>:<secret> after "::" (k3s writes server:<secret>)`)
	}
	return Token{Secret: secret, CAHash: sum}, nil
}

// String says what kind of token it is, never its secret.
func (t Token) String() string {
	if t.CAHash != nil {
		return "K10 token (CA pinned)"
	}
	return "plain token"
}

// Full is the token in k3s's secure form, pinning the CA bundle caPEM.
func Full(secret string, caPEM []byte) string {
	sum := sha256.Sum256(caPEM)
	return "K10" + hex.EncodeToString(sum[:]) + "::server:" + secret
}

// Generate returns a new random secret for a cluster.
func Generate() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating a token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// derive is HKDF-SHA256 of the secret for one purpose.
func derive(secret, purpose string, n int) []byte {
	k, err := hkdf.Key(sha256.New, []byte(secret), nil, "cairn "+purpose, n)
	if err != nil {
		panic(err) // only for n > 255*32, a programming error
	}
	return k
}

// bootstrapAlphabet is what Kubernetes allows in bootstrap tokens.
const bootstrapAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// bootstrapToken is the Kubernetes bootstrap token ("abcdef.0123456789abcdef")
// derived from the secret for one purpose.
func bootstrapToken(secret, purpose string) (id, tokenSecret string) {
	raw := derive(secret, purpose, 22)
	b := make([]byte, len(raw))
	for i, c := range raw {
		b[i] = bootstrapAlphabet[int(c)%len(bootstrapAlphabet)]
	}
	return string(b[:6]), string(b[6:])
}

// ServerBootstrapToken is the bootstrap token every server derives from
// the server token and installs in the groups system:bootstrappers and
// ServersGroup: `cairn kubeconfig` asks for an admin certificate with it.
// No node uses it.
func ServerBootstrapToken(secret string) (id, tokenSecret string) {
	return bootstrapToken(secret, "server bootstrap-token v2")
}

// AgentBootstrapToken is the bootstrap token a kubelet asks for its
// client certificate with, derived from the agent token (the server token
// when the cluster has no agent token, under another label, so it is
// never the server's): it is in system:bootstrappers only.
func AgentBootstrapToken(secret string) (id, tokenSecret string) {
	return bootstrapToken(secret, "agent bootstrap-token v2")
}

// ErrCAMismatch says the server's CA is not the cluster's the token names.
var ErrCAMismatch = errors.New("the server's CA does not match the token")
