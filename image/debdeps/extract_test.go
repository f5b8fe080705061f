package debdeps

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// writeDeb writes a .deb (uncompressed members) whose data archive holds
// entries, and returns its path.
func writeDeb(t *testing.T, entries []*tar.Header) string {
	t.Helper()
	tarOf := func(hs []*tar.Header, data map[string]string) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, h := range hs {
			body := data[h.Name]
			h.Size = int64(len(body))
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			tw.Write([]byte(body))
		}
		tw.Close()
		return b.Bytes()
	}
	ctl := tarOf([]*tar.Header{{Name: "./control", Typeflag: tar.TypeReg, Mode: 0o644}},
		map[string]string{"./control": "Package: modes\nVersion: 1\nArchitecture: amd64\n"})
	dat := tarOf(entries, nil)
	var b bytes.Buffer
	b.WriteString("!<arch>\n")
	for _, m := range [][2]string{{"debian-binary", "2.0\n"}, {"control.tar", string(ctl)}, {"data.tar", string(dat)}} {
		fmt.Fprintf(&b, "%-16s%-12s%-6s%-6s%-8s%-10d`\n", m[0]+"/", "0", "0", "0", "100644", len(m[1]))
		b.WriteString(m[1])
		if len(m[1])%2 == 1 {
			b.WriteString("\n")
		}
	}
	p := filepath.Join(t.TempDir(), "modes_1_amd64.deb")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExtractKeepsSpecialBits: setuid, setgid and sticky bits in a .deb
// reach the tree (a tar header's Mode holds them as Unix writes them,
// 04000, not as os.FileMode does).
func TestExtractKeepsSpecialBits(t *testing.T) {
	p := writeDeb(t, []*tar.Header{
		{Name: "./usr/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./usr/bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./usr/bin/su", Typeflag: tar.TypeReg, Mode: 0o4755},
		{Name: "./usr/bin/wall", Typeflag: tar.TypeReg, Mode: 0o2755},
		{Name: "./usr/bin/plain", Typeflag: tar.TypeReg, Mode: 0o755},
		{Name: "./var/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./var/mail/", Typeflag: tar.TypeDir, Mode: 0o2775},
		{Name: "./var/tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
		{Name: "./var/ro/", Typeflag: tar.TypeDir, Mode: 0o555},
	})
	dest := t.TempDir()
	if _, err := Extract([]string{p}, dest, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]fs.FileMode{
		"usr/bin/su":    0o755 | fs.ModeSetuid,
		"usr/bin/wall":  0o755 | fs.ModeSetgid,
		"usr/bin/plain": 0o755,
		"var/mail":      fs.ModeDir | 0o775 | fs.ModeSetgid,
		"var/tmp":       fs.ModeDir | 0o777 | fs.ModeSticky,
		"var/ro":        fs.ModeDir | 0o755, // the builder may write into it
	} {
		st, err := os.Stat(filepath.Join(dest, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode(); got != want {
			t.Errorf("%s: mode %v, want %v", name, got, want)
		}
	}
}
