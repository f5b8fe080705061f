package node

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"

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

// agentJoinSecret is the secret agents (and this server's own kubelet)
// join with: the agent token's, else the server token's.
func (s *server) agentJoinSecret() string {
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	if s.agentSecret != "" {
		return s.agentSecret
	}
	return s.tok.Secret
}

// published are the objects every server keeps in the cluster: what a
// holder of a token needs to verify the CAs (their proofs, under kdf, for
// the server token and the agent token, agent is "" when the cluster has
// none), the two bootstrap tokens (the agents', which can only ask for a
// kubelet's certificate, and the servers', whose requests for an admin
// certificate the servers approve), the binding that makes such a
// certificate an admin's, and the bindings that let kubelets join by TLS
// bootstrap.
func published(secret, agent string, kdf join.KDF, caPEM, clientCAPEM []byte) []kube.Object {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	bootstrap := func(id, tokSecret, groups, what string) kube.Object {
		data := map[string]string{
			"token-id": b64(id), "token-secret": b64(tokSecret),
			"usage-bootstrap-authentication": b64("true"),
			"description":                    b64(what),
		}
		if groups != "" {
			data["auth-extra-groups"] = b64(groups)
		}
		return kube.Object{"apiVersion": "v1", "kind": "Secret", "metadata": meta(bootstrapPrefix+id, "kube-system"),
			"type": bootstrapType, "data": data}
	}
	cm := map[string]string{join.CAKey: string(caPEM), join.ClientCAKey: string(clientCAPEM), join.KDFKey: kdf.String(),
		join.ServerProofKey: join.Proof(kdf.Key(secret), caPEM, clientCAPEM)}
	agentSecret := secret
	if agent != "" {
		cm[join.AgentProofKey] = join.Proof(kdf.Key(agent), caPEM, clientCAPEM)
		agentSecret = agent
	}
	serverID, serverTok := join.ServerBootstrapToken(secret)
	agentID, agentTok := join.AgentBootstrapToken(agentSecret)
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
		{"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(join.CAConfigMap, "kube-public"), "data": cm},
		bootstrap(agentID, agentTok, "", "the agents' bootstrap token, derived from the agent token by every cairn server: a kubelet's first credential"),
		bootstrap(serverID, serverTok, join.ServersGroup, "the servers' bootstrap token, derived from the server token by every cairn server: `cairn kubeconfig` asks for an admin certificate with it"),
		// An admin certificate is one of the group AdminsGroup; deleting
		// this binding takes every such certificate's rights away (until
		// a server boots and applies it again).
		clusterBinding(join.AdminsGroup, "cluster-admin", join.AdminsGroup),
		// A bootstrap token may ask for a kubelet's client certificate;
		// the servers approve it when the node name is the asker's
		// (nodenames.go), not kube-controller-manager. Renewals are its.
		clusterBinding("cairn:kubelet-bootstrap", "system:node-bootstrapper", "system:bootstrappers"),
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
	return objs
}

// Bootstrap token Secrets: their name's prefix and their type.
const (
	bootstrapPrefix = "bootstrap-token-"
	bootstrapType   = "bootstrap.kubernetes.io/token"
)

// leftovers are what older cairns kept in the cluster and this one does
// not: an admin kubeconfig (a system:masters key valid for a year), the
// token itself, the Role that let the old bootstrap token read the
// first, and the binding that had kube-controller-manager approve a
// kubelet certificate for any node name to any bootstrap token.
var leftovers = []struct{ what, path string }{
	{"Secret kube-system/cairn-admin-kubeconfig", "/api/v1/namespaces/kube-system/secrets/cairn-admin-kubeconfig"},
	{"Secret kube-system/cairn-token", "/api/v1/namespaces/kube-system/secrets/cairn-token"},
	{"RoleBinding kube-system/cairn:admin-kubeconfig-reader", "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings/cairn:admin-kubeconfig-reader"},
	{"Role kube-system/cairn:admin-kubeconfig-reader", "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/roles/cairn:admin-kubeconfig-reader"},
	{"ClusterRoleBinding cairn:node-autoapprove-bootstrap", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/cairn:node-autoapprove-bootstrap"},
}

// removeStale deletes the leftovers of older cairns and every bootstrap
// token cairn made that is not one of keep (the older cairns' admin one; an
// agent token no longer configured), and says what it removed.
func removeStale(ctx context.Context, api *kube.Client, keep []kube.Object) ([]string, error) {
	var removed []string
	del := func(what, path string) error {
		err := api.Do(ctx, http.MethodDelete, path, nil, nil)
		switch {
		case err == nil:
			removed = append(removed, what)
		case !kube.IsStatus(err, http.StatusNotFound):
			return fmt.Errorf("deleting %s: %w", what, err)
		}
		return nil
	}
	for _, l := range leftovers {
		if err := del(l.what, l.path); err != nil {
			return removed, err
		}
	}
	current := map[string]bool{}
	for _, o := range keep {
		if o["type"] == bootstrapType {
			current[o["metadata"].(map[string]any)["name"].(string)] = true
		}
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		} `json:"items"`
	}
	const secrets = "/api/v1/namespaces/kube-system/secrets"
	q := "?labelSelector=" + url.QueryEscape("app.kubernetes.io/managed-by=cairn") + "&fieldSelector=" + url.QueryEscape("type="+bootstrapType)
	if err := api.Get(ctx, secrets+q, &list); err != nil {
		return removed, fmt.Errorf("listing the bootstrap tokens: %w", err)
	}
	for _, it := range list.Items {
		n := it.Metadata.Name
		if strings.HasPrefix(n, bootstrapPrefix) && !current[n] {
			if err := del("bootstrap token "+strings.TrimPrefix(n, bootstrapPrefix), secrets+"/"+n); err != nil {
				return removed, err
			}
		}
	}
	return removed, nil
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

// publishJoin publishes the join objects, then removes what is stale,
// saying so in one line.
func (s *server) publishJoin(ctx context.Context, api *kube.Client, objs []kube.Object) error {
	if err := publish(ctx, api, objs); err != nil {
		return err
	}
	removed, err := removeStale(ctx, api, objs)
	if len(removed) > 0 {
		s.o.Printf("node: removed from the cluster what this cairn no longer keeps there: %s", strings.Join(removed, ", "))
	}
	return err
}
