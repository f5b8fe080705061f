package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestManifestBoard(t *testing.T) {
	tests := []struct {
		name, manifest, want string
	}{
		{"board as a string", `{"board": "qemu-arm64"}`, "qemu-arm64"},
		{"no board", `{"artifacts": []}`, "qemu-x86_64"},
		{"not JSON", `board: x`, "qemu-x86_64"},
		{"no manifest", "", "qemu-x86_64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.manifest != "" {
				if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(tt.manifest), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := manifestBoard(dir); got != tt.want {
				t.Errorf("manifestBoard = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestConfigSourceServesTheFileAsItIsNow checks that a local -config file is
// served to the guest and that edits show on the next request, so a user can
// fix a config while the node retries.
func TestConfigSourceServesTheFileAsItIsNow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(path, []byte("#cloud-config\nhostname: a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	url, closeFn, err := configSource(path)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	if !strings.HasPrefix(url, "http://10.0.2.2:") || !strings.HasSuffix(url, "/node.yaml") {
		t.Fatalf("url = %q, want http://10.0.2.2:PORT/node.yaml", url)
	}
	// The guest's 10.0.2.2 is this machine's loopback.
	local := strings.Replace(url, "10.0.2.2", "127.0.0.1", 1)
	get := func() string {
		resp, err := http.Get(local)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get(); got != "#cloud-config\nhostname: a\n" {
		t.Errorf("first GET = %q", got)
	}
	if err := os.WriteFile(path, []byte("#cloud-config\nhostname: b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != "#cloud-config\nhostname: b\n" {
		t.Errorf("GET after the edit = %q", got)
	}

	if u, _, err := configSource("http://192.0.2.1/c"); err != nil || u != "http://192.0.2.1/c" {
		t.Errorf("a URL is passed through: got %q, %v", u, err)
	}
	if _, _, err := configSource(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "not a URL") {
		t.Errorf("missing file: err = %v", err)
	}
}
