package upgrader

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
)

// watchAPI serves the Upgrades' collection: lists (counted) and watches
// streaming what the test sends.
type watchAPI struct {
	mu     sync.Mutex
	lists  int
	events chan string
}

func (f *watchAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != upgrade.Path("") {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	if q.Get("watch") == "1" {
		w.Header().Set("Content-Type", "application/json")
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case typ := <-f.events:
				fmt.Fprintf(w, `{"type":%q,"object":{"metadata":{"name":"u1","resourceVersion":"7"}}}`+"\n", typ)
				w.(http.Flusher).Flush()
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	json.NewEncoder(w).Encode(map[string]any{"metadata": map[string]any{"resourceVersion": "5"}, "items": []any{}})
}

// TestWatchTellsOnChanges: the node lists the Upgrades once and watches
// them; it is told after the list and at each change, never by a bookmark.
func TestWatchTellsOnChanges(t *testing.T) {
	f := &watchAPI{events: make(chan string)}
	srv := httptest.NewServer(f)
	defer srv.Close()
	u := &upgrader{n: Node{Name: "a1", API: kube.New(srv.URL, kube.Options{})}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() { defer close(done); u.watch(ctx, changed) }()

	told := func(what string, want bool) {
		t.Helper()
		select {
		case <-changed:
			if !want {
				t.Errorf("%s: told; want not", what)
			}
		case <-time.After(300 * time.Millisecond):
			if want {
				t.Errorf("%s: not told", what)
			}
		}
	}
	told("the start", true)
	for _, ev := range []struct {
		typ  string
		want bool
	}{{"ADDED", true}, {"BOOKMARK", false}, {"MODIFIED", true}, {"DELETED", true}} {
		f.events <- ev.typ
		told(ev.typ, ev.want)
	}
	cancel()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lists != 1 {
		t.Errorf("%d lists; want 1, then only the watch", f.lists)
	}
}

// TestWatchListsAgain: a watch that fails (here it never answers within
// the client's deadline) is followed by a list, and the node is told: it
// reads what it may have missed.
func TestWatchListsAgain(t *testing.T) {
	defer func(d time.Duration) { watchFor = d }(watchFor)
	watchFor = time.Second
	f := &watchAPI{events: make(chan string)}
	srv := httptest.NewServer(f)
	defer srv.Close()
	u := &upgrader{n: Node{Name: "a1", API: kube.New(srv.URL, kube.Options{Timeout: 100 * time.Millisecond})}}
	ctx, cancel := context.WithCancel(context.Background())
	changed := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() { defer close(done); u.watch(ctx, changed) }()
	deadline := time.After(10 * time.Second)
	for seen := 0; seen < 2; seen++ {
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("told %d times in 10 s; want 2 (two lists)", seen)
		}
	}
	cancel()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lists < 2 {
		t.Errorf("%d lists; want at least 2", f.lists)
	}
}
