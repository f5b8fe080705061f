package rollout

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/image"
)

// upload puts the files of every bundle directory on every server, for
// the Upgrade whose uid is upgradeUID, a line per file and server.
func upload(ctx context.Context, stderr io.Writer, k *Kube, bundles []*bundle, servers []string, upgradeUID string) error {
	for _, b := range bundles {
		if b.dir == "" {
			continue
		}
		for _, f := range b.Files {
			for _, s := range servers {
				t := time.Now()
				if err := k.put(ctx, s, filepath.Join(b.dir, f.Name), f, upgradeUID); err != nil {
					return fmt.Errorf("uploading %s to %s: %w", filepath.Join(b.dir, f.Name), s, err)
				}
				fmt.Fprintf(stderr, "cairn upgrade: %s %s (%s) stored on %s (%.1f s)\n", b.Board, f.Name, image.HumanSize(f.Size), s, time.Since(t).Seconds())
			}
		}
	}
	return nil
}

// blobProxyPath is where the apiserver forwards a file to a server's
// blob port (upgrade.BlobPort) through its node proxy.
func blobProxyPath(node, sha256 string) string {
	return fmt.Sprintf("/api/v1/nodes/https:%s:%d/proxy%s", node, upgrade.BlobPort, upgrade.BlobPath(sha256))
}

// put uploads the file at path (size bytes) to the server node for the
// Upgrade whose uid is upgradeUID: straight to its blob port when this
// machine reaches the node's address (one TLS hop; under TCG the
// apiserver's proxy adds two more and is slower than 25 KiB/s), else
// through the apiserver's node proxy. Only an admin uploads: the
// kubeconfig's client certificate is the TLS one on the direct path, and
// its key signs the upload for the proxy's (upgrade.SignUpload). The
// server checks what arrives against the sha256 and size an Upgrade
// names.
func (k *Kube) put(ctx context.Context, node, path string, f upgrade.File, upgradeUID string) error {
	// A file may take a while, a stalled one not forever: it must go at
	// 256 KiB/s at least (115 MiB in 8 min).
	ctx, cancel := context.WithTimeout(ctx, requestTimeout+time.Duration(f.Size/(256<<10))*time.Second)
	defer cancel()
	proof := http.Header{}
	var cert tls.Certificate
	if len(k.tls.Certificates) > 0 {
		cert = k.tls.Certificates[0]
	}
	if err := upgrade.SignUpload(proof, cert, node, upgradeUID, f); err != nil {
		return err
	}
	if c, base := k.directBlob(ctx, node); c != nil {
		err := putFile(ctx, c, base+upgrade.BlobPath(f.SHA256), path, f, proof)
		var answered *kube.Error
		if err == nil || errors.As(err, &answered) || ctx.Err() != nil {
			return err
		}
	}
	return putFile(ctx, k.upload, k.api.Base()+blobProxyPath(node, f.SHA256), path, f, proof)
}

// directBlob is a client of node's blob port and its base URL when the
// node's InternalIP answers within a few seconds, else nil.
func (k *Kube) directBlob(ctx context.Context, node string) (*http.Client, string) {
	var n struct {
		Status struct {
			Addresses []struct{ Type, Address string } `json:"addresses"`
		} `json:"status"`
	}
	if k.api.Get(ctx, "/api/v1/nodes/"+node, &n) != nil {
		return nil, ""
	}
	for _, a := range n.Status.Addresses {
		if a.Type != "InternalIP" {
			continue
		}
		host := net.JoinHostPort(a.Address, strconv.Itoa(upgrade.BlobPort))
		d := net.Dialer{Timeout: 3 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			return nil, ""
		}
		conn.Close()
		tlsCfg := k.tls.Clone()
		// Servers answer on the blob port with the apiserver's
		// certificate, which names "kubernetes".
		tlsCfg.ServerName = "kubernetes"
		return &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}, "https://" + host
	}
	return nil, ""
}

// putFile sends the file at path to url with the headers of proof: 201
// (stored) and 200 (held already) succeed, any other answer is a
// *kube.Error.
func putFile(ctx context.Context, c *http.Client, url, path string, f upgrade.File, proof http.Header) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, in)
	if err != nil {
		return err
	}
	req.ContentLength = f.Size
	maps.Copy(req.Header, proof)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("PUT %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated {
		return nil
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxObject))
	return kube.ReplyError(http.MethodPut, url, resp.StatusCode, data)
}
