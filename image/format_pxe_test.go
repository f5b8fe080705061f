package image

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPXE builds pxe/: the kernel and the live initramfs as the kernel
// format writes them, and a boot.ipxe that boots them with the live
// command line and passes cairn-config on.
func TestPXE(t *testing.T) {
	initBin, _, err := buildInit(context.Background(), "", "amd64", t.TempDir(), nil)
	must(t, err)
	res := build(t, Options{Board: "qemu-x86_64", Out: t.TempDir(), Init: initBin, Formats: []string{"kernel", "pxe"}})
	for _, name := range []string{"vmlinuz", "initramfs.img"} {
		a, err := os.ReadFile(filepath.Join(res.Dir, name))
		must(t, err)
		b, err := os.ReadFile(filepath.Join(res.Dir, "pxe", name))
		must(t, err)
		if !bytes.Equal(a, b) {
			t.Errorf("pxe/%s differs from %s", name, name)
		}
	}
	script, err := os.ReadFile(filepath.Join(res.Dir, "pxe", "boot.ipxe"))
	must(t, err)
	for _, want := range []string{"#!ipxe\n", "kernel vmlinuz initrd=initramfs.img " + res.CmdlineText + " ${cairn-cfg}\n", "set cairn-cfg cairn.config=${cairn-config}", "initrd initramfs.img\n", "boot\n"} {
		if !strings.Contains(string(script), want) {
			t.Errorf("boot.ipxe lacks %q:\n%s", want, script)
		}
	}
}
