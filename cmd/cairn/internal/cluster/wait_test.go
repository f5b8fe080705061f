package cluster

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/join/jointest"
	"github.com/cairn-os/cairn/config/kube"
)

// TestFetchKubeconfig: the kubeconfig asked of one server names the URL
// it was asked as (the VIP's), and the server must hold that name.
func TestFetchKubeconfig(t *testing.T) {
	srv := jointest.New(t, "s3cret", "")
	tok, _ := join.ParseToken("s3cret")
	addr := srv.Listener.Addr().String()
	for _, server := range []string{srv.URL, "https://127.0.0.1:6443"} {
		kc, err := fetchKubeconfig(context.Background(), tok, addr, server)
		if err != nil {
			t.Fatalf("as %s: %v", server, err)
		}
		if !strings.Contains(string(kc), "      server: "+server+"\n") {
			t.Errorf("as %s: the kubeconfig names another server:\n%s", server, kc)
		}
	}
	// The server's certificate does not hold 10.0.0.10.
	_, err := fetchKubeconfig(context.Background(), tok, addr, "https://10.0.0.10:6443")
	if err == nil || !strings.Contains(err.Error(), "not 10.0.0.10") {
		t.Errorf("as an address the server's certificate lacks: %v", err)
	}
	other, _ := join.ParseToken("another")
	if _, err := fetchKubeconfig(context.Background(), other, addr, srv.URL); err == nil {
		t.Error("a server that cannot prove it knows the token was trusted")
	}
}

// TestOpenAdmin: the kubeconfig is written 0600 (it holds an admin's
// key), even over one of mode 0644 from an earlier run, and its
// credentials reach the servers.
func TestOpenAdmin(t *testing.T) {
	srv := jointest.New(t, "s3cret", "")
	tok, _ := join.ParseToken("s3cret")
	kc, err := fetchKubeconfig(context.Background(), tok, srv.Listener.Addr().String(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	st := validState()
	st.VIP = hostAddr(st.Network.Subnet, vipHost)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kubeconfig"), []byte("an earlier run's"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := openAdmin(dir, st, kc)
	if err != nil {
		t.Fatal(err)
	}
	if a.kubeconfig != filepath.Join(dir, "kubeconfig") {
		t.Errorf("the kubeconfig is %s; want it in the cluster's directory", a.kubeconfig)
	}
	if fi, err := os.Stat(a.kubeconfig); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the kubeconfig: %v; want mode 0600", err)
		if err == nil {
			t.Errorf("it has mode %v", fi.Mode().Perm())
		}
	}
	if len(a.servers) != 1 || a.servers["s1"].Base() != "https://192.168.200.11:6443" {
		t.Errorf("server clients %v; want s1's", a.servers)
	}
	if a.vip == nil || a.vip.Base() != srv.URL {
		t.Errorf("the VIP's client is not the kubeconfig's server %s", srv.URL)
	}
	if code, _, err := a.vip.Raw(context.Background(), http.MethodGet, "/readyz"); err != nil || code != http.StatusNotFound {
		t.Errorf("GET /readyz with the kubeconfig's credentials: %d, %v; want the fake's 404", code, err)
	}
}

func TestNodeConditions(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/nodes" {
			http.Error(w, `{"kind": "Status", "message": "the server could not find the requested resource"}`, http.StatusNotFound)
			return
		}
		io.WriteString(w, `{"items": [
			{"metadata": {"name": "dev-s1"}, "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True", "reason": "KubeletReady"}]}},
			{"metadata": {"name": "dev-a1"}, "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "cni plugin not initialized"}]}},
			{"metadata": {"name": "dev-a2"}, "status": {}}]}`)
	}))
	defer srv.Close()
	tlsCfg, _ := kube.Pinned(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	got, err := nodeConditions(context.Background(), kube.New(srv.URL, kube.Options{TLS: tlsCfg}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]nodeCondition{
		"dev-s1": {Status: "True", Reason: "KubeletReady"},
		"dev-a1": {Status: "False", Reason: "KubeletNotReady", Message: "cni plugin not initialized"},
		"dev-a2": {Status: "Unknown", Reason: "NoReadyCondition", Message: "the kubelet has not reported"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("nodeConditions = %v; want %v", got, want)
	}
	if _, err := nodeConditions(context.Background(), kube.New(srv.URL+"/nowhere", kube.Options{TLS: tlsCfg})); err == nil || !strings.Contains(err.Error(), "could not find") {
		t.Errorf("a 404: %v; want the Status's message", err)
	}
}

func TestFailedChecks(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"[+]ping ok\n[+]etcd ok\n[-]poststarthook/rbac/bootstrap-roles failed: reason withheld\n[-]etcd-readiness failed: reason withheld\nreadyz check failed\n",
			"failing: poststarthook/rbac/bootstrap-roles, etcd-readiness"},
		{"Unauthorized\nmore", "Unauthorized"},
		{"\n  " + strings.Repeat("x", 300), strings.Repeat("x", 200) + "…"},
	} {
		if got := failedChecks([]byte(tc.body)); got != tc.want {
			t.Errorf("failedChecks(%.40q) = %q; want %q", tc.body, got, tc.want)
		}
	}
}
