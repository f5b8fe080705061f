package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/config/join"
)

// TestTokenGenerate: a new token each time, strong enough for cairn
// validate; -o writes it to a new file of mode 0600, over a readable one.
func TestTokenGenerate(t *testing.T) {
	code, a, stderr := runCairn(t, "", "token", "generate")
	_, b, _ := runCairn(t, "", "token", "generate")
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if code != 0 || stderr != "" || a == b || join.Strength(a) < join.MinStrength {
		t.Errorf("cairn token generate: exit %d, stderr %q, tokens %q and %q; want two different strong tokens", code, stderr, a, b)
	}
	out := filepath.Join(t.TempDir(), "token")
	os.WriteFile(out, []byte("old"), 0o644)
	if code, stdout, stderr := runCairn(t, "", "token", "generate", "-o", out); code != 0 || stdout != "" || stderr != "" {
		t.Fatalf("cairn token generate -o: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	fi, err := os.Stat(out)
	data, _ := os.ReadFile(out)
	if err != nil || fi.Mode().Perm() != 0o600 || join.Strength(strings.TrimSpace(string(data))) < join.MinStrength {
		t.Errorf("the -o file: %v, mode %v; want a strong token, mode 0600", err, fi.Mode().Perm())
	}
}

// TestTokenOldUse: what `cairn token --kubeconfig` did is gone, and it says
// what to do instead.
func TestTokenOldUse(t *testing.T) {
	code, _, stderr := runCairn(t, "", "token", "--kubeconfig", "kc")
	if code != 2 || !strings.Contains(stderr, "no longer reads the token from the cluster") || !strings.Contains(stderr, "cairn token pin") {
		t.Errorf("cairn token --kubeconfig: exit %d, %q; want 2 and what replaced it", code, stderr)
	}
	code, _, stderr = runCairn(t, "", "token", "pin", "--token", "x")
	if code != 2 || !strings.Contains(stderr, "--server is required") {
		t.Errorf("cairn token pin without --server: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCairn(t, "", "kubeconfig", "--token", "x", "--server", "https://127.0.0.1:1", "--expiry", "1000h")
	if code != 2 || !strings.Contains(stderr, "--expiry 1000h0m0s: give 10m0s to 720h0m0s") {
		t.Errorf("cairn kubeconfig --expiry 1000h: exit %d, %q", code, stderr)
	}
}
