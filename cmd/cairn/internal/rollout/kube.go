package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
)

// Kube talks REST to a cluster's apiserver with an admin kubeconfig: the
// few calls `cairn upgrade` makes, each bounded in time and in what it
// reads.
type Kube struct {
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

// Open reads the admin kubeconfig at path and returns a client of the
// apiserver it names.
func Open(path string) (*Kube, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxObject+1))
	if err != nil {
		return nil, err
	}
	admin, err := kube.ParseKubeconfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !strings.HasPrefix(admin.Server, "https://") {
		return nil, fmt.Errorf("%s: the server %q is not an https:// URL", path, admin.Server)
	}
	return &Kube{
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
func (k *Kube) call(ctx context.Context, method, path string, body, out any, limit int64) error {
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

// nodes lists the cluster's nodes, servers first, each group by name.
func (k *Kube) nodes(ctx context.Context) ([]kubeNode, error) {
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
		_, server := m.Labels[upgrade.ServerLabel]
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
func (k *Kube) upgrades(ctx context.Context) ([]upgrade.Upgrade, error) {
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
func (k *Kube) get(ctx context.Context, name string) (*upgrade.Upgrade, error) {
	var u upgrade.Upgrade
	if err := k.call(ctx, "GET", upgrade.Path(name), nil, &u, maxObject); err != nil {
		if isStatus(err, http.StatusNotFound) {
			return nil, fmt.Errorf("%w: no upgrade %s in namespace %s ('cairn upgrade status' shows the newest)", errNoUpgrade, name, upgrade.Namespace)
		}
		return nil, err
	}
	return &u, nil
}

// firstLine is the start of a reply that is not a Status, for a message.
func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
