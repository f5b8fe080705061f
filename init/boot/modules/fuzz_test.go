package modules

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzIndex feeds arbitrary modules.dep and modules.alias text to the
// index and looks a modalias up: nothing may panic.
func FuzzIndex(f *testing.F) {
	f.Add("kernel/a.ko: kernel/b.ko\nkernel/b.ko:\n", "alias pci:v*d* a\nalias acpi*:LNXPWRBN:* button\n", "pci:v00001AF4d00001000")
	f.Add(":\n::\n", "alias [ x\nalias \\ y\n", "[")
	f.Fuzz(func(t *testing.T, dep, alias, modalias string) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644)
		os.WriteFile(filepath.Join(dir, "modules.alias"), []byte(alias), 0o644)
		ix, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		ix.Lookup(modalias)
		l := NewLoader(ix)
		l.Sys = dir
		l.load = func(string, string, []byte) error { return nil }
		for name := range ix.paths {
			l.Load(name)
		}
	})
}
