package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/upgrade"
)

// apiClient makes the few requests the init sends to its own apiserver,
// as the cluster admin. The init carries no Kubernetes client library:
// server-side apply of a handful of objects is all it needs.
type apiClient struct {
	base string // "https://127.0.0.1:6443"
	hc   *http.Client
}

func newAPIClient(base string, tlsCfg *tls.Config) *apiClient {
	return &apiClient{base: base, hc: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: nil}}}
}

// object is a Kubernetes object as JSON; apply reads its kind, name and
// namespace from it.
type object map[string]any

func meta(name, namespace string) map[string]any {
	m := map[string]any{"name": name, "labels": map[string]string{"app.kubernetes.io/managed-by": "cairn"}}
	if namespace != "" {
		m["namespace"] = namespace
	}
	return m
}

// resources maps kinds to their API paths.
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

// maxAPIReply bounds what the init reads from an apiserver reply.
const maxAPIReply = 4 << 20

// readReply reads a reply body, refusing one larger than maxAPIReply.
func readReply(resp *http.Response) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIReply+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxAPIReply {
		return nil, fmt.Errorf("the apiserver answered more than %d bytes", maxAPIReply)
	}
	return body, nil
}

// apply creates or updates obj with server-side apply, owned by "cairn".
func (c *apiClient) apply(ctx context.Context, obj object) error {
	kind, _ := obj["kind"].(string)
	m, _ := obj["metadata"].(map[string]any)
	name, _ := m["name"].(string)
	ns, _ := m["namespace"].(string)
	r, ok := resources[kind]
	if !ok || name == "" {
		return fmt.Errorf("applying a %s named %q: not a kind the init knows", kind, name)
	}
	path := "/" + r.group + "/"
	if ns != "" {
		path += "namespaces/" + ns + "/"
	}
	path += r.plural + "/" + name + "?fieldManager=cairn&force=true"
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/apply-patch+yaml")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("applying %s %s: %w", kind, name, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		var st struct{ Message string }
		json.Unmarshal(msg, &st)
		return fmt.Errorf("applying %s %s: %s: %s", kind, name, resp.Status, st.Message)
	}
	return nil
}

// get reads path and succeeds on 200.
func (c *apiClient) get(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return nil
}

// published are the objects every server keeps in the cluster: what a
// holder of the token needs to verify the CA and get an admin kubeconfig
// (`cairn kubeconfig`), the token itself for admins (`cairn token`), and
// the bindings that let kubelets join by TLS bootstrap.
func published(secret string, caPEM, clientCAPEM, adminKubeconfig []byte) []object {
	id, tokSecret := join.BootstrapToken(secret)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	rbac := "rbac.authorization.k8s.io/v1"
	group := func(names ...string) []map[string]string {
		var out []map[string]string
		for _, n := range names {
			out = append(out, map[string]string{"kind": "Group", "name": n, "apiGroup": "rbac.authorization.k8s.io"})
		}
		return out
	}
	reader := func(name, ns, resource, target string, groups ...string) []object {
		return []object{
			{"apiVersion": rbac, "kind": "Role", "metadata": meta(name, ns),
				"rules": []map[string]any{{"apiGroups": []string{""}, "resources": []string{resource}, "resourceNames": []string{target}, "verbs": []string{"get"}}}},
			{"apiVersion": rbac, "kind": "RoleBinding", "metadata": meta(name, ns),
				"roleRef":  map[string]string{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
				"subjects": group(groups...)},
		}
	}
	clusterBinding := func(name, role string, groups ...string) object {
		return object{"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": meta(name, ""),
			"roleRef":  map[string]string{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
			"subjects": group(groups...)}
	}
	objs := []object{
		{"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(join.CAConfigMap, "kube-public"),
			"data": map[string]string{join.CAKey: string(caPEM), join.ProofKey: join.CAProof(secret, caPEM),
				join.ClientCAKey: string(clientCAPEM), join.ClientCAProofKey: join.CAProof(secret, clientCAPEM)}},
		{"apiVersion": "v1", "kind": "Secret", "metadata": meta("bootstrap-token-"+id, "kube-system"),
			"type": "bootstrap.kubernetes.io/token",
			"data": map[string]string{
				"token-id": b64(id), "token-secret": b64(tokSecret),
				"usage-bootstrap-authentication": b64("true"),
				"auth-extra-groups":              b64(join.AdminGroup),
				"description":                    b64("derived from the cluster token by every cairn server"),
			}},
		{"apiVersion": "v1", "kind": "Secret", "metadata": meta(join.AdminSecret, "kube-system"), "type": "Opaque",
			"data": map[string]string{join.KubeconfigKey: base64.StdEncoding.EncodeToString(adminKubeconfig)}},
		{"apiVersion": "v1", "kind": "Secret", "metadata": meta(join.TokenSecret, "kube-system"), "type": "Opaque",
			"data": map[string]string{join.TokenKey: b64(join.Full(secret, caPEM))}},
		clusterBinding("cairn:kubelet-bootstrap", "system:node-bootstrapper", "system:bootstrappers"),
		clusterBinding("cairn:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", "system:bootstrappers"),
		clusterBinding("cairn:node-autoapprove-renewal", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", "system:nodes"),
		// kube-proxy and flannel run with the kubelet's credentials; the
		// NodeRestriction admission plugin still keeps each node to its
		// own Node object.
		clusterBinding("cairn:node-proxier", "system:node-proxier", "system:nodes"),
		{"apiVersion": rbac, "kind": "ClusterRole", "metadata": meta("cairn:flannel", ""),
			"rules": []map[string]any{
				{"apiGroups": []string{""}, "resources": []string{"nodes"}, "verbs": []string{"get", "list", "watch", "patch"}},
				{"apiGroups": []string{""}, "resources": []string{"nodes/status"}, "verbs": []string{"patch"}},
			}},
		clusterBinding("cairn:flannel", "cairn:flannel", "system:nodes"),
		// Upgrades: every node acts on the Upgrade objects itself, with its
		// kubelet's credentials: it reads them and writes its progress,
		// cordons and drains itself (NodeRestriction lets a node evict
		// only its own pods and patch only its own Node), fetches the
		// bundle from the servers it finds, and judges the cluster's
		// checks (Deployments).
		{"apiVersion": "v1", "kind": "Namespace", "metadata": meta(upgrade.Namespace, "")},
		upgrade.CRD(),
		{"apiVersion": rbac, "kind": "ClusterRole", "metadata": meta("cairn:upgrade-node", ""),
			"rules": []map[string]any{
				{"apiGroups": []string{upgrade.Group}, "resources": []string{upgrade.Plural, upgrade.Plural + "/status"}, "verbs": []string{"get", "list", "watch", "update", "patch"}},
				{"apiGroups": []string{""}, "resources": []string{"pods"}, "verbs": []string{"get", "list"}},
				{"apiGroups": []string{""}, "resources": []string{"pods/eviction"}, "verbs": []string{"create"}},
				{"apiGroups": []string{""}, "resources": []string{"nodes"}, "verbs": []string{"get", "list", "patch"}},
				{"apiGroups": []string{"apps"}, "resources": []string{"deployments"}, "verbs": []string{"get"}},
			}},
		clusterBinding("cairn:upgrade-node", "cairn:upgrade-node", "system:nodes"),
	}
	objs = append(objs, reader("cairn:ca-reader", "kube-public", "configmaps", join.CAConfigMap, "system:unauthenticated", "system:authenticated")...)
	objs = append(objs, reader("cairn:admin-kubeconfig-reader", "kube-system", "secrets", join.AdminSecret, join.AdminGroup)...)
	return objs
}

// publish applies every published object, stopping at the first error.
func (c *apiClient) publish(ctx context.Context, objs []object) error {
	for _, o := range objs {
		if err := c.apply(ctx, o); err != nil {
			return err
		}
	}
	return nil
}
