package deb

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"
)

func FuzzNewReader(f *testing.F) {
	f.Add(arOf([][2]string{{"debian-binary", "2.0\n"}, {"control.tar", "x"}, {"data.tar", "y"}}))
	f.Add([]byte("!<arch>\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := NewReader(bytes.NewReader(data), int64(len(data)), "fuzz.deb")
		if err != nil {
			return
		}
		p.Walk(func(h *tar.Header, r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		})
	})
}
