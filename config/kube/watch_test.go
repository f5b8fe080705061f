package kube

import (
	"context"
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
