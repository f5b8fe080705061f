package manifests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config"
)

const (
	webYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec: {replicas: 1}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data: {a: "1"}
`
	deployWeb = "/apis/apps/v1/namespaces/default/deployments/web"
	cmWeb     = "/api/v1/namespaces/default/configmaps/web-config"
	leaseAt   = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/cairn-manifests"
)

// testApplier is an applier against f and the console lines it prints.
type testApplier struct {
	*applier
	mu    sync.Mutex
	lines []string
}

func newTest(f *fakeAPI, node, dir string, inline []config.Manifest, disable ...string) *testApplier {
	ta := &testApplier{}
	ta.applier = newApplier(Options{API: f.client(), Node: node, Dir: dir, Inline: inline, Disable: disable,
		Printf: func(format string, args ...any) {
			ta.mu.Lock()
			defer ta.mu.Unlock()
			ta.lines = append(ta.lines, strings.TrimPrefix(fmt.Sprintf(format, args...), "manifests: "))
		}})
	return ta
}

// said returns the lines printed since the last call.
func (ta *testApplier) said() []string {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	out := ta.lines
	ta.lines = nil
	return out
}

func inline(nameContent ...string) []config.Manifest {
	var out []config.Manifest
	for i := 0; i+1 < len(nameContent); i += 2 {
		out = append(out, config.Manifest{Name: nameContent[i], Content: nameContent[i+1]})
	}
	return out
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantLines(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("console lines:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		return
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("console line %d:\n  %s\nwant it to start with:\n  %s", i, got[i], want[i])
		}
	}
}

// holder reads the Lease's holder ("" when free or absent).
func (f *fakeAPI) holder() string {
	l := f.get(leaseAt)
	if l == nil {
		return ""
	}
	spec, _ := l["spec"].(map[string]any)
	h, _ := spec["holderIdentity"].(string)
	return h
}

// rec reads the record's entries.
func (f *fakeAPI) rec(t *testing.T) record {
	t.Helper()
	r, err := readRecord(context.Background(), f.client())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func labelOf(obj map[string]any, key string) any {
	md, _ := obj["metadata"].(map[string]any)
	l, _ := md["labels"].(map[string]any)
	return l[key]
}

// TestApplyAtStart: at start a server applies every manifest, inline and
// files, each object labelled with its manifest; namespaced objects
// without a namespace go to default, cluster-scoped ones lose theirs;
// files with other endings are not manifests; the Lease is given back;
// a round with nothing changed asks the apiserver nothing.
func TestApplyAtStart(t *testing.T) {
	f := newFakeAPI(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "db.yaml"), `apiVersion: v1
kind: Namespace
metadata: {name: data}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: db, namespace: data}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "db:reader", namespace: data}
rules: []
`)
	writeFile(t, filepath.Join(dir, "notes.txt"), "not a manifest")
	writeFile(t, filepath.Join(dir, "My_App.yaml"), "kind: X")
	a := newTest(f, "s1", dir, inline("web", webYAML))
	a.round(context.Background())
	wantLines(t, a.said(),
		dir+`/My_App.yaml is skipped: its name "My_App" is not a manifest name`,
		"applied "+dir+"/db.yaml: 3 objects",
		"applied manifests[web]: 2 objects")

	d := f.get(deployWeb)
	if d == nil || labelOf(d, Label) != "web" || labelOf(d, "app") != "web" {
		t.Fatalf("the Deployment: %v", d)
	}
	if md := d["metadata"].(map[string]any); md["annotations"].(map[string]any)[SourceAnnotation] != "manifests[web]" {
		t.Errorf("the Deployment's annotations: %v", md["annotations"])
	}
	for _, p := range []string{cmWeb, "/api/v1/namespaces/data", "/api/v1/namespaces/data/configmaps/db", "/apis/rbac.authorization.k8s.io/v1/clusterroles/db:reader"} {
		if o := f.get(p); o == nil {
			t.Errorf("%s was not applied", p)
		}
	}
	rec := f.rec(t)
	want := record{
		"web": {Source: "manifests[web]", Kinds: []string{"apps/v1 Deployment", "v1 ConfigMap"}, Servers: []string{"s1"}},
		"db":  {Source: dir + "/db.yaml", Kinds: []string{"rbac.authorization.k8s.io/v1 ClusterRole", "v1 ConfigMap", "v1 Namespace"}, Servers: []string{"s1"}},
	}
	if !reflect.DeepEqual(rec, want) {
		t.Errorf("record %+v\nwant %+v", rec, want)
	}
	if h := f.holder(); h != "" {
		t.Errorf("the Lease is held by %q after the round", h)
	}
	f.requests()
	a.round(context.Background())
	if got := f.requests(); len(got) != 0 {
		t.Errorf("a round with nothing changed asked %q", got)
	}
	if got := a.said(); len(got) != 0 {
		t.Errorf("a round with nothing changed said %q", got)
	}
}

// TestUnused: a server with no manifests, in a cluster that never had
// any, reads the record once and does nothing else: no Lease, no line;
// the same where the record names only manifests other servers hold.
func TestUnused(t *testing.T) {
	f := newFakeAPI(t)
	for _, dir := range []string{filepath.Join(t.TempDir(), "missing"), t.TempDir()} {
		a := newTest(f, "s1", dir, nil, "traefik")
		a.round(context.Background())
		a.round(context.Background())
		if got := f.requests(); !slices.Equal(got, []string{"GET " + recordPath}) {
			t.Errorf("%s: requests %q, want the record read once", dir, got)
		}
		if got := a.said(); len(got) != 0 {
			t.Errorf("%s: said %q", dir, got)
		}
	}
	newTest(f, "s2", t.TempDir(), inline("web", webYAML)).round(context.Background())
	f.put("/api/v1/nodes/s2", map[string]any{"metadata": map[string]any{"name": "s2"}})
	f.requests()
	a := newTest(f, "s1", t.TempDir(), nil)
	a.round(context.Background())
	if got := f.requests(); !slices.Equal(got, []string{"GET " + recordPath, "GET /api/v1/nodes/s2"}) {
		t.Errorf("requests %q, want the record and s2's Node", got)
	}
	if f.get(deployWeb) == nil {
		t.Error("a server without manifests deleted the one another server holds")
	}
}

// TestChange: a changed file is applied again, and the object it no
// longer holds is deleted.
func TestChange(t *testing.T) {
	f := newFakeAPI(t)
	dir := t.TempDir()
	app := filepath.Join(dir, "app.yml")
	writeFile(t, app, "{apiVersion: v1, kind: ConfigMap, metadata: {name: a}, data: {v: one}}\n---\n{apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n")
	a := newTest(f, "s1", dir, nil)
	a.round(context.Background())
	wantLines(t, a.said(), "applied "+app+": 2 objects")

	writeFile(t, app, "{apiVersion: v1, kind: ConfigMap, metadata: {name: a}, data: {v: two}}\n")
	a.round(context.Background())
	wantLines(t, a.said(), "applied "+app+": 1 object; deleted 1 it no longer holds: ConfigMap default/b")
	if cm := f.get("/api/v1/namespaces/default/configmaps/a"); cm == nil || cm["data"].(map[string]any)["v"] != "two" {
		t.Errorf("ConfigMap a: %v", cm)
	}
	if f.get("/api/v1/namespaces/default/configmaps/b") != nil {
		t.Error("ConfigMap b, no longer in the file, is still there")
	}
	// An object of another manifest, or of none, with the same kind is
	// left alone.
	f.put("/api/v1/namespaces/default/configmaps/mine", map[string]any{"metadata": map[string]any{"name": "mine", "namespace": "default"}})
	writeFile(t, app, "{apiVersion: v1, kind: ConfigMap, metadata: {name: a}, data: {v: three}}\n")
	a.round(context.Background())
	if f.get("/api/v1/namespaces/default/configmaps/mine") == nil {
		t.Error("a ConfigMap no manifest applied was deleted")
	}
}

// TestRemove: a manifest gone from a server's config is deleted when no
// other server holds it: one still a node of the cluster keeps it; one
// that is not counts for nothing. A directory that cannot be listed
// removes nothing.
func TestRemove(t *testing.T) {
	f := newFakeAPI(t)
	ctx := context.Background()
	db := "{apiVersion: v1, kind: ConfigMap, metadata: {name: db}}"
	newTest(f, "s1", t.TempDir(), inline("web", webYAML, "db", db)).round(ctx)
	newTest(f, "s2", t.TempDir(), inline("web", webYAML, "db", db)).round(ctx)
	f.put("/api/v1/nodes/s2", map[string]any{"metadata": map[string]any{"name": "s2"}})

	// s1 restarts without db: s2 still holds it.
	a := newTest(f, "s1", t.TempDir(), inline("web", webYAML))
	a.round(ctx)
	wantLines(t, a.said(), "applied manifests[web]: 2 objects")
	if f.get("/api/v1/namespaces/default/configmaps/db") == nil {
		t.Fatal("db was deleted while s2 holds it")
	}
	if got := f.rec(t)["db"].Servers; !slices.Equal(got, []string{"s2"}) {
		t.Errorf("db's servers %q, want s2 alone", got)
	}

	// s2 restarts without db, its directory unreadable: nothing goes.
	notDir := filepath.Join(t.TempDir(), "file")
	writeFile(t, notDir, "")
	b := newTest(f, "s2", notDir, inline("web", webYAML))
	b.round(ctx)
	if f.get("/api/v1/namespaces/default/configmaps/db") == nil {
		t.Fatal("db was deleted while the directory could not be listed")
	}
	wantLines(t, b.said(), "cannot list "+notDir, "applied manifests[web]: 2 objects")

	// s2 restarts without db: the last server lets it go.
	b = newTest(f, "s2", t.TempDir(), inline("web", webYAML))
	b.round(ctx)
	wantLines(t, b.said(), "applied manifests[web]: 2 objects", "manifests[db] is gone from every server: deleted its 1 object: ConfigMap default/db")
	if f.get("/api/v1/namespaces/default/configmaps/db") != nil {
		t.Error("db is still there")
	}
	if _, ok := f.rec(t)["db"]; ok {
		t.Error("the record still names db")
	}

	// web is removed from s1; s2 is no node any more (its Node was
	// deleted), so s1 deletes it, though the record names s2.
	f.put("/api/v1/nodes/s1", map[string]any{"metadata": map[string]any{"name": "s1"}})
	f.requests()
	a = newTest(f, "s1", t.TempDir(), nil)
	f.mu.Lock()
	delete(f.objects, "/api/v1/nodes/s2")
	f.mu.Unlock()
	a.round(ctx)
	wantLines(t, a.said(), "manifests[web] is gone from every server: deleted its 2 objects: ")
	if f.get(deployWeb) != nil || f.get(cmWeb) != nil {
		t.Error("web's objects are still there")
	}
	if rec := f.rec(t); len(rec) != 0 {
		t.Errorf("the record is %v, want empty", rec)
	}
	// Then it is unused again: no Lease, nothing asked.
	f.requests()
	a.round(ctx)
	if got := f.requests(); len(got) != 0 {
		t.Errorf("after the last removal a round asked %q", got)
	}
}

// TestBroken: a manifest that does not parse, or whose object the
// apiserver refuses, is one line each, once per change; the other
// manifests and the manifest's other objects are applied; fixed, it is
// applied.
func TestBroken(t *testing.T) {
	f := newFakeAPI(t)
	f.refuse["oops"] = `Deployment.apps "oops" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0`
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [x}\n")
	writeFile(t, filepath.Join(dir, "good.yaml"), "{apiVersion: v1, kind: ConfigMap, metadata: {name: good}}\n")
	a := newTest(f, "s1", dir, inline(
		"api", "{apiVersion: apps/v1, kind: Deployment, metadata: {name: oops}, spec: {replicas: -1}}\n---\n{apiVersion: v1, kind: ConfigMap, metadata: {name: api}}\n",
		"gadgets", "{apiVersion: example.com/v1, kind: Gadget, metadata: {name: g}}\n"))
	for i := 0; i < 3; i++ {
		a.round(context.Background())
	}
	wantLines(t, a.said(),
		bad+":3: not valid YAML: did not find expected ',' or ']'; nothing of it is applied and its objects stay as they are: fix it",
		"manifests[api]: Deployment default/oops: "+f.refuse["oops"]+"; the rest of it is applied, and it is tried again every 30s",
		"manifests[gadgets]: Gadget g: no kind Gadget in example.com/v1: the apiserver serves no such kind (is its CustomResourceDefinition applied?)",
		"applied "+dir+"/good.yaml: 1 object")
	for _, p := range []string{"/api/v1/namespaces/default/configmaps/api", "/api/v1/namespaces/default/configmaps/good"} {
		if f.get(p) == nil {
			t.Errorf("%s was not applied beside the broken ones", p)
		}
	}

	// A manifest that does not parse is not tried again until it
	// changes: no Lease is taken for it.
	g := newFakeAPI(t)
	b := newTest(g, "s2", t.TempDir(), inline("only", "kind: [\n"))
	b.round(context.Background())
	b.round(context.Background())
	if got := g.requests(); !slices.Equal(got, []string{"GET " + recordPath}) {
		t.Errorf("a server whose one manifest does not parse asked %q", got)
	}
	wantLines(t, b.said(), "manifests[only]:2: not valid YAML")

	delete(f.refuse, "oops")
	writeFile(t, bad, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fixed}\n")
	a.round(context.Background())
	wantLines(t, a.said(), "applied manifests[api]: 2 objects", "applied "+bad+": 1 object")
}

// TestLease: one server applies at a time: a second one with work skips
// while the first holds the Lease, and applies at its next round once it
// is free; a Lease left by a server that stopped renewing is taken once
// it is stale, and a fresh one is not.
func TestLease(t *testing.T) {
	f := newFakeAPI(t)
	ctx := context.Background()
	dir := t.TempDir()
	s1 := newTest(f, "s1", dir, inline("web", webYAML))
	s2 := newTest(f, "s2", dir, inline("web", webYAML))
	var during []string
	f.onApply = func(string) {
		if during != nil {
			return
		}
		f.requests()
		s2.round(ctx)
		during = f.requests()
	}
	s1.round(ctx)
	f.onApply = nil
	if !slices.Equal(during, []string{"GET " + leaseAt}) {
		t.Errorf("while s1 applied, s2 asked %q; want only the Lease read", during)
	}
	if got := s2.said(); len(got) != 0 {
		t.Errorf("s2 said %q while s1 held the Lease", got)
	}
	wantLines(t, s1.said(), "applied manifests[web]: 2 objects")
	s2.round(ctx)
	wantLines(t, s2.said(), "applied manifests[web]: 2 objects")
	if got := f.rec(t)["web"].Servers; !slices.Equal(got, []string{"s1", "s2"}) {
		t.Errorf("web's servers %q", got)
	}

	for _, tt := range []struct {
		renewed time.Duration // ago
		takes   bool
	}{{2 * time.Minute, true}, {10 * time.Second, false}} {
		secs := int32(60)
		f.put(leaseAt, map[string]any{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
			"metadata": map[string]any{"name": LeaseName, "namespace": Namespace},
			"spec": map[string]any{"holderIdentity": "gone", "leaseDurationSeconds": secs, "leaseTransitions": 4,
				"renewTime": time.Now().Add(-tt.renewed).UTC().Format(microTime)}})
		s3 := newTest(f, "s3", dir, inline("web", webYAML))
		s3.round(ctx)
		if got := len(s3.said()) == 1; got != tt.takes {
			t.Errorf("a Lease renewed %s ago: s3 applied %v, want %v", tt.renewed, got, tt.takes)
		}
		if tt.takes {
			spec := f.get(leaseAt)["spec"].(map[string]any)
			if spec["leaseTransitions"] != 5.0 || spec["holderIdentity"] != "" {
				t.Errorf("the Lease after s3 took and gave it back: %v", spec)
			}
		} else if f.holder() != "gone" {
			t.Errorf("s3 changed a fresh Lease: %v", f.get(leaseAt))
		}
	}
}

// TestDisable: disable names a manifest (inline, or a file by its name
// without the ending) not to apply; applied earlier, its objects are
// deleted.
func TestDisable(t *testing.T) {
	f := newFakeAPI(t)
	ctx := context.Background()
	dir := t.TempDir()
	app := filepath.Join(dir, "app.json")
	writeFile(t, app, `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"}}`)
	newTest(f, "s1", dir, inline("web", webYAML)).round(ctx)
	if f.get(deployWeb) == nil || f.get("/api/v1/namespaces/default/configmaps/app") == nil {
		t.Fatal("not applied")
	}
	a := newTest(f, "s1", dir, inline("web", webYAML), "traefik", "web", "app")
	a.round(ctx)
	wantLines(t, a.said(),
		"manifests[web] is not applied: kubernetes.disable names it",
		app+" is not applied: kubernetes.disable names app",
		app+" is disabled: deleted its 1 object: ConfigMap default/app",
		"manifests[web] is disabled: deleted its 2 objects: Deployment default/web, ConfigMap default/web-config")
	if f.get(deployWeb) != nil || f.get("/api/v1/namespaces/default/configmaps/app") != nil {
		t.Error("a disabled manifest's objects are still there")
	}
	// Disabled from the start in a new cluster: nothing is applied.
	g := newFakeAPI(t)
	b := newTest(g, "s1", dir, inline("web", webYAML), "web", "app")
	b.round(ctx)
	if got := g.requests(); !slices.Equal(got, []string{"GET " + recordPath}) {
		t.Errorf("requests %q, want the record read once", got)
	}
}

// TestCRD: a CustomResourceDefinition and objects of its kind in one
// manifest are applied in one round.
func TestCRD(t *testing.T) {
	f := newFakeAPI(t)
	a := newTest(f, "s1", t.TempDir(), inline("gadgets", `apiVersion: example.com/v1
kind: Gadget
metadata: {name: g1, namespace: tools}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Gadget, plural: gadgets}
  versions: [{name: v1, served: true, storage: true}]
`))
	a.round(context.Background())
	wantLines(t, a.said(), "applied manifests[gadgets]: 2 objects")
	if f.get("/apis/example.com/v1/namespaces/tools/gadgets/g1") == nil {
		t.Error("the Gadget was not applied")
	}
}
