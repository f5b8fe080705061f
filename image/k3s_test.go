package image

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A k3s binary for another architecture, or not a binary at all, is
// refused before it reaches an image.
func TestCheckK3s(t *testing.T) {
	exe, err := os.Executable() // an ELF for this machine's arch
	if err != nil {
		t.Fatal(err)
	}
	d := digests{t.TempDir()}
	in, err := checkK3s(exe, runtime.GOARCH, d)
	if err != nil || in.SHA256 == "" {
		t.Fatalf("checkK3s(this test binary, %s) = %v, %v", runtime.GOARCH, in, err)
	}
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	if _, err := checkK3s(exe, other, d); err == nil || !strings.Contains(err.Error(), "the board needs "+other) {
		t.Errorf("checkK3s for %s: err = %v", other, err)
	}
	text := filepath.Join(t.TempDir(), "k3s")
	os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755)
	if _, err := checkK3s(text, runtime.GOARCH, d); err == nil || !strings.Contains(err.Error(), "not an ELF executable") {
		t.Errorf("checkK3s(a script): err = %v", err)
	}
}
