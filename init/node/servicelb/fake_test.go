package servicelb

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
	"time"

	"github.com/cairn-os/cairn/config/kube"
)

// fakeAPI is an apiserver that keeps Services, Nodes, EndpointSlices and
// Leases in memory: lists in pages, watches, the status of a Service
// patched at its resourceVersion, Events posted, Leases deleted at theirs.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	rv       int
	objs     map[string]map[string]map[string]any // collection → namespace/name → object
	watchers map[string][]chan watchEvent
	// history is every change, for watches that start from a version.
	history []watchEvent
	events  []map[string]any
	// log is every write, "METHOD PATH".
	log []string
}

type watchEvent struct {
	col string
	rv  int
	typ string
	obj map[string]any
}

// The collections, as the controller lists them.
const (
	colServices  = "/api/v1/services"
	colNodes     = "/api/v1/nodes"
	colEndpoints = "/apis/discovery.k8s.io/v1/endpointslices"
	colLeases    = leasesPath
)

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, objs: map[string]map[string]map[string]any{}, watchers: map[string][]chan watchEvent{}}
	for _, c := range []string{colServices, colNodes, colEndpoints, colLeases} {
		f.objs[c] = map[string]map[string]any{}
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) client() *kube.Client { return kube.New(f.srv.URL, kube.Options{}) }

// toMap is obj as JSON objects.
func toMap(obj any) map[string]any {
	data, _ := json.Marshal(obj)
	var m map[string]any
	json.Unmarshal(data, &m)
	return m
}

func keyOf(obj map[string]any) string {
	md, _ := obj["metadata"].(map[string]any)
	ns, _ := md["namespace"].(string)
	name, _ := md["name"].(string)
	return ns + "/" + name
}

// put stores obj (a service, a node, …) in a collection as someone's
// write, and tells the watchers.
func (f *fakeAPI) put(col string, obj any) {
	m := toMap(obj)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.store(col, m)
}

func (f *fakeAPI) store(col string, m map[string]any) {
	m = toMap(m) // a copy: the history keeps each version
	f.rv++
	md := m["metadata"].(map[string]any)
	md["resourceVersion"] = strconv.Itoa(f.rv)
	typ := "ADDED"
	if _, ok := f.objs[col][keyOf(m)]; ok {
		typ = "MODIFIED"
	}
	f.objs[col][keyOf(m)] = m
	f.notify(col, typ, m)
}

func (f *fakeAPI) notify(col, typ string, m map[string]any) {
	ev := watchEvent{col, f.rv, typ, m}
	f.history = append(f.history, ev)
	for _, ch := range f.watchers[col] {
		select {
		case ch <- ev:
		default:
			f.t.Errorf("a watcher of %s is not reading", col)
		}
	}
}

// remove deletes the object key of a collection.
func (f *fakeAPI) remove(col, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.objs[col][key]
	if m == nil {
		return
	}
	delete(f.objs[col], key)
	f.rv++
	f.notify(col, "DELETED", m)
}

// status is the ingress IPs of the Service key's status.
func (f *fakeAPI) status(key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s service
	data, _ := json.Marshal(f.objs[colServices][key])
	json.Unmarshal(data, &s)
	return addrList(s.addresses())
}

// eventLines are the Events posted, "NAME Type Reason: message".
func (f *fakeAPI) eventLines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.events {
		obj := e["involvedObject"].(map[string]any)
		out = append(out, fmt.Sprintf("%s %s %s: %s", obj["name"], e["type"], e["reason"], e["message"]))
	}
	return out
}

func (f *fakeAPI) writes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if r.Method != http.MethodGet {
		f.mu.Lock()
		f.log = append(f.log, r.Method+" "+p)
		f.mu.Unlock()
	}
	switch {
	case r.Method == http.MethodGet && f.objs[p] != nil && r.URL.Query().Get("watch") == "1":
		f.watch(w, r, p)
	case r.Method == http.MethodGet && f.objs[p] != nil:
		f.list(w, r, p)
	case r.Method == http.MethodPatch && strings.HasSuffix(p, "/status"):
		f.patchStatus(w, r, p)
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/events"):
		var ev map[string]any
		json.NewDecoder(r.Body).Decode(&ev)
		f.mu.Lock()
		f.events = append(f.events, ev)
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "{}")
	case r.Method == http.MethodDelete && strings.HasPrefix(p, colLeases+"/"):
		var opts struct {
			Preconditions struct{ ResourceVersion string } `json:"preconditions"`
		}
		json.NewDecoder(r.Body).Decode(&opts)
		key := Namespace + "/" + strings.TrimPrefix(p, colLeases+"/")
		f.mu.Lock()
		l := f.objs[colLeases][key]
		f.mu.Unlock()
		if l == nil {
			http.Error(w, `{"kind":"Status","message":"not found"}`, http.StatusNotFound)
			return
		}
		if rv := l["metadata"].(map[string]any)["resourceVersion"]; rv != opts.Preconditions.ResourceVersion {
			http.Error(w, `{"kind":"Status","message":"precondition failed"}`, http.StatusConflict)
			return
		}
		f.remove(colLeases, key)
		io.WriteString(w, "{}")
	default:
		http.Error(w, `{"kind":"Status","message":"the fake serves no `+r.Method+` `+p+`"}`, http.StatusNotFound)
	}
}

// list answers a page of two objects at a time, sorted.
func (f *fakeAPI) list(w http.ResponseWriter, r *http.Request, col string) {
	f.mu.Lock()
	var keys []string
	for k := range f.objs[col] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	from, _ := strconv.Atoi(r.URL.Query().Get("continue"))
	var items []map[string]any
	next := ""
	for i := from; i < len(keys); i++ {
		if len(items) == 2 {
			next = strconv.Itoa(i)
			break
		}
		items = append(items, f.objs[col][keys[i]])
	}
	rv := strconv.Itoa(f.rv)
	f.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"metadata": map[string]any{"resourceVersion": rv, "continue": next}, "items": items})
}

// watch streams the collection's changes after the version asked for
// until the request ends.
func (f *fakeAPI) watch(w http.ResponseWriter, r *http.Request, col string) {
	from, _ := strconv.Atoi(r.URL.Query().Get("resourceVersion"))
	f.mu.Lock()
	ch := make(chan watchEvent, len(f.history)+100)
	for _, ev := range f.history {
		if ev.col == col && ev.rv > from {
			ch <- ev
		}
	}
	f.watchers[col] = append(f.watchers[col], ch)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.watchers[col] = slices.DeleteFunc(f.watchers[col], func(c chan watchEvent) bool { return c == ch })
		f.mu.Unlock()
	}()
	w.(http.Flusher).Flush()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-timeout:
			return // the apiserver ends a watch; the reflector asks again
		case ev := <-ch:
			json.NewEncoder(w).Encode(map[string]any{"type": ev.typ, "object": ev.obj})
			w.(http.Flusher).Flush()
		}
	}
}

// patchStatus applies a merge patch of status.loadBalancer, at the
// Service's resourceVersion.
func (f *fakeAPI) patchStatus(w http.ResponseWriter, r *http.Request, p string) {
	parts := strings.Split(strings.TrimPrefix(p, "/api/v1/namespaces/"), "/") // NS services NAME status
	if len(parts) != 4 || parts[1] != "services" {
		http.Error(w, "bad path", http.StatusNotFound)
		return
	}
	key := parts[0] + "/" + parts[2]
	var patch struct {
		Metadata struct{ ResourceVersion string } `json:"metadata"`
		Status   map[string]any                   `json:"status"`
	}
	if err := json.NewDecoder(r.Body).Decode(&patch); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	obj := f.objs[colServices][key]
	if obj == nil {
		http.Error(w, `{"kind":"Status","message":"not found"}`, http.StatusNotFound)
		return
	}
	if rv := obj["metadata"].(map[string]any)["resourceVersion"]; patch.Metadata.ResourceVersion != "" && rv != patch.Metadata.ResourceVersion {
		http.Error(w, `{"kind":"Status","message":"the object has been modified"}`, http.StatusConflict)
		return
	}
	lb, _ := patch.Status["loadBalancer"].(map[string]any)
	st := map[string]any{"loadBalancer": map[string]any{}}
	if ing := lb["ingress"]; ing != nil {
		st["loadBalancer"] = map[string]any{"ingress": ing}
	}
	obj["status"] = st
	f.store(colServices, obj)
	json.NewEncoder(w).Encode(obj)
}
