package kmod

import "testing"

func FuzzReadModule(f *testing.F) {
	f.Add(elfWithModinfo("depends=a,b", "softdep=pre: c", "alias=x", "name=m"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ReadModule("kernel/m.ko", data)
	})
}
