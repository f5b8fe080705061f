// Package nodeclaim keeps a node's name its own, as k3s's node password
// does: each agent makes a random node secret once and keeps it on STATE;
// its first kubelet client certificate request carries proof of it, and
// the servers approve a name's request only for the secret that claimed
// the name first. The servers keep, per name, only the public key the
// secret derives (an Ed25519 key), so neither the datastore nor a
// Secret's reader learns anything that claims a name.
package nodeclaim

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/kube"
)

// SecretFile is the node secret's file in the node's data directory
// (/var/lib/cairn, on STATE): 64 hex digits, mode 0600.
const SecretFile = "node-secret"

// The annotations of a kubelet client certificate request that carry the
// claim: the node secret's public key and its signature of the node's
// name and the request's public key.
const (
	KeyAnnotation   = "cairn.dev/node-key"
	ProofAnnotation = "cairn.dev/node-proof"
)

// Signer is the signer of kubelet client certificates.
const Signer = "kubernetes.io/kube-apiserver-client-kubelet"

// RecordSuffix ends the name of the Secret in kube-system that holds a
// node name's claim: NAME.node-password.cairn.
const RecordSuffix = ".node-password.cairn"

// Secret is a node's secret, as the key it derives.
type Secret struct {
	key ed25519.PrivateKey
}

// fromRaw derives the node key from the secret's 32 bytes.
func fromRaw(raw []byte) Secret {
	seed := sha256.Sum256(append([]byte("cairn node key v1\x00"), raw...))
	return Secret{key: ed25519.NewKeyFromSeed(seed[:])}
}

// Load reads the node secret from dir, or makes one and writes it there
// (0600, through a temporary file); created says it was made now. A file
// that is not a secret is an error naming it (never replaced: the name it
// claimed would be lost).
func Load(dir string) (s Secret, created bool, err error) {
	path := filepath.Join(dir, SecretFile)
	data, err := files.Read(path, 4096)
	switch {
	case err == nil:
		raw, derr := hex.DecodeString(strings.TrimSpace(string(data)))
		if derr != nil || len(raw) != 32 {
			return Secret{}, false, fmt.Errorf("%s is not a node secret (64 hex digits): move it away to make a new one, which then needs the node's Node deleted to join under its name", path)
		}
		return fromRaw(raw), false, nil
	case !errors.Is(err, os.ErrNotExist):
		return Secret{}, false, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return Secret{}, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Secret{}, false, err
	}
	if err := files.WriteSecret(path, []byte(hex.EncodeToString(raw)+"\n")); err != nil {
		return Secret{}, false, err
	}
	return fromRaw(raw), true, nil
}

// Public is the secret's public key, as the annotation and the servers'
// record carry it.
func (s Secret) Public() string {
	return base64.StdEncoding.EncodeToString(s.key.Public().(ed25519.PublicKey))
}

// message is what a proof signs: the node's name and the sha256 of the
// request's public key (its DER SubjectPublicKeyInfo), so a proof read
// from one request proves nothing for another key.
func message(node string, spki []byte) []byte {
	sum := sha256.Sum256(spki)
	return append([]byte("cairn node claim v1\x00"+node+"\x00"), sum[:]...)
}

// Prove signs the claim of node for the request whose public key is spki.
func (s Secret) Prove(node string, spki []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(s.key, message(node, spki)))
}

// Verify checks proof, by the holder of pub, of the claim of node for the
// request whose public key is spki.
func Verify(pub, node string, spki []byte, proof string) error {
	k, err := base64.StdEncoding.DecodeString(pub)
	if err != nil || len(k) != ed25519.PublicKeySize {
		return errors.New("its node key is not an Ed25519 public key")
	}
	sig, err := base64.StdEncoding.DecodeString(proof)
	if err != nil || !ed25519.Verify(ed25519.PublicKey(k), message(node, spki), sig) {
		return errors.New("its proof of the node secret does not verify for this name and key")
	}
	return nil
}

// RecordName is the name of the Secret holding node's claim, or an error
// when node is no Node name (a DNS subdomain, short enough for the
// suffix).
func RecordName(node string) (string, error) {
	if err := ValidName(node); err != nil {
		return "", err
	}
	return node + RecordSuffix, nil
}

// ValidName says why node may not be a claimed Node name, nil when it may.
func ValidName(node string) error {
	if node == "" || len(node) > 253-len(RecordSuffix) {
		return fmt.Errorf("the node name %q is empty or longer than %d characters", node, 253-len(RecordSuffix))
	}
	for _, label := range strings.Split(node, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("the node name %q is not a DNS name (lower-case letters, digits, '-' and '.')", node)
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
				return fmt.Errorf("the node name %q is not a DNS name (lower-case letters, digits, '-' and '.')", node)
			}
		}
	}
	return nil
}

// DeniedError is a request the servers denied: their reason and message.
type DeniedError struct {
	Request, Reason, Message string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("the servers denied request %s: %s", e.Request, e.Message)
}

// Bounds of Request: how often a request is read while it is undecided,
// and how long it is waited for before a new one is made.
var (
	PollEvery = 2 * time.Second
	WaitFor   = 10 * time.Minute
)

const csrPath = "/apis/certificates.k8s.io/v1/certificatesigningrequests"

// Request asks the cluster, with api (the agent token's bootstrap
// token), for a client certificate of the kubelet of node, claiming the
// name with s: it makes a key, sends the request with the claim's
// annotations and waits for the certificate. It returns the certificate
// and the key in one PEM document (the kubelet's store's form), or a
// *DeniedError.
func Request(ctx context.Context, api *kube.Client, node string, s Secret) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}}}, key)
	if err != nil {
		return nil, err
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, err
	}
	obj := map[string]any{"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
		"metadata": map[string]any{"generateName": "node-csr-",
			"annotations": map[string]string{KeyAnnotation: s.Public(), ProofAnnotation: s.Prove(node, req.RawSubjectPublicKeyInfo)}},
		"spec": map[string]any{"request": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			"signerName": Signer, "usages": []string{"digital signature", "client auth"}}}
	var made struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := api.Do(ctx, http.MethodPost, csrPath, obj, &made); err != nil {
		return nil, fmt.Errorf("sending the kubelet's certificate request: %w", err)
	}
	name := made.Metadata.Name
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(WaitFor)
	for {
		var got struct {
			Status struct {
				Certificate []byte `json:"certificate"`
				Conditions  []struct {
					Type    string `json:"type"`
					Reason  string `json:"reason"`
					Message string `json:"message"`
				} `json:"conditions"`
			} `json:"status"`
		}
		err := api.Get(ctx, csrPath+"/"+name, &got)
		if kube.IsStatus(err, http.StatusNotFound) {
			return nil, fmt.Errorf("the kubelet's certificate request %s is gone before it was decided", name)
		}
		if err == nil {
			for _, c := range got.Status.Conditions {
				if c.Type == "Denied" || c.Type == "Failed" {
					return nil, &DeniedError{Request: name, Reason: c.Reason, Message: c.Message}
				}
			}
			if block, _ := pem.Decode(got.Status.Certificate); block != nil && block.Type == "CERTIFICATE" {
				return append(got.Status.Certificate, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...), nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no server decided the kubelet's certificate request %s within %s", name, WaitFor)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(PollEvery):
		}
	}
}
