package manifests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-os/cairn/config/kube"
)

// fakeAPI is an apiserver that keeps objects in memory: discovery,
// server-side apply, get, list by one label, delete, create and update
// with resourceVersion conflicts. It serves the kinds in kinds.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	kinds   map[string][]kube.Resource // by apiVersion
	objects map[string]map[string]any  // by path
	rv      int
	// refuse maps an object's name to the message a 422 says when it is
	// applied.
	refuse map[string]string
	// onApply runs (unlocked) before each apply, with the object's path.
	onApply func(path string)
	// log is every request, "METHOD PATH" (the path unescaped, no query).
	log []string
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, objects: map[string]map[string]any{}, refuse: map[string]string{}, kinds: map[string][]kube.Resource{
		"v1": {
			{APIVersion: "v1", Kind: "ConfigMap", Plural: "configmaps", Namespaced: true},
			{APIVersion: "v1", Kind: "Namespace", Plural: "namespaces"},
			{APIVersion: "v1", Kind: "Node", Plural: "nodes"},
			{APIVersion: "v1", Kind: "Secret", Plural: "secrets", Namespaced: true},
		},
		"apps/v1":                      {{APIVersion: "apps/v1", Kind: "Deployment", Plural: "deployments", Namespaced: true}},
		"rbac.authorization.k8s.io/v1": {{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole", Plural: "clusterroles"}},
		"coordination.k8s.io/v1":       {{APIVersion: "coordination.k8s.io/v1", Kind: "Lease", Plural: "leases", Namespaced: true}},
		"apiextensions.k8s.io/v1":      {{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition", Plural: "customresourcedefinitions"}},
	}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) client() *kube.Client { return kube.New(f.srv.URL, kube.Options{}) }

// requests returns the requests since the last call.
func (f *fakeAPI) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.log
	f.log = nil
	return out
}

// put stores an object as if someone had made it.
func (f *fakeAPI) put(path string, obj map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rv++
	md, _ := obj["metadata"].(map[string]any)
	md["resourceVersion"] = strconv.Itoa(f.rv)
	f.objects[path] = obj
}

// get returns the object at path, nil when there is none.
func (f *fakeAPI) get(path string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.objects[path]
}

// paths lists the stored objects' paths under prefix, sorted.
func (f *fakeAPI) paths(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for p := range f.objects {
		if strings.HasPrefix(p, prefix) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// where is the parsed path of a request: a discovery document, a
// collection (name empty) or an object.
type where struct {
	apiVersion string
	res        kube.Resource
	ns, name   string
	discovery  bool
}

func (f *fakeAPI) parse(p string) (where, bool) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	var w where
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		w.apiVersion, parts = parts[1], parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		w.apiVersion, parts = parts[1]+"/"+parts[2], parts[3:]
	default:
		return w, false
	}
	if len(parts) == 0 {
		w.discovery = true
		return w, true
	}
	if len(parts) >= 3 && parts[0] == "namespaces" && parts[1] != "" {
		w.ns, parts = parts[1], parts[2:]
	}
	for _, r := range f.kinds[w.apiVersion] {
		if r.Plural == parts[0] {
			w.res = r
		}
	}
	if w.res.Plural == "" || len(parts) > 2 || (w.ns != "" && !w.res.Namespaced) {
		return w, false
	}
	if len(parts) == 2 {
		w.name = parts[1]
	}
	return w, true
}

func status(w http.ResponseWriter, code int, msg string) {
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "code": code, "message": msg})
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.log = append(f.log, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	at, ok := f.parse(r.URL.Path)
	if !ok {
		status(w, http.StatusNotFound, "the server could not find the requested resource")
		return
	}
	if at.discovery {
		f.mu.Lock()
		list, served := f.kinds[at.apiVersion]
		var doc struct {
			Resources []map[string]any `json:"resources"`
		}
		for _, res := range list {
			doc.Resources = append(doc.Resources, map[string]any{"name": res.Plural, "kind": res.Kind, "namespaced": res.Namespaced},
				map[string]any{"name": res.Plural + "/status", "kind": res.Kind, "namespaced": res.Namespaced})
		}
		f.mu.Unlock()
		if !served || r.Method != http.MethodGet {
			status(w, http.StatusNotFound, "the server could not find the requested resource")
			return
		}
		json.NewEncoder(w).Encode(doc)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var obj map[string]any
	if len(body) > 0 && json.Unmarshal(body, &obj) != nil {
		status(w, http.StatusBadRequest, "not JSON")
		return
	}
	path := at.res.Path(at.ns, at.name)
	if at.name == "" {
		path = at.res.Collection(at.ns)
	}
	switch {
	case r.Method == http.MethodPatch && at.name != "":
		if r.Header.Get("Content-Type") != kube.ApplyPatch || r.URL.Query().Get("fieldManager") != FieldManager || r.URL.Query().Get("force") != "true" {
			status(w, http.StatusBadRequest, "not a forced server-side apply by "+FieldManager)
			return
		}
		if f.onApply != nil {
			f.onApply(path)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if msg, bad := f.refuse[at.name]; bad {
			status(w, http.StatusUnprocessableEntity, msg)
			return
		}
		md, _ := obj["metadata"].(map[string]any)
		if md["name"] != at.name || (at.ns != "" && md["namespace"] != at.ns) || (at.ns == "" && md["namespace"] != nil) {
			status(w, http.StatusBadRequest, "the object's name or namespace does not match the path")
			return
		}
		f.rv++
		md["resourceVersion"] = strconv.Itoa(f.rv)
		f.objects[path] = obj
		if at.res.Kind == "CustomResourceDefinition" {
			f.serveCRD(obj)
		}
		json.NewEncoder(w).Encode(obj)
	case r.Method == http.MethodGet && at.name != "":
		f.mu.Lock()
		defer f.mu.Unlock()
		o, found := f.objects[path]
		if !found {
			status(w, http.StatusNotFound, fmt.Sprintf("%s %q not found", at.res.Plural, at.name))
			return
		}
		json.NewEncoder(w).Encode(o)
	case r.Method == http.MethodGet:
		key, val, _ := strings.Cut(r.URL.Query().Get("labelSelector"), "=")
		f.mu.Lock()
		defer f.mu.Unlock()
		items := []map[string]any{}
		for p, o := range f.objects {
			md, _ := o["metadata"].(map[string]any)
			labels, _ := md["labels"].(map[string]any)
			ns, _ := md["namespace"].(string)
			name, _ := md["name"].(string)
			if p == at.res.Path(ns, name) && (at.ns == "" || at.ns == ns) && (key == "" || labels[key] == val) {
				items = append(items, o)
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"items": items})
	case r.Method == http.MethodDelete && at.name != "":
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, found := f.objects[path]; !found {
			status(w, http.StatusNotFound, "not found")
			return
		}
		delete(f.objects, path)
		io.WriteString(w, `{"kind":"Status","status":"Success"}`)
	case r.Method == http.MethodPost && at.name == "":
		md, _ := obj["metadata"].(map[string]any)
		path = at.res.Path(at.ns, fmt.Sprint(md["name"]))
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, found := f.objects[path]; found {
			status(w, http.StatusConflict, "already exists")
			return
		}
		f.rv++
		md["resourceVersion"] = strconv.Itoa(f.rv)
		f.objects[path] = obj
		json.NewEncoder(w).Encode(obj)
	case r.Method == http.MethodPut && at.name != "":
		md, _ := obj["metadata"].(map[string]any)
		f.mu.Lock()
		defer f.mu.Unlock()
		old, found := f.objects[path]
		if !found {
			status(w, http.StatusNotFound, "not found")
			return
		}
		if omd, _ := old["metadata"].(map[string]any); omd["resourceVersion"] != md["resourceVersion"] {
			status(w, http.StatusConflict, "the object has been modified")
			return
		}
		f.rv++
		md["resourceVersion"] = strconv.Itoa(f.rv)
		f.objects[path] = obj
		json.NewEncoder(w).Encode(obj)
	default:
		status(w, http.StatusMethodNotAllowed, "not here")
	}
}

// serveCRD serves the kind a CustomResourceDefinition defines (called
// locked).
func (f *fakeAPI) serveCRD(crd map[string]any) {
	spec, _ := crd["spec"].(map[string]any)
	names, _ := spec["names"].(map[string]any)
	versions, _ := spec["versions"].([]any)
	for _, v := range versions {
		vm, _ := v.(map[string]any)
		av := fmt.Sprint(spec["group"]) + "/" + fmt.Sprint(vm["name"])
		f.kinds[av] = append(f.kinds[av], kube.Resource{APIVersion: av, Kind: fmt.Sprint(names["kind"]),
			Plural: fmt.Sprint(names["plural"]), Namespaced: spec["scope"] == "Namespaced"})
	}
}
