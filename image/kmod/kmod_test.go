package kmod

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// elfWithModinfo returns a minimal 64-bit little-endian ELF relocatable
// file whose .modinfo section holds the key=value strings.
func elfWithModinfo(kv ...string) []byte {
	modinfo := []byte(strings.Join(kv, "\x00") + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	modOff := uint64(ehsize)
	strOff := modOff + uint64(len(modinfo))
	shOff := strOff + uint64(len(shstr))
	var b bytes.Buffer
	w := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0})
	b.Write(make([]byte, 8))
	w(uint16(1))  // ET_REL
	w(uint16(62)) // x86-64
	w(uint32(1))  // version
	w(uint64(0))  // entry
	w(uint64(0))  // phoff
	w(shOff)      // shoff
	w(uint32(0))  // flags
	w(uint16(ehsize))
	w(uint16(0)) // phentsize
	w(uint16(0)) // phnum
	w(uint16(shentsize))
	w(uint16(3)) // shnum
	w(uint16(2)) // shstrndx
	b.Write(modinfo)
	b.Write(shstr)
	sh := func(name, typ uint32, off, size uint64) {
		w(name)
		w(typ)
		w(uint64(0)) // flags
		w(uint64(0)) // addr
		w(off)
		w(size)
		w(uint32(0)) // link
		w(uint32(0)) // info
		w(uint64(1)) // align
		w(uint64(0)) // entsize
	}
	sh(0, 0, 0, 0)
	sh(1, 1, modOff, uint64(len(modinfo))) // .modinfo, PROGBITS
	sh(10, 3, strOff, uint64(len(shstr)))  // .shstrtab, STRTAB
	return b.Bytes()
}

func TestReadModule(t *testing.T) {
	raw := elfWithModinfo("license=GPL", "depends=mbcache,jbd2,crc16", "softdep=pre: crc32c post: x-y",
		"alias=fs-ext4", "alias=ext3", "name=ext4", "vermagic=6.1.0")
	var xzb, zstb bytes.Buffer
	xw, _ := xz.NewWriter(&xzb)
	xw.Write(raw)
	xw.Close()
	zw, _ := zstd.NewWriter(&zstb)
	zw.Write(raw)
	zw.Close()
	want := &Module{Name: "ext4", Depends: []string{"mbcache", "jbd2", "crc16"}, SoftPre: []string{"crc32c"},
		SoftPost: []string{"x_y"}, Aliases: []string{"fs-ext4", "ext3"}}
	for _, c := range []struct {
		path string
		data []byte
	}{
		{"kernel/fs/ext4/ext4.ko", raw},
		{"kernel/fs/ext4/ext4.ko.xz", xzb.Bytes()},
		{"kernel/fs/ext4/ext4.ko.zst", zstb.Bytes()},
	} {
		t.Run(c.path, func(t *testing.T) {
			m, err := ReadModule(c.path, c.data)
			if err != nil {
				t.Fatal(err)
			}
			want.Path = c.path
			if !reflect.DeepEqual(m, want) {
				t.Errorf("ReadModule = %+v, want %+v", m, want)
			}
		})
	}
	t.Run("name from the file", func(t *testing.T) {
		m, err := ReadModule("kernel/drivers/x/virtio-net.ko", elfWithModinfo("depends="))
		if err != nil || m.Name != "virtio_net" || len(m.Depends) != 0 {
			t.Errorf("ReadModule = %+v, %v; want virtio_net without dependencies", m, err)
		}
	})
	t.Run("not ELF", func(t *testing.T) {
		_, err := ReadModule("kernel/a.ko", []byte("nope"))
		if err == nil || !strings.Contains(err.Error(), "kernel/a.ko") {
			t.Errorf("error = %v, want one naming kernel/a.ko", err)
		}
	})
}

// testSet is a small kernel: overlay alone, ext4 with a chain and a soft
// dependency through an alias, a built-in, and two providers of an alias.
func testSet() *Set {
	mods := []*Module{
		{Name: "overlay", Path: "kernel/fs/overlayfs/overlay.ko", Aliases: []string{"fs-overlay"}},
		{Name: "ext4", Path: "kernel/fs/ext4/ext4.ko", Depends: []string{"jbd2", "mbcache"}, SoftPre: []string{"crc32c"}},
		{Name: "jbd2", Path: "kernel/fs/jbd2/jbd2.ko", Depends: []string{"crc16"}},
		{Name: "mbcache", Path: "kernel/fs/mbcache.ko"},
		{Name: "crc16", Path: "kernel/lib/crc16.ko"},
		{Name: "crc32c_generic", Path: "kernel/crypto/crc32c_generic.ko", Aliases: []string{"crc32c", "crypto-crc32c"}},
		{Name: "crc32c_intel", Path: "kernel/arch/x86/crypto/crc32c-intel.ko", Aliases: []string{"crc32c"}},
		{Name: "nf_nat", Path: "kernel/net/netfilter/nf_nat.ko", Depends: []string{"nf_conntrack", "libcrc32c"}},
		{Name: "nf_conntrack", Path: "kernel/net/netfilter/nf_conntrack.ko", Depends: []string{"libcrc32c"}, SoftPost: []string{"not_here"}},
		{Name: "libcrc32c", Path: "kernel/lib/libcrc32c.ko"},
		{Name: "broken", Path: "kernel/broken.ko", Depends: []string{"missing_dep"}},
	}
	s := &Set{Version: "6.1.0-99-amd64", Modules: map[string]*Module{}, BuiltinFile: "kernel/drivers/tty/serial/8250.ko\nkernel/fs/unix.ko\n"}
	for _, m := range mods {
		s.Modules[m.Name] = m
	}
	s.Builtin = ParseBuiltin(s.BuiltinFile)
	return s
}

func names(mods []*Module) string {
	var n []string
	for _, m := range mods {
		n = append(n, m.Name)
	}
	return strings.Join(n, " ")
}

func TestClosure(t *testing.T) {
	s := testSet()
	cases := []struct {
		name   string
		wanted []string
		want   string
	}{
		{"a leaf", []string{"overlay"}, "overlay"},
		{"dependencies and soft dependencies through an alias", []string{"ext4"}, "crc16 crc32c_generic crc32c_intel ext4 jbd2 mbcache"},
		{"dash spelling", []string{"nf-nat"}, "libcrc32c nf_conntrack nf_nat"},
		{"an alias", []string{"fs-overlay"}, "overlay"},
		{"built-in needs nothing", []string{"8250", "unix"}, ""},
		{"shared dependencies once", []string{"nf_nat", "nf_conntrack", "libcrc32c"}, "libcrc32c nf_conntrack nf_nat"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.Closure(c.wanted)
			if err != nil {
				t.Fatal(err)
			}
			if names(got) != c.want {
				t.Errorf("Closure(%q) = %q, want %q", c.wanted, names(got), c.want)
			}
		})
	}
}

func TestClosureUnknownModule(t *testing.T) {
	s := testSet()
	for _, c := range []struct{ wanted, msg string }{
		{"no_such_mod", `module "no_such_mod": not in the kernel 6.1.0-99-amd64`},
		{"broken", `broken needs module "missing_dep": not in the kernel 6.1.0-99-amd64`},
	} {
		_, err := s.Closure([]string{"overlay", c.wanted})
		if err == nil {
			t.Fatalf("Closure(%q) succeeded", c.wanted)
		}
		if !errors.Is(err, ErrUnknown) || !strings.HasPrefix(err.Error(), c.msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Closure(%q) error = %q, want one line starting %q", c.wanted, err, c.msg)
		}
	}
}

func TestBuildIndex(t *testing.T) {
	s := testSet()
	mods, err := s.Closure([]string{"ext4", "nf_nat", "overlay"})
	if err != nil {
		t.Fatal(err)
	}
	idx := s.BuildIndex(mods)
	dep := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(idx.Dep), "\n") {
		k, v, _ := strings.Cut(line, ":")
		dep[k] = strings.TrimSpace(v)
	}
	if len(dep) != len(mods) {
		t.Errorf("modules.dep has %d lines, want %d:\n%s", len(dep), len(mods), idx.Dep)
	}
	for path, want := range map[string]string{
		// a module comes before what it depends on: load from the end
		"kernel/fs/ext4/ext4.ko":          "kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko kernel/lib/crc16.ko",
		"kernel/fs/jbd2/jbd2.ko":          "kernel/lib/crc16.ko",
		"kernel/net/netfilter/nf_nat.ko":  "kernel/net/netfilter/nf_conntrack.ko kernel/lib/libcrc32c.ko",
		"kernel/fs/overlayfs/overlay.ko":  "",
		"kernel/crypto/crc32c_generic.ko": "",
	} {
		if dep[path] != want {
			t.Errorf("modules.dep %s: %q, want %q", path, dep[path], want)
		}
	}
	for _, line := range []string{"alias fs-overlay overlay\n", "alias crypto-crc32c crc32c_generic\n", "alias crc32c crc32c_intel\n"} {
		if !strings.Contains(idx.Alias, line) {
			t.Errorf("modules.alias lacks %q:\n%s", line, idx.Alias)
		}
	}
	if want := "softdep ext4 pre: crc32c\nsoftdep nf_conntrack post: not_here\n"; idx.Softdep != want {
		t.Errorf("modules.softdep = %q, want %q", idx.Softdep, want)
	}
	if idx.Builtin != s.BuiltinFile {
		t.Errorf("modules.builtin = %q, want it carried over", idx.Builtin)
	}
}
