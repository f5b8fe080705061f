package newc

import (
	"bytes"
	"io"
	"testing"
)

func FuzzReader(f *testing.F) {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.WriteHeader(&Header{Name: "a", Mode: TypeFile | 0o644, Size: 3})
	w.Write([]byte("abc"))
	w.WriteHeader(&Header{Name: "l", Mode: TypeSymlink | 0o777, Linkname: "a"})
	w.Close()
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		for i := 0; i < 1000; i++ {
			if _, err := r.Next(); err != nil {
				return
			}
			io.Copy(io.Discard, r)
		}
	})
}
