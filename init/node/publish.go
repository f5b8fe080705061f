package node

import (
	"context"
	"encoding/base64"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
)

// fieldManager owns the fields the init applies.
const fieldManager = "cairn"

func meta(name, namespace string) map[string]any {
	m := map[string]any{"name": name, "labels": map[string]string{"app.kubernetes.io/managed-by": "cairn"}}
	if namespace != "" {
		m["namespace"] = namespace
	}
	return m
}

// published are the objects every server keeps in the cluster: what a
// holder of the token needs to verify the CA and get an admin kubeconfig
// (`cairn kubeconfig`), the token itself for admins (`cairn token`), and
// the bindings that let kubelets join by TLS bootstrap.
func published(secret string, caPEM, clientCAPEM, adminKubeconfig []byte) []kube.Object {
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
	reader := func(name, ns, resource, target string, groups ...string) []kube.Object {
		return []kube.Object{
			{"apiVersion": rbac, "kind": "Role", "metadata": meta(name, ns),
				"rules": []map[string]any{{"apiGroups": []string{""}, "resources": []string{resource}, "resourceNames": []string{target}, "verbs": []string{"get"}}}},
			{"apiVersion": rbac, "kind": "RoleBinding", "metadata": meta(name, ns),
				"roleRef":  map[string]string{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
				"subjects": group(groups...)},
		}
	}
	clusterBinding := func(name, role string, groups ...string) kube.Object {
		return kube.Object{"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": meta(name, ""),
			"roleRef":  map[string]string{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
			"subjects": group(groups...)}
	}
	objs := []kube.Object{
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
				// A node reads the Upgrades and writes only their status: one
				// node's credentials must not rewrite a spec (the images and
				// the order every node follows).
				{"apiGroups": []string{upgrade.Group}, "resources": []string{upgrade.Plural}, "verbs": []string{"get", "list", "watch"}},
				{"apiGroups": []string{upgrade.Group}, "resources": []string{upgrade.Plural + "/status"}, "verbs": []string{"get", "update", "patch"}},
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

// publish applies every object with server-side apply, owned by
// "cairn", stopping at the first error.
func publish(ctx context.Context, api *kube.Client, objs []kube.Object) error {
	for _, o := range objs {
		if err := api.Apply(ctx, o, fieldManager); err != nil {
			return err
		}
	}
	return nil
}
