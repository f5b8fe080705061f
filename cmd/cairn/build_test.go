package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuildCommandBadInput(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--board", "nope", "--kernel", tmp, "--output", tmp}, 1, `cairn build: board "nope" does not exist`},
		// The single-dash spelling of earlier releases still works.
		{[]string{"-board", "nope", "-kernel", tmp, "-o", tmp}, 1, `cairn build: board "nope" does not exist`},
		{[]string{"-b", "nope", "-k=" + tmp, "-o=" + tmp}, 1, `cairn build: board "nope" does not exist`},
		{[]string{"-kernel", "/nonexistent", "-o", tmp}, 1, "cairn build: kernel /nonexistent: no such file or directory; run 'make kernels'"},
		{[]string{"--kernel", tmp, "-o", filepath.Join(file, "out")}, 1, "cairn build: output directory " + filepath.Join(file, "out") + ": not a directory"},
		{[]string{"--board", "qemu-x86_64"}, 2, "cairn build: required flag(s) \"output\" not set\nRun 'cairn build --help' for usage.\n"},
		{[]string{"-o", tmp, "extra"}, 2, "cairn build: unknown command \"extra\" for \"cairn build\"\nRun 'cairn build --help' for usage.\n"},
		{[]string{"-o", tmp, "-squashfs-levl", "3"}, 2, "cairn build: unknown shorthand flag: 's' in -squashfs-levl\nRun 'cairn build --help' for usage.\n"},
	}
	for _, c := range cases {
		code, stdout, stderr := runCairn(t, "", append([]string{"build"}, c.args...)...)
		if code != c.code {
			t.Errorf("cairn build %q: exit status %d, want %d", c.args, code, c.code)
		}
		if stdout != "" {
			t.Errorf("cairn build %q wrote %q to stdout, want nothing", c.args, stdout)
		}
		if c.code == 1 && (!strings.HasPrefix(stderr, c.want) || strings.Count(stderr, "\n") != 1) {
			t.Errorf("cairn build %q printed %q, want one line starting %q", c.args, stderr, c.want)
		}
		if c.code == 2 && stderr != c.want {
			t.Errorf("cairn build %q printed %q, want %q", c.args, stderr, c.want)
		}
	}
}
