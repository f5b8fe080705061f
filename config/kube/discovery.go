package kube

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// Resource is a kind as the apiserver serves it: where its objects are,
// and whether they live in namespaces.
type Resource struct {
	APIVersion string // "apps/v1", "v1"
	Kind       string // "Deployment"
	Plural     string // "deployments"
	Namespaced bool
}

// Collection is the path of the resource's objects in namespace ns, or
// in all namespaces when ns is "" (a cluster-scoped kind ignores ns).
func (r Resource) Collection(ns string) string {
	p := versionPath(r.APIVersion)
	if ns != "" && r.Namespaced {
		p += "/namespaces/" + url.PathEscape(ns)
	}
	return p + "/" + r.Plural
}

// versionPath is where the API serves apiVersion: /api/v1 for the core
// group, /apis/GROUP/VERSION for the others.
func versionPath(apiVersion string) string {
	if strings.Contains(apiVersion, "/") {
		return "/apis/" + apiVersion
	}
	return "/api/" + apiVersion
}

// Path is the path of the object named name in namespace ns.
func (r Resource) Path(ns, name string) string {
	return r.Collection(ns) + "/" + url.PathEscape(name)
}

// ErrNoKind is wrapped by Discovery.Find's error for a kind the
// apiserver does not serve.
var ErrNoKind = errors.New("the apiserver serves no such kind")

// apiVersionRe is "v1" or GROUP/VERSION, nothing that could leave the
// API's paths.
var apiVersionRe = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z0-9]+$`)

// Discovery finds kinds in the apiserver's discovery documents (GET
// /api/v1, /apis/GROUP/VERSION), reading each once: one Discovery is for
// one pass over a set of objects, since kinds come and go with CRDs.
type Discovery struct {
	c     *Client
	lists map[string][]Resource // by apiVersion; an empty list when it is not served
}

// NewDiscovery finds kinds through c.
func NewDiscovery(c *Client) *Discovery {
	return &Discovery{c: c, lists: map[string][]Resource{}}
}

// Find is kind's resource in apiVersion; an error wrapping ErrNoKind
// when the apiserver does not serve it.
func (d *Discovery) Find(ctx context.Context, apiVersion, kind string) (Resource, error) {
	list, ok := d.lists[apiVersion]
	if !ok {
		var err error
		if list, err = d.read(ctx, apiVersion); err != nil {
			return Resource{}, err
		}
		d.lists[apiVersion] = list
	}
	for _, r := range list {
		if r.Kind == kind {
			return r, nil
		}
	}
	return Resource{}, fmt.Errorf("no kind %s in %s: %w", kind, apiVersion, ErrNoKind)
}

// Forget drops what was read of apiVersion, so that Find reads it again
// (a CustomResourceDefinition was applied meanwhile).
func (d *Discovery) Forget(apiVersion string) { delete(d.lists, apiVersion) }

// read asks the apiserver for apiVersion's resources, leaving out
// subresources (pods/status).
func (d *Discovery) read(ctx context.Context, apiVersion string) ([]Resource, error) {
	if !apiVersionRe.MatchString(apiVersion) {
		return nil, fmt.Errorf("apiVersion %q is not GROUP/VERSION or v1: %w", apiVersion, ErrNoKind)
	}
	var doc struct {
		Resources []struct {
			Name       string `json:"name"`
			Kind       string `json:"kind"`
			Namespaced bool   `json:"namespaced"`
		} `json:"resources"`
	}
	err := d.c.Get(ctx, versionPath(apiVersion), &doc)
	if IsStatus(err, http.StatusNotFound) {
		return []Resource{}, nil
	}
	if err != nil {
		return nil, err
	}
	list := []Resource{}
	for _, r := range doc.Resources {
		if r.Name != "" && !strings.Contains(r.Name, "/") {
			list = append(list, Resource{APIVersion: apiVersion, Kind: r.Kind, Plural: r.Name, Namespaced: r.Namespaced})
		}
	}
	return list, nil
}

// ApplyAt creates or updates obj, an object of r, with server-side
// apply, owned by manager, taking over fields others own; obj's
// namespace is used when r is namespaced.
func (c *Client) ApplyAt(ctx context.Context, r Resource, obj Object, manager string) error {
	m, _ := obj["metadata"].(map[string]any)
	name, _ := m["name"].(string)
	ns, _ := m["namespace"].(string)
	if name == "" {
		return fmt.Errorf("applying a %s without a name", r.Kind)
	}
	path := r.Path(ns, name) + "?fieldManager=" + url.QueryEscape(manager) + "&force=true"
	return c.Send(ctx, http.MethodPatch, path, ApplyPatch, obj, nil)
}
