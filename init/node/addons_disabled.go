package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/manifests"
)

// disabledAddonObjects are the objects the manifests of the packaged
// add-ons k disables name (rendered with empty values: only their kinds,
// namespaces and names count), by add-on, leaving out any object a
// running add-on's manifest names too (running are its objects).
func disabledAddonObjects(k *config.Kubernetes, running []kube.Object) (map[string][]kube.Object, error) {
	keep := map[string]bool{}
	for _, o := range running {
		keep[objectKey(o)] = true
	}
	out := map[string][]kube.Object{}
	for _, a := range addonList {
		if !slices.Contains(k.Disable, a.name) {
			continue
		}
		tmpl, err := addonFS.ReadFile(a.manifest)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		objs, err := renderManifest(a.manifest, string(tmpl), addonValues{})
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if !keep[objectKey(o)] {
				out[a.name] = append(out[a.name], o)
			}
		}
	}
	return out, nil
}

// objectKey is "apiVersion kind namespace/name".
func objectKey(o kube.Object) string {
	av, _ := o["apiVersion"].(string)
	kind, _ := o["kind"].(string)
	return av + " " + kind + " " + objectName(o)
}

// objectName is "namespace/name", or "name" for a cluster-scoped object.
func objectName(o kube.Object) string {
	m, _ := o["metadata"].(map[string]any)
	name, _ := m["name"].(string)
	if ns, _ := m["namespace"].(string); ns != "" {
		return ns + "/" + name
	}
	return name
}

// removeDisabledAddons deletes from the cluster what the add-ons k
// disables left there (an add-on disabled after it ran), as k3s does:
// only the objects their manifests name, and of those only the ones
// cairn applied (labelled managed-by cairn) and no manifest of
// kubernetes.manifests claims. It returns, by add-on, how many it deleted.
func removeDisabledAddons(ctx context.Context, api *kube.Client, k *config.Kubernetes, running []kube.Object) (map[string]int, error) {
	byAddon, err := disabledAddonObjects(k, running)
	if err != nil {
		return nil, err
	}
	deleted := map[string]int{}
	disc := kube.NewDiscovery(api)
	for _, name := range slices.Sorted(maps.Keys(byAddon)) {
		for _, o := range byAddon[name] {
			av, _ := o["apiVersion"].(string)
			kind, _ := o["kind"].(string)
			m, _ := o["metadata"].(map[string]any)
			n, _ := m["name"].(string)
			ns, _ := m["namespace"].(string)
			res, err := disc.Find(ctx, av, kind)
			if errors.Is(err, kube.ErrNoKind) {
				continue // nothing of the kind can be left
			}
			if err != nil {
				return deleted, fmt.Errorf("the disabled add-on %s: %w", name, err)
			}
			path := res.Path(ns, n)
			var cur struct {
				Metadata struct {
					Labels map[string]string `json:"labels"`
				} `json:"metadata"`
			}
			err = api.Get(ctx, path, &cur)
			if kube.IsStatus(err, http.StatusNotFound) {
				continue
			}
			if err != nil {
				return deleted, fmt.Errorf("the disabled add-on %s: reading %s %s: %w", name, kind, objectName(o), err)
			}
			if l := cur.Metadata.Labels; l["app.kubernetes.io/managed-by"] != "cairn" || l[manifests.Label] != "" {
				continue // not the add-on's: a user's, or a manifest's
			}
			err = api.Do(ctx, http.MethodDelete, path+"?propagationPolicy=Background", nil, nil)
			if err != nil && !kube.IsStatus(err, http.StatusNotFound) {
				return deleted, fmt.Errorf("the disabled add-on %s: deleting %s %s: %w", name, kind, objectName(o), err)
			}
			if err == nil {
				deleted[name]++
			}
		}
	}
	return deleted, nil
}

// disabledLine is the console line for what removeDisabledAddons deleted,
// "" when it deleted nothing.
func disabledLine(deleted map[string]int) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(deleted)) {
		n := deleted[name]
		if n == 0 {
			continue
		}
		what := "objects"
		if n == 1 {
			what = "object"
		}
		parts = append(parts, fmt.Sprintf("%s (%d %s)", name, n, what))
	}
	if len(parts) == 0 {
		return ""
	}
	return "node: add-ons: deleted what the disabled ones had left in the cluster: " + strings.Join(parts, ", ")
}
