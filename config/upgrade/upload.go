package upgrade

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
)

// Only an admin uploads to a server's BlobPort. Straight to the port, the
// admin's client certificate is the TLS one. Through the apiserver's node
// proxy, which presents no client certificate, the uploader proves that it
// holds the certificate's key by signing, in these headers, what it
// uploads, to which server, for which Upgrade (its uid): a proof seen on
// its way is good for that file, that server and that Upgrade only.
const (
	// UploadCertHeader is the uploader's certificate (base64 of its DER).
	UploadCertHeader = "Cairn-Upload-Certificate"
	// UploadUpgradeHeader is the uid of the Upgrade that names the file.
	UploadUpgradeHeader = "Cairn-Upload-Upgrade"
	// UploadSignatureHeader is the certificate's key's signature of the
	// upload (base64).
	UploadSignatureHeader = "Cairn-Upload-Signature"
)

// uploadStatement is what an uploader signs: the file, the server (its
// Node's name) and the Upgrade.
func uploadStatement(node, upgradeUID string, f File) []byte {
	return fmt.Appendf(nil, "cairn upload\nnode %s\nupgrade %s\nsha256 %s\nsize %d\n", node, upgradeUID, f.SHA256, f.Size)
}

// SignUpload sets h's proof that the holder of cert (a kubeconfig's client
// certificate) uploads f to the server node for the Upgrade whose uid is
// upgradeUID.
func SignUpload(h http.Header, cert tls.Certificate, node, upgradeUID string, f File) error {
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if len(cert.Certificate) == 0 || !ok {
		return errors.New("an upload needs the admin's client certificate and key, and the kubeconfig has none: use the one `cairn kubeconfig` writes")
	}
	msg := uploadStatement(node, upgradeUID, f)
	var sig []byte
	var err error
	if _, ok := signer.Public().(ed25519.PublicKey); ok {
		sig, err = signer.Sign(rand.Reader, msg, crypto.Hash(0))
	} else {
		sum := sha256.Sum256(msg)
		sig, err = signer.Sign(rand.Reader, sum[:], crypto.SHA256)
	}
	if err != nil {
		return fmt.Errorf("signing the upload of %s with the client certificate's key: %w", f.Name, err)
	}
	h.Set(UploadCertHeader, base64.StdEncoding.EncodeToString(cert.Certificate[0]))
	h.Set(UploadUpgradeHeader, upgradeUID)
	h.Set(UploadSignatureHeader, base64.StdEncoding.EncodeToString(sig))
	return nil
}

// VerifyUpload checks h's proof of an upload of f to the server node: it
// returns the certificate that signed it, verified as a client certificate
// of roots, and the uid of the Upgrade it names. Which certificates may
// upload (their groups) and whether the Upgrade names f are the caller's
// to check.
func VerifyUpload(h http.Header, roots *x509.CertPool, node string, f File) (*x509.Certificate, string, error) {
	der, err := base64.StdEncoding.DecodeString(h.Get(UploadCertHeader))
	if err != nil || len(der) == 0 {
		return nil, "", errors.New("no client certificate, and no " + UploadCertHeader)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", UploadCertHeader, err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, "", fmt.Errorf("%s: %w", UploadCertHeader, err)
	}
	sig, err := base64.StdEncoding.DecodeString(h.Get(UploadSignatureHeader))
	if err != nil || len(sig) == 0 {
		return nil, "", errors.New("no " + UploadSignatureHeader)
	}
	var alg x509.SignatureAlgorithm
	switch cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		alg = x509.ECDSAWithSHA256
	case *rsa.PublicKey:
		alg = x509.SHA256WithRSA
	case ed25519.PublicKey:
		alg = x509.PureEd25519
	default:
		return nil, "", fmt.Errorf("%s: a %T key cannot sign an upload", UploadCertHeader, cert.PublicKey)
	}
	uid := h.Get(UploadUpgradeHeader)
	if err := cert.CheckSignature(alg, uploadStatement(node, uid, f), sig); err != nil {
		return nil, "", fmt.Errorf("%s: not a signature of this upload by %s: %w", UploadSignatureHeader, cert.Subject.CommonName, err)
	}
	return cert, uid, nil
}
