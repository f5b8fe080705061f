package image

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// FuzzInspect feeds Inspect initramfs-like files: concatenated archives,
// compressed or not.
func FuzzInspect(f *testing.F) {
	t := tree{}
	t.bytes("init", 0o755, []byte("#!x"))
	t.symlink("sbin/init", "../init")
	var plain, z bytes.Buffer
	t.writeCPIO(&plain, 0)
	zw, _ := zstd.NewWriter(&z)
	zw.Write(plain.Bytes())
	zw.Close()
	f.Add(plain.Bytes())
	f.Add(append(append(z.Bytes(), 0, 0, 0, 0), plain.Bytes()...))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "initramfs.img")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		Inspect(p)
	})
}
