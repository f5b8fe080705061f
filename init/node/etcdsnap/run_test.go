package etcdsnap

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	snaprec "github.com/cairn-os/cairn/config/etcdsnap"
	"github.com/cairn-os/cairn/config/kube"
)

// fakeAPI serves the one ConfigMap the snapshots are recorded in (get,
// create, merge patch, a watch that ends soon with nothing) and the
// servers' Nodes, all Ready.
type fakeAPI struct {
	mu    sync.Mutex
	cm    map[string]any // nil: absent
	rv    int
	nodes []string
	srv   *httptest.Server
}

func newFakeAPI(t *testing.T, nodes ...string) *fakeAPI {
	f := &fakeAPI{nodes: nodes}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) client() *kube.Client { return kube.New(f.srv.URL, kube.Options{}) }

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.URL.Path == "/api/v1/nodes":
		var items []any
		for _, n := range f.nodes {
			items = append(items, map[string]any{"metadata": map[string]any{"name": n},
				"status": map[string]any{"conditions": []any{map[string]any{"type": "Ready", "status": "True"}}}})
		}
		reply(200, map[string]any{"items": items})
	case r.URL.Query().Get("watch") == "1":
		f.mu.Unlock()
		time.Sleep(200 * time.Millisecond)
		f.mu.Lock()
		w.WriteHeader(200)
	case r.Method == http.MethodPost:
		if f.cm != nil {
			reply(409, map[string]any{"kind": "Status", "message": "exists"})
			return
		}
		var cm map[string]any
		json.NewDecoder(r.Body).Decode(&cm)
		f.cm = cm
		f.bump()
		reply(201, f.cm)
	case r.URL.Path != snaprec.Path:
		reply(404, map[string]any{"kind": "Status", "message": "not found"})
	case f.cm == nil:
		reply(404, map[string]any{"kind": "Status", "message": "not found"})
	case r.Method == http.MethodGet:
		reply(200, f.cm)
	case r.Method == http.MethodPatch:
		var p map[string]map[string]any
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &p)
		merge := func(dst map[string]any, src map[string]any) {
			for k, v := range src {
				if v == nil {
					delete(dst, k)
				} else {
					dst[k] = v
				}
			}
		}
		if d, ok := p["data"]; ok {
			data, _ := f.cm["data"].(map[string]any)
			if data == nil {
				data = map[string]any{}
				f.cm["data"] = data
			}
			merge(data, d)
		}
		if m, ok := p["metadata"]; ok {
			meta := f.cm["metadata"].(map[string]any)
			ann, _ := meta["annotations"].(map[string]any)
			if ann == nil {
				ann = map[string]any{}
				meta["annotations"] = ann
			}
			merge(ann, m["annotations"].(map[string]any))
		}
		f.bump()
		reply(200, f.cm)
	default:
		reply(405, map[string]any{"kind": "Status", "message": "no"})
	}
}

func (f *fakeAPI) bump() {
	f.rv++
	f.cm["metadata"].(map[string]any)["resourceVersion"] = strconv.Itoa(f.rv)
	if f.cm["data"] == nil {
		f.cm["data"] = map[string]any{}
	}
}

// `cairn etcd-snapshot save` against a server running the loop: the
// server takes one at once, says so in one console line, records it, and
// the CLI's side gets where it landed; list shows it. With etcd down,
// the answer is the failure, in one console line too.
func TestRunSaveList(t *testing.T) {
	e := newTestEtcd(t)
	e.start()
	api := newFakeAPI(t, "s1")
	var console lines
	dir := filepath.Join(t.TempDir(), "etcd-snapshots")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := Options{Node: "s1", Etcd: e.config(), API: api.client(), Dir: dir, Name: "etcd-snapshot", Retention: 3, Printf: console.printf}
	done := make(chan struct{})
	go func() { Run(ctx, o); close(done) }()
	defer func() { cancel(); <-done }()

	// The server registers itself in the record.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rec, err := snaprec.Read(ctx, api.client())
		if err == nil && len(rec.Servers) == 1 && rec.Servers[0].Node == "s1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not register: %+v %v", rec, err)
		}
	}
	answers, err := snaprec.Save(ctx, api.client(), 30*time.Second, func(a snaprec.Answer) {})
	if err != nil || len(answers) != 1 || answers[0].Snapshot == nil {
		t.Fatalf("save: %+v %v; want one snapshot", answers, err)
	}
	snap := answers[0].Snapshot
	if st, err := os.Stat(snap.Path); err != nil || st.Size() != snap.Size || filepath.Dir(snap.Path) != dir || snap.SHA256 != fileSHA(t, snap.Path) {
		t.Errorf("the snapshot answered: %+v; its file: %v", snap, err)
	}
	rec, err := snaprec.Read(ctx, api.client())
	if err != nil || len(rec.Snapshots) != 1 || rec.Snapshots[0].Name != snap.Name {
		t.Errorf("the record lists %+v (%v); want %s", rec, err, snap.Name)
	}
	said := strings.Join(console.all(), "\n")
	for _, re := range []string{
		`^etcd-snapshot: no snapshots on a schedule \(etcd-disable-snapshots\); ` + "`cairn etcd-snapshot save`" + ` takes one into ` + regexp.QuoteMeta(dir) + `$`,
		`^etcd-snapshot: ` + regexp.QuoteMeta(snap.Name) + ` saved in ` + regexp.QuoteMeta(dir) + `: [\d.]+ KiB in [\d.]+s$`,
	} {
		if !regexp.MustCompile("(?m)" + re).MatchString(said) {
			t.Errorf("the console says:\n%s\nwant a line matching %s", said, re)
		}
	}

	// etcd down: the answer is why, and so is one console line.
	defer func(d time.Duration) { statusTimeout = d }(statusTimeout)
	statusTimeout = 2 * time.Second
	e.stop()
	answers, err = snaprec.Save(ctx, api.client(), time.Minute, func(a snaprec.Answer) {})
	if err != nil || len(answers) != 1 || answers[0].Snapshot != nil || !strings.Contains(answers[0].Error, "etcd at "+e.client+" does not answer") {
		t.Errorf("save with etcd down: %+v %v; want the failure", answers, err)
	}
	if n := strings.Count(strings.Join(console.all(), "\n"), "etcd-snapshot: a snapshot of this server's etcd member failed: etcd at "+e.client+" does not answer"); n != 1 {
		t.Errorf("the console says %d times that the snapshot failed; want once:\n%s", n, strings.Join(console.all(), "\n"))
	}
}

// A server that never answers: Save says which, within its bound.
func TestSaveNoAnswer(t *testing.T) {
	api := newFakeAPI(t, "s1", "s2")
	ctx := context.Background()
	if _, err := snaprec.Save(ctx, api.client(), time.Second, func(snaprec.Answer) {}); err != snaprec.ErrNoServers {
		t.Errorf("save with no server registered: %v; want %v", err, snaprec.ErrNoServers)
	}
	snaprec.Ensure(ctx, api.client())
	snaprec.Patch(ctx, api.client(), map[string]any{snaprec.ServerKey("s2"): snaprec.Entry(snaprec.Server{Node: "s2"}),
		snaprec.ServerKey("gone"): snaprec.Entry(snaprec.Server{Node: "gone"})})
	answers, err := snaprec.Save(ctx, api.client(), 2*time.Second, func(snaprec.Answer) {})
	if err != nil || len(answers) != 1 || answers[0].Node != "s2" || !strings.HasPrefix(answers[0].Error, "no answer within 2s") {
		t.Errorf("save with s2 silent: %+v %v; want s2 named (and not the server whose Node is gone)", answers, err)
	}
}
