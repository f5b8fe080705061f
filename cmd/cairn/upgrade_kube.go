package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/init/node/join"
)

// kube talks REST to a cluster's apiserver with an admin kubeconfig: the
// few calls `cairn upgrade` makes, each bounded in time and in what it
// reads.
type kube struct {
	api string
	c   *http.Client
	// timeout bounds each request but an upload's.
	timeout time.Duration
}

// Bounds of what is read from the apiserver: an object, a list.
const (
	maxObject = upgrade.MaxManifest
	maxList   = 16 << 20
)

// openKube reads the admin kubeconfig at path ($KUBECONFIG when empty).
func openKube(path string) (*kube, error) {
	if path == "" {
		path = os.Getenv("KUBECONFIG")
	}
	if path == "" {
		return nil, usageErrorf("--kubeconfig is required (or set $KUBECONFIG): an admin kubeconfig, as 'cairn kubeconfig' writes")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxObject+1))
	if err != nil {
		return nil, err
	}
	admin, err := join.ParseKubeconfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !strings.HasPrefix(admin.Server, "https://") {
		return nil, fmt.Errorf("%s: the server %q is not an https:// URL", path, admin.Server)
	}
	return &kube{
		api:     strings.TrimSuffix(admin.Server, "/"),
		c:       &http.Client{Transport: &http.Transport{TLSClientConfig: admin.TLS, Proxy: http.ProxyFromEnvironment}},
		timeout: 30 * time.Second,
	}, nil
}

// apiError is a reply other than the one expected: its status and the
// Status object's message.
type apiError struct {
	method, path string
	code         int
	msg          string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.method, e.path, e.code, http.StatusText(e.code), e.msg)
}

// isStatus says whether err is the apiserver's answer code.
func isStatus(err error, code int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.code == code
}

// call sends body (JSON, when not nil) and decodes a 2xx reply of at most
// limit bytes into out (when not nil). An apiserver that asks to be asked
// again (429: too busy, or a resource's storage still starting) is, up to
// three times, after the delay it names.
func (k *kube) call(ctx context.Context, method, path string, body, out any, limit int64) error {
	var js []byte
	if body != nil {
		var err error
		if js, err = json.Marshal(body); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	var data []byte
	for try := 1; ; try++ {
		req, err := http.NewRequestWithContext(ctx, method, k.api+path, bytes.NewReader(js))
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := k.c.Do(req)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		data, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		if resp.StatusCode == http.StatusTooManyRequests && try < 3 {
			wait, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if err != nil || wait < 1 {
				wait = 1
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
			case <-time.After(time.Duration(min(wait, 5)) * time.Second):
			}
			continue
		}
		if resp.StatusCode/100 != 2 {
			return &apiError{method: method, path: path, code: resp.StatusCode, msg: statusMessage(data)}
		}
		break
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("%s %s: the reply is larger than %d bytes", method, path, limit)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

// statusMessage is the message of a Kubernetes Status reply, or the
// reply's first line.
func statusMessage(data []byte) string {
	var st struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(data, &st) == nil && st.Message != "" {
		return st.Message
	}
	return firstLine(data)
}

// kubeNode is what the upgrade needs of a Node.
type kubeNode struct {
	Name    string
	Server  bool
	Arch    string
	Version string
}

// controlPlaneLabel marks servers' Node objects.
const controlPlaneLabel = "node-role.kubernetes.io/control-plane"

// nodes lists the cluster's nodes, servers first, each group by name.
func (k *kube) nodes(ctx context.Context) ([]kubeNode, error) {
	var list struct {
		Items []struct {
			Metadata struct {
				Name        string            `json:"name"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		} `json:"items"`
	}
	if err := k.call(ctx, "GET", "/api/v1/nodes", nil, &list, maxList); err != nil {
		return nil, err
	}
	var out []kubeNode
	for _, it := range list.Items {
		m := it.Metadata
		_, server := m.Labels[controlPlaneLabel]
		out = append(out, kubeNode{Name: m.Name, Server: server, Arch: m.Labels["kubernetes.io/arch"], Version: m.Annotations[upgrade.VersionAnnotation]})
	}
	slices.SortFunc(out, func(a, b kubeNode) int {
		if a.Server != b.Server {
			if a.Server {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// upgrades lists the Upgrades, oldest first.
func (k *kube) upgrades(ctx context.Context) ([]upgrade.Upgrade, error) {
	var list struct {
		Items []upgrade.Upgrade `json:"items"`
	}
	if err := k.call(ctx, "GET", upgrade.Path(""), nil, &list, maxList); err != nil {
		if isStatus(err, http.StatusNotFound) {
			return nil, fmt.Errorf("the cluster has no Upgrade resource (%s.%s): its servers run a cairn without upgrades, or have not installed it yet", upgrade.Plural, upgrade.Group)
		}
		return nil, err
	}
	slices.SortFunc(list.Items, func(a, b upgrade.Upgrade) int {
		if c := strings.Compare(a.Metadata.CreationTimestamp, b.Metadata.CreationTimestamp); c != 0 {
			return c
		}
		return strings.Compare(a.Metadata.Name, b.Metadata.Name)
	})
	return list.Items, nil
}

// errNoUpgrade is the answer for an Upgrade that does not exist.
var errNoUpgrade = errors.New("no such upgrade")

// get reads the Upgrade called name.
func (k *kube) get(ctx context.Context, name string) (*upgrade.Upgrade, error) {
	var u upgrade.Upgrade
	if err := k.call(ctx, "GET", upgrade.Path(name), nil, &u, maxObject); err != nil {
		if isStatus(err, http.StatusNotFound) {
			return nil, fmt.Errorf("%w: no upgrade %s in namespace %s ('cairn upgrade status' shows the newest)", errNoUpgrade, name, upgrade.Namespace)
		}
		return nil, err
	}
	return &u, nil
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
func (k *kube) put(ctx context.Context, node, path string, f upgrade.File) error {
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
func (k *kube) directBlob(ctx context.Context, node string) *blobClient {
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
func (k *kube) putTo(ctx context.Context, bc *blobClient, url, path string, f upgrade.File) error {
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
