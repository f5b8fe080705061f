package vip

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeAPIServer keeps one Lease the way kube-apiserver does: create once,
// replace only at the current resourceVersion.
func fakeAPIServer(t *testing.T) *httptest.Server {
	var mu sync.Mutex
	var stored map[string]any
	version := 0
	h := http.NewServeMux()
	h.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	write := func(w http.ResponseWriter, r *http.Request, code int) {
		var obj map[string]any
		if err := json.NewDecoder(r.Body).Decode(&obj); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		md := obj["metadata"].(map[string]any)
		if code == 200 && md["resourceVersion"] != stored["metadata"].(map[string]any)["resourceVersion"] {
			http.Error(w, `{"reason":"Conflict"}`, 409)
			return
		}
		version++
		md["resourceVersion"] = strconv.Itoa(version)
		stored = obj
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(obj)
	}
	h.HandleFunc("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method != http.MethodPost || stored != nil {
			http.Error(w, "exists", 409)
			return
		}
		write(w, r, 201)
	})
	h.HandleFunc("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/"+LeaseName, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case stored == nil:
			http.Error(w, "not found", 404)
		case r.Method == http.MethodGet:
			json.NewEncoder(w).Encode(stored)
		case r.Method == http.MethodPut:
			write(w, r, 200)
		}
	})
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// TestAPI: the Lease over REST: absent, created, renewed at its version,
// refused at an old one; the duration read back exactly.
func TestAPI(t *testing.T) {
	ctx := context.Background()
	a := NewAPI(fakeAPIServer(t).URL, nil)
	if err := a.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, LeaseName); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of no lease: %v, want ErrNotFound", err)
	}
	now := time.Now()
	r1, err := a.Create(ctx, LeaseName, Record{Holder: "s1_01", Duration: 1500 * time.Millisecond, Acquired: now, Renewed: now, Transitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Holder != "s1_01" || r1.Duration != 1500*time.Millisecond || r1.Version == "" || r1.Transitions != 1 || !r1.Renewed.Equal(now.Truncate(time.Microsecond)) {
		t.Errorf("created %+v", r1)
	}
	if _, err := a.Create(ctx, LeaseName, r1); !errors.Is(err, ErrConflict) {
		t.Errorf("a second Create: %v, want ErrConflict", err)
	}
	r2, err := a.Update(ctx, LeaseName, r1)
	if err != nil || r2.Version == r1.Version {
		t.Fatalf("renew: %+v %v", r2, err)
	}
	if _, err := a.Update(ctx, LeaseName, r1); !errors.Is(err, ErrConflict) {
		t.Errorf("an update at an old version: %v, want ErrConflict", err)
	}
	got, err := a.Get(ctx, LeaseName)
	if err != nil || got != r2 {
		t.Errorf("Get = %+v %v, want %+v", got, err, r2)
	}
}

// TestLeaseDuration: a stranger's lease without the annotation, or with an
// absurd one, is judged by its whole seconds.
func TestLeaseDuration(t *testing.T) {
	secs := int32(7)
	for _, ann := range []string{"", "1h", "-1s", "x"} {
		l := lease{Spec: leaseSpec{LeaseDurationSeconds: &secs}}
		l.Metadata.Annotations = map[string]string{durationAnnotation: ann}
		if d := fromLease(l).Duration; d != 7*time.Second {
			t.Errorf("annotation %q: duration %s, want 7s", ann, d)
		}
	}
}

// TestLeaseDurationClamped: a stranger's lease that claims more than
// maxLeaseDuration, in its whole seconds or both, makes the other servers
// wait maxLeaseDuration at most, not 68 years.
func TestLeaseDurationClamped(t *testing.T) {
	for _, tc := range []struct {
		secs int32
		ann  string
		want time.Duration
	}{
		{math.MaxInt32, "", maxLeaseDuration},
		{math.MaxInt32, "2147483647s", maxLeaseDuration},
		{math.MaxInt32, "1.5s", 1500 * time.Millisecond},
		{301, "", maxLeaseDuration},
		{300, "", 300 * time.Second},
	} {
		secs := tc.secs
		l := lease{Spec: leaseSpec{LeaseDurationSeconds: &secs}}
		l.Metadata.Annotations = map[string]string{durationAnnotation: tc.ann}
		if d := fromLease(l).Duration; d != tc.want {
			t.Errorf("leaseDurationSeconds %d, annotation %q: duration %s, want %s", tc.secs, tc.ann, d, tc.want)
		}
	}
}
