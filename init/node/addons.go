package node

import (
	"archive/tar"
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/pki"
)

// The cluster add-ons every server keeps applied, named as k3s's
// `disable:` names them; each needs its image under ImagesDir.
//
//go:embed addons/*.yaml
var addonFS embed.FS

// addon is one packaged component: its manifest and the image archive
// (under ImagesDir) it runs. kubeletCA says it checks the kubelets'
// serving certificates, so it needs the CA that signs them.
type addon struct {
	name, manifest, archive string
	kubeletCA               bool
}

var addonList = []addon{
	{name: "coredns", manifest: "addons/coredns.yaml", archive: "coredns.tar"},
	{name: "local-storage", manifest: "addons/local-storage.yaml", archive: "local-path-provisioner.tar"},
	{name: "metrics-server", manifest: "addons/metrics-server.yaml", archive: "metrics-server.tar", kubeletCA: true},
}

// unusedAddon says whether archive is the image of an add-on this node's
// cluster does not run (disabled, or with no manifest in this cairn), and
// which: importing it would only cost time and memory at every boot.
func unusedAddon(k *config.Kubernetes, archive string) (string, bool) {
	for _, a := range addonList {
		if a.archive != archive {
			continue
		}
		if slices.Contains(k.Disable, a.name) {
			return a.name, true
		}
		if _, err := addonFS.ReadFile(a.manifest); err != nil {
			return a.name, true
		}
	}
	return "", false
}

// addonValues fill the manifests' templates.
type addonValues struct {
	Image  string // the image reference in the archive
	DNS    string // the first cluster-dns address
	Domain string // cluster-domain
	// StoragePath is where local-path volumes go on every node
	// (default-local-storage-path).
	StoragePath string
	// KubeletCA is the PEM of the CA that signs the kubelets' serving
	// certificates (see kubeletServingCA).
	KubeletCA string
}

// kubeletServingCA is the authority the kubelets' serving certificates
// chain to: the one kube-controller-manager signs kubelet-serving requests
// with (render.ControllerManager's cluster-signing-kubelet-serving-*
// files), which is the cluster's serving CA. Add-ons that call kubelets
// (metrics-server) trust it, and only it.
func kubeletServingCA(c pki.Cluster) []byte { return c[pki.ServerCA].Cert }

// addonObjects renders the add-ons this cluster runs: not disabled, with
// an image in the system image. skipped says, one entry per add-on, why
// one does not run. kubeletCA is kubeletServingCA's PEM.
func addonObjects(k *config.Kubernetes, imagesDir string, kubeletCA []byte) (objs []kube.Object, running, skipped []string, err error) {
	for _, a := range addonList {
		if slices.Contains(k.Disable, a.name) {
			skipped = append(skipped, a.name+" (disabled)")
			continue
		}
		tmpl, err := addonFS.ReadFile(a.manifest)
		if errors.Is(err, os.ErrNotExist) {
			skipped = append(skipped, a.name+" (not built into cairn yet)")
			continue
		}
		if err != nil {
			return nil, nil, nil, err
		}
		ref, err := imageRef(filepath.Join(imagesDir, a.archive))
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s (no image: %v)", a.name, err))
			continue
		}
		if a.kubeletCA && len(kubeletCA) == 0 {
			skipped = append(skipped, a.name+" (no CA for the kubelets' serving certificates)")
			continue
		}
		v := addonValues{Image: ref, DNS: firstOf(k.ClusterDNS), Domain: k.ClusterDomain, KubeletCA: string(kubeletCA),
			StoragePath: k.LocalStoragePath()}
		o, err := renderManifest(a.manifest, string(tmpl), v)
		if err != nil {
			return nil, nil, nil, err
		}
		objs = append(objs, o...)
		running = append(running, a.name)
	}
	return objs, running, skipped, nil
}

func firstOf(list string) string {
	first, _, _ := strings.Cut(list, ",")
	return strings.TrimSpace(first)
}

// renderManifest fills a manifest template and splits it into objects,
// each labelled as cairn's.
func renderManifest(name, tmpl string, v addonValues) ([]kube.Object, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, v); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	dec := yaml.NewDecoder(&b)
	var out []kube.Object
	for {
		var o map[string]any
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if o == nil {
			continue
		}
		m, _ := o["metadata"].(map[string]any)
		if m == nil {
			return nil, fmt.Errorf("%s: an object without metadata", name)
		}
		labels, _ := m["labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
		}
		labels["app.kubernetes.io/managed-by"] = "cairn"
		m["labels"] = labels
		// JSON round trip: yaml.v3 may produce map[string]any only, but
		// check it encodes.
		if _, err := json.Marshal(o); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, kube.Object(o))
	}
	return out, nil
}

// maxIndexJSON bounds the OCI index read from an image archive.
const maxIndexJSON = 64 << 10

// imageRef reads the image name an OCI archive carries (the
// io.containerd.image.name annotation of its index.json), which is the
// name containerd imports it under.
func imageRef(archive string) (string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for i := 0; i < 10000; i++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", archive, err)
		}
		if strings.TrimPrefix(h.Name, "./") != "index.json" {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, maxIndexJSON+1))
		if err != nil || len(data) > maxIndexJSON {
			return "", fmt.Errorf("%s: index.json unreadable or larger than %d bytes", archive, maxIndexJSON)
		}
		var idx struct {
			Manifests []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.Unmarshal(data, &idx); err != nil {
			return "", fmt.Errorf("%s: index.json: %w", archive, err)
		}
		for _, m := range idx.Manifests {
			if n := m.Annotations["io.containerd.image.name"]; n != "" {
				return n, nil
			}
		}
		return "", fmt.Errorf("%s: index.json names no image", archive)
	}
	return "", fmt.Errorf("%s has no index.json", archive)
}

// applyAddons applies the add-ons' objects, saying once which run, and
// deletes what disabled ones left (removeDisabledAddons); kubeletCA is
// kubeletServingCA's PEM.
func (s *server) applyAddons(ctx context.Context, api *kube.Client, kubeletCA []byte) error {
	objs, running, skipped, err := addonObjects(s.k, ImagesDir, kubeletCA)
	if err != nil {
		return err
	}
	if err := publish(ctx, api, objs); err != nil {
		return err
	}
	deleted, err := removeDisabledAddons(ctx, api, s.k, objs)
	if line := disabledLine(deleted); line != "" {
		s.o.Printf("%s", line)
	}
	if err != nil {
		return err
	}
	line := "node: add-ons: " + strings.Join(running, ", ")
	if len(running) == 0 {
		line = "node: add-ons: none"
	}
	if len(skipped) > 0 {
		line += "; not running: " + strings.Join(skipped, ", ")
	}
	s.o.Printf("%s", line)
	return nil
}
