package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestWatch: a watch hands over each event in order, bookmarks too, asks
// from the version given with bookmarks and the timeout in seconds, ends
// cleanly when the apiserver ends it, says 410 when the version is too
// old, and refuses an event larger than the reply bound.
func TestWatch(t *testing.T) {
	var query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.RawQuery
		switch r.URL.Query().Get("resourceVersion") {
		case "5":
			io.WriteString(w, `{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"6"}}}`+"\n")
			w.(http.Flusher).Flush()
			io.WriteString(w, `{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}`+"\n")
			io.WriteString(w, `{"type":"DELETED","object":{"metadata":{"name":"a","resourceVersion":"10"}}}`+"\n")
		case "1":
			io.WriteString(w, `{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old resource version: 1 (4)"}}`+"\n")
		case "big":
			fmt.Fprintf(w, `{"type":"ADDED","object":{"x":"%s"}}`+"\n", strings.Repeat("a", 5000))
		default:
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"kind":"Status","message":"services is forbidden"}`)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := New(srv.URL, Options{MaxReply: 1000})
	var got []string
	err := c.Watch(ctx, "/api/v1/services", "5", 90*time.Second, func(ev WatchEvent) error {
		got = append(got, ev.Type+" "+string(ev.Object))
		return nil
	})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	want := []string{
		`ADDED {"metadata":{"name":"a","resourceVersion":"6"}}`,
		`BOOKMARK {"metadata":{"resourceVersion":"9"}}`,
		`DELETED {"metadata":{"name":"a","resourceVersion":"10"}}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if query != "allowWatchBookmarks=true&resourceVersion=5&timeoutSeconds=90&watch=1" {
		t.Errorf("query %q", query)
	}
	if err := c.Watch(ctx, "/api/v1/services", "1", time.Minute, func(WatchEvent) error { return nil }); !IsStatus(err, http.StatusGone) {
		t.Errorf("a version too old: %v, want a 410", err)
	}
	if err := c.Watch(ctx, "/api/v1/services", "big", time.Minute, func(WatchEvent) error { return nil }); err == nil || !strings.Contains(err.Error(), "more than 1000 bytes") {
		t.Errorf("an event over the bound: %v", err)
	}
	if err := c.Watch(ctx, "/api/v1/services", "x", time.Minute, func(WatchEvent) error { return nil }); !IsStatus(err, http.StatusForbidden) || !strings.Contains(err.Error(), "services is forbidden") {
		t.Errorf("a refused watch: %v", err)
	}
	stop := fmt.Errorf("enough")
	if err := c.Watch(ctx, "/api/v1/services?labelSelector=a%3Db", "5", time.Minute, func(WatchEvent) error { return stop }); err != stop {
		t.Errorf("fn's error: %v", err)
	}
	if !strings.HasPrefix(query, "labelSelector=a%3Db&") {
		t.Errorf("a path with a query: %q", query)
	}
}

// TestListWatch: the collection is listed, then watched from the list's
// version and from each event's (a bookmark's too, which is not handed
// over); a watch the apiserver ends is asked again from where it ended;
// 410 lists again without a word; any other error is handed over before
// the next list.
func TestListWatch(t *testing.T) {
	defer func(f, m time.Duration) { listWatchRetryFirst, listWatchRetryMax = f, m }(listWatchRetryFirst, listWatchRetryMax)
	listWatchRetryFirst, listWatchRetryMax = time.Millisecond, 2*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var asked []string
	lists := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("watch") == "" {
			lists++
			asked = append(asked, "list")
			fmt.Fprintf(w, `{"metadata":{"resourceVersion":"%d"},"items":[{"metadata":{"name":"l%d"}}]}`, 5*lists, lists)
			return
		}
		asked = append(asked, "watch "+q.Get("resourceVersion"))
		switch q.Get("resourceVersion") {
		case "5":
			io.WriteString(w, `{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"6"}}}`+"\n")
			io.WriteString(w, `{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"8"}}}`+"\n")
		case "8":
			io.WriteString(w, `{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old resource version: 8 (9)"}}`+"\n")
		case "10":
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"kind":"Status","message":"etcd is down"}`)
		default:
			cancel()
		}
	}))
	defer srv.Close()
	var got []string
	New(srv.URL, Options{}).ListWatch(ctx, "/api/v1/pods", time.Minute,
		func(items []json.RawMessage) error {
			got = append(got, fmt.Sprintf("list %s", items))
			return nil
		},
		func(ev WatchEvent) error {
			got = append(got, ev.Type+" "+string(ev.Object))
			return nil
		},
		func(err error) { got = append(got, "failed: "+err.Error()) })
	want := []string{
		`list [{"metadata":{"name":"l1"}}]`,
		`ADDED {"metadata":{"name":"a","resourceVersion":"6"}}`,
		`list [{"metadata":{"name":"l2"}}]`,
		`failed: GET /api/v1/pods: 500 Internal Server Error: etcd is down`,
		`list [{"metadata":{"name":"l3"}}]`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("handed over:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if w := "list,watch 5,watch 8,list,watch 10,list,watch 15"; strings.Join(asked, ",") != w {
		t.Errorf("asked %s, want %s", strings.Join(asked, ","), w)
	}
}
