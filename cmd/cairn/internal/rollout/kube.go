package rollout

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
)

// Kube is a cluster as `cairn upgrade` reaches it with an admin
// kubeconfig: its apiserver's client (config/kube), and the credentials
// the uploads use, which stream a file for as long as it takes.
type Kube struct {
	api *kube.Client
	// tls carries the admin's client certificate, for the uploads.
	tls *tls.Config
	// upload sends a file through the apiserver; it bounds no time (put
	// does, by the file's size).
	upload *http.Client
}

// Bounds of what is read from the apiserver (an object, a list), and of
// each request but an upload.
const (
	maxObject      = upgrade.MaxManifest
	maxList        = 16 << 20
	requestTimeout = 30 * time.Second
)

// New returns a client of the apiserver an admin kubeconfig names.
// Requests honour $HTTPS_PROXY, and an apiserver that answers 429 (too
// busy, or a resource's storage still starting) is asked up to three
// times, after the delay it names.
func New(admin *kube.Credentials) *Kube {
	return &Kube{
		api: admin.Client(kube.Options{Timeout: requestTimeout, MaxReply: maxObject, Retries: 2, ProxyFromEnvironment: true}),
		tls: admin.TLS,
		upload: &http.Client{Transport: &http.Transport{TLSClientConfig: admin.TLS, Proxy: http.ProxyFromEnvironment,
			MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}},
	}
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
	if err := k.api.WithMaxReply(maxList).Get(ctx, "/api/v1/nodes", &list); err != nil {
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
	if err := k.api.WithMaxReply(maxList).Get(ctx, upgrade.Path(""), &list); err != nil {
		if kube.IsStatus(err, http.StatusNotFound) {
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
	if err := k.api.Get(ctx, upgrade.Path(name), &u); err != nil {
		if kube.IsStatus(err, http.StatusNotFound) {
			return nil, fmt.Errorf("%w: no upgrade %s in namespace %s ('cairn upgrade status' shows the newest)", errNoUpgrade, name, upgrade.Namespace)
		}
		return nil, err
	}
	return &u, nil
}
