package newc

import (
	"bytes"
	"io"
	"os/exec"
	"strings"
	"testing"
)

func archive(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	w := NewWriter(&b)
	entries := []struct {
		h    Header
		data string
	}{
		{Header{Name: "dev", Mode: TypeDir | 0o755}, ""},
		{Header{Name: "dev/console", Mode: TypeChar | 0o600, Major: 5, Minor: 1}, ""},
		{Header{Name: "init", Mode: TypeFile | 0o755, MTime: 1700000000}, "#!odd-length"},
		{Header{Name: "empty", Mode: TypeFile | 0o644}, ""},
		{Header{Name: "bin", Mode: TypeSymlink | 0o777, Linkname: "usr/bin"}, ""},
	}
	for _, e := range entries {
		h := e.h
		h.Size = int64(len(e.data))
		if err := w.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", b.Len())
	}
	return b.Bytes()
}

func TestRoundTrip(t *testing.T) {
	r := NewReader(bytes.NewReader(archive(t)))
	var got []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(r)
		got = append(got, h.FileMode().String()+" "+h.Name+" "+h.Linkname+string(data))
		if h.Name == "dev/console" && (h.Major != 5 || h.Minor != 1) {
			t.Errorf("dev/console is %d,%d, want 5,1", h.Major, h.Minor)
		}
	}
	want := "drwxr-xr-x dev |Dcrw------- dev/console |-rwxr-xr-x init #!odd-length|-rw-r--r-- empty |Lrwxrwxrwx bin usr/bin"
	if strings.Join(got, "|") != want {
		t.Errorf("read back %q\nwant        %q", strings.Join(got, "|"), want)
	}
}

// The system's cpio (GNU cpio) reads what Writer writes, device node included.
func TestGNUCpioReadsIt(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio is not installed (make deps installs it)")
	}
	cmd := exec.Command("cpio", "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(archive(t))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	for _, want := range []string{"crw-------   1 root     root       5,   1", "dev/console", "-rwxr-xr-x   1 root     root           12", "bin -> usr/bin"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cpio -tv output lacks %q:\n%s", want, out)
		}
	}
}

func TestWriterChecksSizes(t *testing.T) {
	w := NewWriter(io.Discard)
	w.WriteHeader(&Header{Name: "f", Mode: TypeFile | 0o644, Size: 4})
	if _, err := w.Write([]byte("12345")); err == nil {
		t.Error("writing 5 bytes into a 4-byte entry succeeded")
	}
	if err := w.Close(); err == nil {
		t.Error("Close with 4 bytes missing succeeded")
	}
}
