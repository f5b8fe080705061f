package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/image"
)

// upload puts the files of every bundle directory on every server, a line
// per file and server.
func upload(ctx context.Context, stderr io.Writer, k *Kube, bundles []*bundle, servers []string) error {
	for _, b := range bundles {
		if b.dir == "" {
			continue
		}
		for _, f := range b.Files {
			for _, s := range servers {
				t := time.Now()
				if err := k.put(ctx, s, filepath.Join(b.dir, f.Name), f); err != nil {
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

// put uploads the file at path (size bytes) to the server node: straight
// to its blob port when this machine reaches the node's address (one TLS
// hop; under TCG the apiserver's proxy adds two more and is slower than
// 25 KiB/s), else through the apiserver's node proxy. The server checks
// what arrives against the sha256 and size an Upgrade names; 201 (stored)
// and 200 (held already) succeed.
func (k *Kube) put(ctx context.Context, node, path string, f upgrade.File) error {
	// A file may take a while, a stalled one not forever: it must go at
	// 256 KiB/s at least (115 MiB in 8 min).
	ctx, cancel := context.WithTimeout(ctx, k.timeout+time.Duration(f.Size/(256<<10))*time.Second)
	defer cancel()
	if direct := k.directBlob(ctx, node); direct != nil {
		err := k.putTo(ctx, direct, "https://"+direct.host+upgrade.BlobPath(f.SHA256), path, f)
		var ae *apiError
		if err == nil || errors.As(err, &ae) || ctx.Err() != nil {
			return err
		}
	}
	return k.putTo(ctx, &blobClient{c: k.c}, k.api+blobProxyPath(node, f.SHA256), path, f)
}

// blobClient reaches a server's blob port.
type blobClient struct {
	c    *http.Client
	host string
}

// directBlob is a client for node's blob port when its InternalIP answers
// within a few seconds, else nil.
func (k *Kube) directBlob(ctx context.Context, node string) *blobClient {
	var n struct {
		Status struct {
			Addresses []struct{ Type, Address string } `json:"addresses"`
		} `json:"status"`
	}
	if k.call(ctx, "GET", "/api/v1/nodes/"+node, nil, &n, maxObject) != nil {
		return nil
	}
	tr, ok := k.c.Transport.(*http.Transport)
	if !ok || tr.TLSClientConfig == nil {
		return nil
	}
	for _, a := range n.Status.Addresses {
		if a.Type != "InternalIP" {
			continue
		}
		host := net.JoinHostPort(a.Address, strconv.Itoa(upgrade.BlobPort))
		d := net.Dialer{Timeout: 3 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			return nil
		}
		conn.Close()
		tlsCfg := tr.TLSClientConfig.Clone()
		// Servers answer on the blob port with the apiserver's
		// certificate, which names "kubernetes".
		tlsCfg.ServerName = "kubernetes"
		return &blobClient{host: host, c: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: nil, ForceAttemptHTTP2: false}}}
	}
	return nil
}

// putTo sends the file at path to url.
func (k *Kube) putTo(ctx context.Context, bc *blobClient, url, path string, f upgrade.File) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	req, err := http.NewRequestWithContext(ctx, "PUT", url, in)
	if err != nil {
		return err
	}
	req.ContentLength = f.Size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := bc.c.Do(req)
	if err != nil {
		return fmt.Errorf("PUT %s: %w", url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxObject))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return &apiError{method: "PUT", path: url, code: resp.StatusCode, msg: statusMessage(data)}
	}
	return nil
}
