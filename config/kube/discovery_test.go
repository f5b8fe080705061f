package kube

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestDiscovery: kinds are found in the discovery documents, each read
// once until forgotten; a group version the apiserver does not serve is
// ErrNoKind; ApplyAt patches the path Find gave, escaped.
func TestDiscovery(t *testing.T) {
	var reads atomic.Int32
	var applied string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1":
			reads.Add(1)
			io.WriteString(w, `{"resources":[{"name":"configmaps","kind":"ConfigMap","namespaced":true},{"name":"namespaces","kind":"Namespace"},{"name":"namespaces/status","kind":"Namespace"}]}`)
		case "/apis/example.com/v1":
			reads.Add(1)
			io.WriteString(w, `{"resources":[{"name":"widgets","kind":"Widget"}]}`)
		case "/api/v1/namespaces/a b/configmaps/x:y", "/apis/example.com/v1/widgets/w":
			if r.Method != http.MethodPatch || r.Header.Get("Content-Type") != ApplyPatch || r.URL.Query().Get("fieldManager") != "m&n" || r.URL.Query().Get("force") != "true" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			applied += r.URL.EscapedPath() + " "
			io.WriteString(w, `{}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"kind":"Status","message":"the server could not find the requested resource"}`)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := New(srv.URL, Options{})
	d := NewDiscovery(c)
	for _, tt := range []struct {
		apiVersion, kind string
		want             Resource
		collection, path string
	}{
		{"v1", "ConfigMap", Resource{"v1", "ConfigMap", "configmaps", true}, "/api/v1/namespaces/a%20b/configmaps", "/api/v1/namespaces/a%20b/configmaps/x:y"},
		{"v1", "Namespace", Resource{"v1", "Namespace", "namespaces", false}, "/api/v1/namespaces", "/api/v1/namespaces/x:y"},
		{"example.com/v1", "Widget", Resource{"example.com/v1", "Widget", "widgets", false}, "/apis/example.com/v1/widgets", "/apis/example.com/v1/widgets/x:y"},
	} {
		r, err := d.Find(ctx, tt.apiVersion, tt.kind)
		if err != nil || r != tt.want {
			t.Errorf("Find(%s, %s) = %+v, %v; want %+v", tt.apiVersion, tt.kind, r, err, tt.want)
			continue
		}
		if got := r.Collection("a b"); got != tt.collection {
			t.Errorf("%s: Collection = %q, want %q", tt.kind, got, tt.collection)
		}
		if got := r.Path("a b", "x:y"); got != tt.path {
			t.Errorf("%s: Path = %q, want %q", tt.kind, got, tt.path)
		}
	}
	if n := reads.Load(); n != 2 {
		t.Errorf("%d discovery reads, want 2 (one per group version)", n)
	}
	for _, bad := range [][2]string{{"v1", "Gadget"}, {"nope.example.com/v1", "Gadget"}, {"../v1", "Gadget"}, {"v1?x=y", "Gadget"}} {
		if _, err := d.Find(ctx, bad[0], bad[1]); !errors.Is(err, ErrNoKind) {
			t.Errorf("Find(%s, %s): %v, want ErrNoKind", bad[0], bad[1], err)
		}
	}
	d.Forget("v1")
	d.Find(ctx, "v1", "ConfigMap")
	if n := reads.Load(); n != 3 {
		t.Errorf("%d discovery reads after Forget, want 3", n)
	}

	cm, _ := d.Find(ctx, "v1", "ConfigMap")
	widget, _ := d.Find(ctx, "example.com/v1", "Widget")
	if err := c.ApplyAt(ctx, cm, Object{"metadata": map[string]any{"name": "x:y", "namespace": "a b"}}, "m&n"); err != nil {
		t.Error(err)
	}
	// A cluster-scoped kind leaves a namespace out of the path.
	if err := c.ApplyAt(ctx, widget, Object{"metadata": map[string]any{"name": "w", "namespace": "a"}}, "m&n"); err != nil {
		t.Error(err)
	}
	if applied != "/api/v1/namespaces/a%20b/configmaps/x:y /apis/example.com/v1/widgets/w " {
		t.Errorf("applied at %q", applied)
	}
	if err := c.ApplyAt(ctx, cm, Object{"metadata": map[string]any{}}, "m"); err == nil {
		t.Error("ApplyAt of an object without a name succeeded")
	}
}
