package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// captureStderr runs f with os.Stderr going to a pipe and returns what it wrote.
func captureStderr(t *testing.T, f func() int) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	code := f()
	os.Stderr = old
	w.Close()
	return code, <-done
}

func TestBuildCommandBadInput(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-board", "nope", "-kernel", t.TempDir(), "-o", t.TempDir()}, `cairn build: board "nope" does not exist`},
		{[]string{"-kernel", "/nonexistent", "-o", t.TempDir()}, "cairn build: kernel /nonexistent: no such file or directory; run 'make kernels'"},
		{[]string{"-kernel", t.TempDir(), "-o", filepath.Join(file, "out")}, "cairn build: output directory " + filepath.Join(file, "out") + ": not a directory"},
	}
	for _, c := range cases {
		code, out := captureStderr(t, func() int { return buildCmd(c.args) })
		if code != 1 {
			t.Errorf("cairn build %q: exit status %d, want 1", c.args, code)
		}
		if !strings.HasPrefix(out, c.want) || strings.Count(out, "\n") != 1 {
			t.Errorf("cairn build %q printed %q, want one line starting %q", c.args, out, c.want)
		}
	}
	if code, _ := captureStderr(t, func() int { return buildCmd([]string{"-board", "qemu-x86_64"}) }); code != 2 {
		t.Errorf("cairn build without -o: exit status %d, want 2 (usage)", code)
	}
}
