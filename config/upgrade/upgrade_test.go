package upgrade

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func goodBundle() Bundle {
	sum := strings.Repeat("ab", 32)
	return Bundle{Board: "qemu-x86_64", Arch: "amd64", Version: "v1.2.0-3-gabc", Epoch: 1700000000,
		Cmdline: "console=ttyS0 cairn.system=disk",
		Files:   []File{{SystemFile, sum, 100}, {KernelFile, sum, 10}, {InitrdFile, sum, 10}}}
}

func TestBundleCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(b *Bundle)
		want   string
	}{
		{"good", func(*Bundle) {}, ""},
		{"a slot in the command line", func(b *Bundle) { b.Cmdline += " cairn.slot=b" }, "names a slot"},
		{"a line break", func(b *Bundle) { b.Cmdline += "\ninit=/bin/sh" }, "line break"},
		{"a path as board", func(b *Bundle) { b.Board = "../x" }, "not a board name"},
		{"an unknown file", func(b *Bundle) { b.Files[0].Name = "../../etc/passwd" }, "is not one of"},
		{"a missing file", func(b *Bundle) { b.Files = b.Files[1:] }, "has no system.sqfs"},
		{"a short sha256", func(b *Bundle) { b.Files[1].SHA256 = "abc" }, "not 64 lower-case hex"},
		{"an empty file", func(b *Bundle) { b.Files[2].Size = 0 }, "size 0"},
		{"an odd arch", func(b *Bundle) { b.Arch = "riscv64" }, "arch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := goodBundle()
			tc.change(&b)
			err := b.Check()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestFileVerify(t *testing.T) {
	p := filepath.Join(t.TempDir(), "system.img")
	os.WriteFile(p, []byte("hello"), 0o600)
	good := File{Name: SystemFile, Size: 5, SHA256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}
	if err := good.Verify(p); err != nil {
		t.Errorf("the file itself: %v", err)
	}
	for _, f := range []File{{Name: SystemFile, Size: 4, SHA256: good.SHA256}, {Name: SystemFile, Size: 5, SHA256: strings.Repeat("0", 64)}} {
		if err := f.Verify(p); err == nil || !strings.Contains(err.Error(), "is not the file the upgrade names") {
			t.Errorf("%+v: %v", f, err)
		}
	}
}
