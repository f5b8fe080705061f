package deb

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// tarOf returns a tar archive of the files (name → content), in order.
func tarOf(t *testing.T, files [][2]string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		if strings.HasSuffix(f[0], "/") {
			tw.WriteHeader(&tar.Header{Name: f[0], Typeflag: tar.TypeDir, Mode: 0o755})
			continue
		}
		tw.WriteHeader(&tar.Header{Name: f[0], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f[1]))})
		tw.Write([]byte(f[1]))
	}
	tw.Close()
	return b.Bytes()
}

func compress(t *testing.T, kind string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	var w io.WriteCloser
	var err error
	switch kind {
	case "":
		return data
	case ".gz":
		w = gzip.NewWriter(&b)
	case ".xz":
		w, err = xz.NewWriter(&b)
	case ".zst":
		w, err = zstd.NewWriter(&b)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// arOf returns an ar archive of the members (name → content).
func arOf(members [][2]string) []byte {
	var b bytes.Buffer
	b.WriteString("!<arch>\n")
	for _, m := range members {
		fmt.Fprintf(&b, "%-16s%-12s%-6s%-6s%-8s%-10d`\n", m[0]+"/", "0", "0", "0", "100644", len(m[1]))
		b.WriteString(m[1])
		if len(m[1])%2 == 1 {
			b.WriteString("\n")
		}
	}
	return b.Bytes()
}

const control = "Package: linux-image-6.1.0-99-amd64\nVersion: 6.1.999-1\nArchitecture: amd64\nDepends: kmod,\n linux-base (>= 4.3~)\nDescription: Linux 6.1 for 64-bit PCs\n more text\n\nPackage: not-read\n"

func writeDeb(t *testing.T, comp string, data [][2]string) string {
	t.Helper()
	ctl := compress(t, ".xz", tarOf(t, [][2]string{{"./", ""}, {"./control", control}, {"./md5sums", "x"}}))
	dat := compress(t, comp, tarOf(t, data))
	p := filepath.Join(t.TempDir(), "p.deb")
	if err := os.WriteFile(p, arOf([][2]string{{"debian-binary", "2.0\n"}, {"control.tar.xz", string(ctl)}, {"data.tar" + comp, string(dat)}}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadsControlAndData(t *testing.T) {
	files := [][2]string{{"./", ""}, {"./boot/", ""}, {"./boot/vmlinuz-6.1.0-99-amd64", "kernel"}, {"./lib/modules/6.1.0-99-amd64/kernel/fs/x.ko", "odd"}}
	for _, comp := range []string{".xz", ".zst", ".gz", ""} {
		t.Run("data.tar"+comp, func(t *testing.T) {
			p, err := Open(writeDeb(t, comp, files))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if got := p.Control["Package"]; got != "linux-image-6.1.0-99-amd64" {
				t.Errorf("Package = %q", got)
			}
			if got := p.Control["Description"]; got != "Linux 6.1 for 64-bit PCs\nmore text\n" {
				t.Errorf("Description = %q", got)
			}
			if got := p.Control["Depends"]; got != "kmod,\nlinux-base (>= 4.3~)\n" {
				t.Errorf("Depends = %q", got)
			}
			if len(p.Control) != 5 {
				t.Errorf("Control = %q, want the five fields of the first paragraph", p.Control)
			}
			var got []string
			err = p.Walk(func(h *tar.Header, r io.Reader) error {
				b, _ := io.ReadAll(r)
				got = append(got, h.Name+"="+string(b))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			want := "./= ./boot/= ./boot/vmlinuz-6.1.0-99-amd64=kernel ./lib/modules/6.1.0-99-amd64/kernel/fs/x.ko=odd"
			if strings.Join(got, " ") != want {
				t.Errorf("walk = %q, want %q", strings.Join(got, " "), want)
			}
		})
	}
}

func TestWalkStops(t *testing.T) {
	p, err := Open(writeDeb(t, ".gz", [][2]string{{"./a", "1"}, {"./b", "2"}}))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = p.Walk(func(h *tar.Header, r io.Reader) error { n++; return ErrStop })
	if err != nil || n != 1 {
		t.Errorf("Walk with ErrStop: %d calls, err %v; want 1 call, nil", n, err)
	}
	boom := fmt.Errorf("boom")
	if err := p.Walk(func(*tar.Header, io.Reader) error { return boom }); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Walk error = %v, want it to carry boom", err)
	}
}

func TestRejectsWhatIsNotADeb(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]byte{
		"empty":     {},
		"text":      []byte("hello, world\n"),
		"no-data":   arOf([][2]string{{"debian-binary", "2.0\n"}, {"control.tar", string(tarOf(t, [][2]string{{"./control", control}}))}}),
		"not-first": arOf([][2]string{{"control.tar", "x"}, {"debian-binary", "2.0\n"}}),
		"bad-size":  []byte("!<arch>\ndebian-binary/  0           0     0     100644  99999     `\n"),
		// A reader that trusted this size would read this header forever.
		"negative-size": []byte("!<arch>\ndebian-binary/  0           0     0     100644  -60       `\n"),
		"no-control":    arOf([][2]string{{"debian-binary", "2.0\n"}, {"control.tar", string(tarOf(t, [][2]string{{"./md5sums", "x"}}))}, {"data.tar", string(tarOf(t, nil))}}),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name+".deb")
			os.WriteFile(p, data, 0o644)
			_, err := Open(p)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), p) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line naming %s", err, p)
			}
		})
	}
}
