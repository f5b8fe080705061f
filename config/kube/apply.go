package kube

import (
	"context"
	"fmt"
	"net/http"
)

// Object is a Kubernetes object as JSON; Apply reads its kind, name and
// namespace from it.
type Object map[string]any

// resources maps the kinds cairn applies to their API paths.
var resources = map[string]struct{ group, plural string }{
	"ConfigMap":                {"api/v1", "configmaps"},
	"Secret":                   {"api/v1", "secrets"},
	"Role":                     {"apis/rbac.authorization.k8s.io/v1", "roles"},
	"RoleBinding":              {"apis/rbac.authorization.k8s.io/v1", "rolebindings"},
	"ClusterRole":              {"apis/rbac.authorization.k8s.io/v1", "clusterroles"},
	"ClusterRoleBinding":       {"apis/rbac.authorization.k8s.io/v1", "clusterrolebindings"},
	"Namespace":                {"api/v1", "namespaces"},
	"ServiceAccount":           {"api/v1", "serviceaccounts"},
	"Service":                  {"api/v1", "services"},
	"Deployment":               {"apis/apps/v1", "deployments"},
	"DaemonSet":                {"apis/apps/v1", "daemonsets"},
	"StorageClass":             {"apis/storage.k8s.io/v1", "storageclasses"},
	"APIService":               {"apis/apiregistration.k8s.io/v1", "apiservices"},
	"CustomResourceDefinition": {"apis/apiextensions.k8s.io/v1", "customresourcedefinitions"},
}

// Apply creates or updates obj with server-side apply, owned by manager,
// taking over fields others own.
func (c *Client) Apply(ctx context.Context, obj Object, manager string) error {
	kind, _ := obj["kind"].(string)
	m, _ := obj["metadata"].(map[string]any)
	name, _ := m["name"].(string)
	ns, _ := m["namespace"].(string)
	r, ok := resources[kind]
	if !ok || name == "" {
		return fmt.Errorf("applying a %s named %q: not a kind cairn knows", kind, name)
	}
	path := "/" + r.group + "/"
	if ns != "" {
		path += "namespaces/" + ns + "/"
	}
	path += r.plural + "/" + name + "?fieldManager=" + manager + "&force=true"
	if err := c.Send(ctx, http.MethodPatch, path, ApplyPatch, obj, nil); err != nil {
		return fmt.Errorf("applying %s %s: %w", kind, name, err)
	}
	return nil
}
