package upgrader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
)

func upgradeWith(nodes []string, phases map[string]string, maxUnavailable int) *upgrade.Upgrade {
	up := &upgrade.Upgrade{Spec: upgrade.Spec{Nodes: nodes, MaxUnavailable: maxUnavailable,
		Images: []upgrade.Image{{Bundle: upgrade.Bundle{Version: "v2"}}}}}
	for n, ph := range phases {
		up.Status.Node(n).Phase = ph
	}
	return up
}

func TestMyTurn(t *testing.T) {
	nodes := []string{"s1", "s2", "a1"}
	for _, tc := range []struct {
		name   string
		phases map[string]string
		max    int
		node   string
		want   bool
	}{
		{"first goes first", nil, 1, "s1", true},
		{"second waits for the first", nil, 1, "s2", false},
		{"second waits while the first runs", map[string]string{"s1": upgrade.Writing}, 1, "s2", false},
		{"second goes after the first", map[string]string{"s1": upgrade.Succeeded}, 1, "s2", true},
		{"two at once when allowed", map[string]string{"s1": upgrade.Verifying}, 2, "s2", true},
		{"never past the limit", map[string]string{"s1": upgrade.Verifying, "s2": upgrade.Draining}, 2, "a1", false},
		{"a failure stops the rollout", map[string]string{"s1": upgrade.Failed}, 1, "s2", false},
		{"not listed", nil, 1, "x9", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := myTurn(upgradeWith(nodes, tc.phases, tc.max), tc.node); got != tc.want {
				t.Errorf("myTurn(%s) = %v, want %v", tc.node, got, tc.want)
			}
		})
	}
}

func TestComplete(t *testing.T) {
	up := upgradeWith([]string{"s1", "a1"}, map[string]string{"s1": upgrade.Succeeded}, 1)
	up.Status.Phase = upgrade.Running
	complete(up)
	if up.Status.Phase != upgrade.Running {
		t.Fatalf("phase %s with a1 pending", up.Status.Phase)
	}
	up.Status.Node("a1").Phase = upgrade.Succeeded
	complete(up)
	if up.Status.Phase != upgrade.Succeeded || up.Status.Message != "2 nodes run cairn v2" {
		t.Fatalf("got %s %q", up.Status.Phase, up.Status.Message)
	}
}

func blob(data string) upgrade.File {
	sum := sha256.Sum256([]byte(data))
	return upgrade.File{Name: upgrade.SystemFile, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}
}

func TestBlobStorePut(t *testing.T) {
	s := newBlobStore(t.TempDir())
	f := blob("a new system")
	if err := s.put(f, strings.NewReader("a new systeM")); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("wrong bytes: %v", err)
	}
	if err := s.put(f, strings.NewReader("a new system and more")); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("too many bytes: %v", err)
	}
	if s.has(f) {
		t.Fatal("a refused file was kept")
	}
	if err := s.put(f, strings.NewReader("a new system")); err != nil || !s.has(f) {
		t.Fatalf("the right bytes: %v", err)
	}
	s.prune(map[string]bool{})
	if s.has(f) {
		t.Fatal("prune kept a file no upgrade wants")
	}
}

// fakeAPI is an apiserver holding one Upgrade and a node's pods, enough
// for the upgrader's requests.
type fakeAPI struct {
	mu        sync.Mutex
	up        upgrade.Upgrade
	rv        int
	pods      []string
	blockedBy map[string]int // pod → evictions refused before one is allowed
	evicted   []string
	cordoned  *bool
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := r.URL.Path
	switch {
	case r.Method == http.MethodGet && path == upgrade.Path(f.up.Metadata.Name):
		f.up.Metadata.ResourceVersion = string(rune('0' + f.rv))
		json.NewEncoder(w).Encode(f.up)
	case r.Method == http.MethodPut && path == upgrade.Path(f.up.Metadata.Name)+"/status":
		var in upgrade.Upgrade
		json.NewDecoder(r.Body).Decode(&in)
		if in.Metadata.ResourceVersion != string(rune('0'+f.rv)) {
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"message":"conflict"}`)
			return
		}
		f.rv++
		f.up.Status = in.Status
		io.WriteString(w, "{}")
	case r.Method == http.MethodGet && path == "/api/v1/pods":
		var items []map[string]any
		for _, p := range f.pods {
			items = append(items, map[string]any{"metadata": map[string]any{"name": p, "namespace": "default", "uid": p}})
		}
		json.NewEncoder(w).Encode(map[string]any{"items": items})
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/eviction"):
		name := strings.Split(path, "/")[6]
		if f.blockedBy[name] > 0 {
			f.blockedBy[name]--
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"message":"Cannot evict pod as it would violate the pod's disruption budget."}`)
			return
		}
		f.evicted = append(f.evicted, name)
		for i, p := range f.pods {
			if p == name {
				f.pods = append(f.pods[:i], f.pods[i+1:]...)
				break
			}
		}
		io.WriteString(w, "{}")
	case r.Method == http.MethodPatch && strings.HasPrefix(path, "/api/v1/nodes/"):
		var p struct{ Spec struct{ Unschedulable *bool } }
		body, _ := io.ReadAll(r.Body)
		json.NewDecoder(bytes.NewReader(body)).Decode(&p)
		f.cordoned = p.Spec.Unschedulable
		io.WriteString(w, "{}")
	default:
		http.NotFound(w, r)
	}
}

func TestDrainWaitsForTheBudget(t *testing.T) {
	f := &fakeAPI{pods: []string{"web-1", "db-0"}, blockedBy: map[string]int{"web-1": 2}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	defer func(d time.Duration) { drainRetry = d }(drainRetry)
	drainRetry = 10 * time.Millisecond
	api := kube.New(srv.URL, kube.Options{})
	var lines []string
	printf := func(format string, args ...any) { lines = append(lines, format) }
	if err := drain(context.Background(), api, "a1", time.Minute, printf); err != nil {
		t.Fatal(err)
	}
	if f.cordoned == nil || !*f.cordoned {
		t.Error("the node was not cordoned")
	}
	if len(f.evicted) != 2 || f.evicted[1] != "web-1" {
		t.Errorf("evicted %v, want db-0 then web-1 (after its budget allowed it)", f.evicted)
	}

	f.pods, f.blockedBy = []string{"web-1"}, map[string]int{"web-1": 1 << 30}
	err := drain(context.Background(), api, "a1", 50*time.Millisecond, printf)
	if err == nil || !strings.Contains(err.Error(), "default/web-1") || !strings.Contains(err.Error(), "disruption budget") {
		t.Errorf("a budget that never allows: %v", err)
	}
}

func TestUpdateRetriesOnConflict(t *testing.T) {
	f := &fakeAPI{up: upgrade.Upgrade{Metadata: upgrade.Metadata{Name: "u1"}, Spec: upgrade.Spec{Nodes: []string{"s1"}}}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	u := &upgrader{n: Node{Name: "s1", API: kube.New(srv.URL, kube.Options{})}}
	calls := 0
	err := u.update(context.Background(), "u1", func(up *upgrade.Upgrade) {
		calls++
		if calls == 1 {
			f.rv++ // another node wrote in between
		}
		up.Status.Node("s1").Phase = upgrade.Draining
	})
	if err != nil || calls != 2 || f.up.Status.Node("s1").Phase != upgrade.Draining {
		t.Fatalf("err %v, calls %d, status %+v", err, calls, f.up.Status)
	}
}
