package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-os/cairn/config/join"
)

// cairn run keeps one token per output directory, 0600, and hands the
// same one to every boot of it.
func TestEnsureToken(t *testing.T) {
	dir := t.TempDir()
	path, tok, err := ensureToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, "token") {
		t.Errorf("token path %s, want DIR/token", path)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	if _, err := join.ParseToken(tok); err != nil {
		t.Errorf("the generated token does not parse: %v", err)
	}
	_, again, err := ensureToken(dir)
	if err != nil || again != tok {
		t.Errorf("a second run made another token (%v): the node's cluster would not open", err)
	}
}
