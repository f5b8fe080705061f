package files

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("hello"), 0o600)
	if b, err := Read(p, 5); err != nil || string(b) != "hello" {
		t.Errorf("Read at the limit: %q, %v", b, err)
	}
	if _, err := Read(p, 4); err == nil || !strings.Contains(err.Error(), p+" is larger than 4 bytes") {
		t.Errorf("Read over the limit: %v", err)
	}
	sum, n, err := SHA256(p, -1)
	if err != nil || n != 5 || sum != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Errorf("SHA256 = %s %d %v", sum, n, err)
	}
	if _, n, _ := SHA256(p, 2); n != 3 {
		t.Errorf("SHA256 with limit 2 read %d bytes, want 3 (limit+1: enough to tell it is over)", n)
	}
}

// A secret written over a file of mode 0644 ends in a file of mode 0600
// with the new contents, and never in the old file: whoever held the old
// one open (while it was 0644) reads what it held, not the secret.
func TestWriteSecret(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(p, []byte("old, public"), 0o644); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := WriteSecret(p, []byte("s3cret")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("after WriteSecret: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	if got, _ := os.ReadFile(p); string(got) != "s3cret" {
		t.Errorf("the file holds %q, want the secret", got)
	}
	if got, _ := io.ReadAll(held); string(got) != "old, public" {
		t.Errorf("the file held open since it was 0644 reads %q: the secret was written into it", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("the directory holds %d files, want the secret's only", len(ents))
	}
	if err := WriteSecret(filepath.Join(dir, "no", "such", "dir"), []byte("x")); err == nil {
		t.Error("writing into a directory that does not exist succeeded")
	}
}
