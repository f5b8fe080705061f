package node

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/manifests"
)

// addonKinds are the kinds of the add-ons' manifests as an apiserver
// serves them.
var addonKinds = map[string]kube.Resource{
	"ServiceAccount":     {APIVersion: "v1", Plural: "serviceaccounts", Namespaced: true},
	"ConfigMap":          {APIVersion: "v1", Plural: "configmaps", Namespaced: true},
	"Service":            {APIVersion: "v1", Plural: "services", Namespaced: true},
	"Deployment":         {APIVersion: "apps/v1", Plural: "deployments", Namespaced: true},
	"Role":               {APIVersion: "rbac.authorization.k8s.io/v1", Plural: "roles", Namespaced: true},
	"RoleBinding":        {APIVersion: "rbac.authorization.k8s.io/v1", Plural: "rolebindings", Namespaced: true},
	"ClusterRole":        {APIVersion: "rbac.authorization.k8s.io/v1", Plural: "clusterroles"},
	"ClusterRoleBinding": {APIVersion: "rbac.authorization.k8s.io/v1", Plural: "clusterrolebindings"},
	"StorageClass":       {APIVersion: "storage.k8s.io/v1", Plural: "storageclasses"},
	"APIService":         {APIVersion: "apiregistration.k8s.io/v1", Plural: "apiservices"},
}

// fakeObjects is an apiserver holding objects (their labels, by path),
// with discovery for addonKinds.
type fakeObjects struct {
	mu      sync.Mutex
	objects map[string]map[string]string
	deletes []string
}

func (f *fakeObjects) path(t *testing.T, o kube.Object) string {
	kind := o["kind"].(string)
	r, ok := addonKinds[kind]
	if !ok {
		t.Fatalf("the fake serves no %s", kind)
	}
	r.Kind = kind
	m := o["metadata"].(map[string]any)
	ns, _ := m["namespace"].(string)
	p, _ := url.PathUnescape(r.Path(ns, m["name"].(string)))
	return p
}

func (f *fakeObjects) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := r.URL.Path
	var list []map[string]any
	for kind, res := range addonKinds {
		if p == "/api/"+res.APIVersion || p == "/apis/"+res.APIVersion {
			list = append(list, map[string]any{"name": res.Plural, "kind": kind, "namespaced": res.Namespaced})
		}
	}
	if list != nil {
		json.NewEncoder(w).Encode(map[string]any{"resources": list})
		return
	}
	labels, ok := f.objects[p]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "code": 404, "message": "not found"})
		return
	}
	switch r.Method {
	case http.MethodGet:
		json.NewEncoder(w).Encode(map[string]any{"metadata": map[string]any{"labels": labels}})
	case http.MethodDelete:
		delete(f.objects, p)
		f.deletes = append(f.deletes, p)
		json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "status": "Success"})
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// TestRemoveDisabledAddons: metrics-server ran, then the servers' config
// disables it: its objects are deleted, with one line, except those
// cairn did not apply as the add-on (a user's, a manifest's); the next
// boot deletes nothing and says nothing; a running add-on is untouched.
func TestRemoveDisabledAddons(t *testing.T) {
	tmpl, err := addonFS.ReadFile("addons/metrics-server.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ran, err := renderManifest("metrics-server", string(tmpl), addonValues{Image: "cairn.local/metrics-server:v1"})
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeObjects{objects: map[string]map[string]string{}}
	cairns := map[string]string{"app.kubernetes.io/managed-by": "cairn"}
	for _, o := range ran {
		fake.objects[fake.path(t, o)] = cairns
	}
	// A user's own object of one of the names, and one a manifest of
	// kubernetes.manifests applied: neither is the add-on's.
	users := "/api/v1/namespaces/kube-system/configmaps/metrics-server-kubelet-ca"
	claimed := "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:aggregated-metrics-reader"
	fake.objects[users] = map[string]string{"app": "mine"}
	fake.objects[claimed] = map[string]string{"app.kubernetes.io/managed-by": "cairn", manifests.Label: "my-metrics"}
	// A running add-on's object.
	coredns := "/apis/apps/v1/namespaces/kube-system/deployments/coredns"
	fake.objects[coredns] = cairns
	srv := httptest.NewServer(fake)
	defer srv.Close()
	api := kube.New(srv.URL, kube.Options{})
	ctx := context.Background()

	// Not disabled: nothing is touched.
	deleted, err := removeDisabledAddons(ctx, api, &config.Kubernetes{}, ran)
	if err != nil || len(deleted) != 0 || len(fake.deletes) != 0 || disabledLine(deleted) != "" {
		t.Fatalf("with nothing disabled: deleted %v (%v), requests %q", deleted, err, fake.deletes)
	}

	k := &config.Kubernetes{Disable: []string{"metrics-server"}}
	deleted, err = removeDisabledAddons(ctx, api, k, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := len(ran) - 2
	if line := disabledLine(deleted); line != "node: add-ons: deleted what the disabled ones had left in the cluster: metrics-server ("+strconv.Itoa(want)+" objects)" {
		t.Errorf("line %q", line)
	}
	for _, p := range []string{users, claimed, coredns} {
		if _, ok := fake.objects[p]; !ok {
			t.Errorf("%s was deleted; it is not the add-on's", p)
		}
	}
	if len(fake.objects) != 3 {
		t.Errorf("left in the cluster: %v", fake.objects)
	}
	for _, p := range []string{"/apis/apps/v1/namespaces/kube-system/deployments/metrics-server", "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io"} {
		if !strings.Contains(strings.Join(fake.deletes, "\n"), p) {
			t.Errorf("%s was not deleted: %q", p, fake.deletes)
		}
	}

	// The next boot: nothing left, nothing said.
	n := len(fake.deletes)
	deleted, err = removeDisabledAddons(ctx, api, k, nil)
	if err != nil || disabledLine(deleted) != "" || len(fake.deletes) != n {
		t.Errorf("again: deleted %v (%v), line %q", deleted, err, disabledLine(deleted))
	}
}

// TestDisabledAddonObjects: every packaged add-on's manifest renders with
// empty values, and an object a running add-on names too is never one to
// delete.
func TestDisabledAddonObjects(t *testing.T) {
	k := &config.Kubernetes{Disable: []string{"coredns", "local-storage", "metrics-server"}}
	all, err := disabledAddonObjects(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addonList {
		if len(all[a.name]) == 0 {
			t.Errorf("%s: no objects", a.name)
		}
	}
	shared := all["metrics-server"][0]
	some, err := disabledAddonObjects(k, []kube.Object{shared})
	if err != nil {
		t.Fatal(err)
	}
	if len(some["metrics-server"]) != len(all["metrics-server"])-1 {
		t.Errorf("an object a running add-on names is among those to delete: %s", objectKey(shared))
	}
}
