package kube

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestClientAnswers(t *testing.T) {
	var busy atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/nodes/n1":
			if r.Header.Get("Authorization") != "Bearer abc.def" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			io.WriteString(w, `{"metadata":{"name":"n1"}}`)
		case "/busy":
			if busy.Add(1) < 3 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			io.WriteString(w, `{}`)
		case "/huge":
			io.WriteString(w, `{"x":"`+strings.Repeat("a", 200)+`"}`)
		case "/apis/apps/v1/namespaces/kube-system/deployments/coredns":
			if r.Method != http.MethodPatch || r.Header.Get("Content-Type") != ApplyPatch || r.URL.Query().Get("fieldManager") != "cairn" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			io.WriteString(w, `{}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"kind":"Status","message":"nodes \"x\" not found"}`)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := New(srv.URL, Options{TLS: srv.Client().Transport.(*http.Transport).TLSClientConfig, Bearer: "abc.def", Retries: 2, MaxReply: 100})

	var n struct{ Metadata struct{ Name string } }
	if err := c.Get(ctx, "/api/v1/nodes/n1", &n); err != nil || n.Metadata.Name != "n1" {
		t.Errorf("Get: %v, %+v", err, n)
	}
	err := c.Get(ctx, "/api/v1/nodes/x", &n)
	if !IsStatus(err, http.StatusNotFound) || !strings.Contains(err.Error(), `GET /api/v1/nodes/x: 404 Not Found: nodes "x" not found`) {
		t.Errorf("a 404: %v", err)
	}
	if err := c.Get(ctx, "/busy", nil); err != nil {
		t.Errorf("a 429 twice, then 200, with 2 retries: %v", err)
	}
	if err := c.Get(ctx, "/huge", nil); err == nil || !strings.Contains(err.Error(), "more than 100 bytes") {
		t.Errorf("a reply over MaxReply: %v", err)
	}
	if err := c.WithMaxReply(1000).Get(ctx, "/huge", nil); err != nil {
		t.Errorf("WithMaxReply(1000): %v", err)
	}
	obj := Object{"kind": "Deployment", "metadata": map[string]any{"name": "coredns", "namespace": "kube-system"}}
	if err := c.Apply(ctx, obj, "cairn"); err != nil {
		t.Errorf("Apply: %v", err)
	}
	if err := c.Apply(ctx, Object{"kind": "Gadget", "metadata": map[string]any{"name": "g"}}, "cairn"); err == nil {
		t.Error("Apply of an unknown kind succeeded")
	}
}

func TestNodeReady(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/nodes/ready":
			io.WriteString(w, `{"status":{"conditions":[{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"True","reason":"KubeletReady","lastHeartbeatTime":"2026-12-06T10:00:00Z"}]}}`)
		case "/api/v1/nodes/new":
			io.WriteString(w, `{"status":{}}`)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	c := New(srv.URL, Options{TLS: srv.Client().Transport.(*http.Transport).TLSClientConfig})
	ctx := context.Background()
	if cond, err := c.NodeReady(ctx, "ready"); err != nil || cond == nil || cond.Status != "True" || cond.Reason != "KubeletReady" || cond.LastHeartbeatTime.IsZero() {
		t.Errorf("a Ready node: %+v, %v", cond, err)
	}
	if cond, err := c.NodeReady(ctx, "new"); err != nil || cond != nil {
		t.Errorf("a node with no conditions: %+v, %v", cond, err)
	}
	if _, err := c.NodeReady(ctx, "gone"); !IsStatus(err, http.StatusNotFound) {
		t.Errorf("no such node: %v", err)
	}
}
