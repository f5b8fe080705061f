package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// call runs the helper as the provisioner does, with its arguments.
func call(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// TestCreateAndDelete: a volume's life as the provisioner drives it, each
// step twice (it retries), and what its log shows.
func TestCreateAndDelete(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "pvc-1234_default_data-web-0")
	for i := 0; i < 2; i++ {
		code, out, errOut := call("-p", dir, "-s", "1073741824", "-m", "Filesystem", "-a", "create")
		if code != 0 || out != "created "+dir+"\n" || errOut != "" {
			t.Fatalf("create #%d: exit %d, stdout %q, stderr %q", i+1, code, out, errOut)
		}
		st, err := os.Stat(dir)
		if err != nil || !st.IsDir() || st.Mode().Perm() != 0o777 {
			t.Fatalf("after create #%d: %v %v; want a directory with mode 0777, so any user may write it", i+1, st, err)
		}
	}
	// What a workload leaves: a read-only tree and a link out of the volume.
	outside := filepath.Join(t.TempDir(), "keep")
	os.WriteFile(outside, []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(dir, "a/b"), 0o755)
	os.WriteFile(filepath.Join(dir, "a/b/file"), []byte("data"), 0o444)
	os.Chmod(filepath.Join(dir, "a/b"), 0o555)
	os.Symlink(outside, filepath.Join(dir, "link"))
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "a/b"), 0o755) })

	code, out, errOut := call("-p", dir, "-s", "1073741824", "-m", "Filesystem", "-a", "delete")
	if os.Geteuid() != 0 {
		// Only root may empty a directory without write permission; the
		// helper pod runs as root.
		t.Logf("not root: delete said %d %q %q", code, out, errOut)
		return
	}
	if code != 0 || out != "removed "+dir+"\n" {
		t.Fatalf("delete: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there after delete: %v", dir, err)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("delete followed the link out of the volume: %v", err)
	}
	if _, err := os.Stat(parent); err != nil {
		t.Errorf("delete removed the parent: %v", err)
	}
	code, out, _ = call("-p", dir, "-s", "0", "-m", "Filesystem", "-a", "delete")
	if code != 0 || out != dir+" is already gone\n" {
		t.Errorf("delete again: exit %d, stdout %q", code, out)
	}
}

func TestRefuses(t *testing.T) {
	parent := t.TempDir()
	file := filepath.Join(parent, "file")
	os.WriteFile(file, nil, 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no action", []string{"-p", "/x/y"}, 2, `-a "" is not create or delete`},
		{"unknown action", []string{"-p", "/x/y", "-a", "resize"}, 2, `-a "resize" is not create or delete`},
		{"relative", []string{"-p", "x/y", "-a", "create"}, 2, `-p "x/y" is not an absolute, clean directory below /`},
		{"unclean", []string{"-p", "/x/../y", "-a", "delete"}, 2, "not an absolute, clean directory"},
		{"root", []string{"-p", "/", "-a", "delete"}, 2, "not an absolute, clean directory"},
		{"no directory", []string{"-a", "create"}, 2, "no volume directory (-p)"},
		{"unknown flag", []string{"-p", "/x/y", "-a", "create", "-x", "1"}, 2, `unknown flag "-x"`},
		{"flag twice", []string{"-p", "/x/y", "-p", "/x/z", "-a", "create"}, 2, "-p given twice"},
		{"flag without value", []string{"-p", "/x/y", "-a"}, 2, "every flag takes a value"},
		{"no parent", []string{"-p", filepath.Join(parent, "missing/vol"), "-a", "create"}, 1, "is not a directory"},
		{"a file in the way", []string{"-p", file, "-a", "create"}, 1, "something other than a directory is there"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := call(tt.args...)
			if code != tt.code || out != "" || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, errOut, tt.code, tt.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	if code, out, _ := call("--version"); code != 0 || out != "local-path-helper (cairn) version dev\n" {
		t.Errorf("--version: %d %q", code, out)
	}
}
