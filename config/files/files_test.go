package files

import (
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
