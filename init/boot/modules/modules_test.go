package modules

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// The kernel itself cannot be asked to load these (it would load them into
// the host running the tests), so the tests record what would be inserted.

func write(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func compress(t *testing.T, kind string, data []byte) []byte {
	var b bytes.Buffer
	switch kind {
	case "xz":
		w, _ := xz.NewWriter(&b)
		w.Write(data)
		w.Close()
	case "zst":
		w, _ := zstd.NewWriter(&b)
		w.Write(data)
		w.Close()
	case "gz":
		w := gzip.NewWriter(&b)
		w.Write(data)
		w.Close()
	default:
		return data
	}
	return b.Bytes()
}

// fixture is a module tree: virtio_net (xz) needs net_failover (zst) which
// needs failover (gz); virtio_pci is plain; e1000 has a PCI alias.
func fixture(t *testing.T) (dir, sys string) {
	dir = filepath.Join(t.TempDir(), "lib/modules/6.1.0")
	files := map[string]string{
		"kernel/drivers/net/virtio_net.ko.xz":     "xz",
		"kernel/drivers/net/net_failover.ko.zst":  "zst",
		"kernel/net/core/failover.ko.gz":          "gz",
		"kernel/drivers/virtio/virtio_pci.ko":     "",
		"kernel/drivers/net/ethernet/e1000.ko":    "",
		"kernel/drivers/virtio/virtio-console.ko": "",
	}
	for f, kind := range files {
		write(t, filepath.Join(dir, f), compress(t, kind, []byte("ELF:"+Name(f))))
	}
	write(t, filepath.Join(dir, "modules.dep"), []byte(`kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.zst kernel/net/core/failover.ko.gz
kernel/drivers/net/net_failover.ko.zst: kernel/net/core/failover.ko.gz
kernel/net/core/failover.ko.gz:
kernel/drivers/virtio/virtio_pci.ko:
kernel/drivers/net/ethernet/e1000.ko:
kernel/drivers/virtio/virtio-console.ko:
`))
	write(t, filepath.Join(dir, "modules.alias"), []byte(`# Aliases extracted from modules themselves.
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias virtio:d00000003v* virtio_console
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
alias acpi*:LNXPWRBN:* button
`))
	write(t, filepath.Join(dir, "modules.builtin"), []byte("kernel/fs/ext4/ext4.ko\n"))
	sys = filepath.Join(t.TempDir(), "sys")
	device(t, sys, "pci", "0000:00:02.0", "devices/pci0000:00/0000:00:02.0", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00")
	device(t, sys, "pci", "0000:00:03.0", "devices/pci0000:00/0000:00:03.0", "pci:v00001AF4d00001003sv00001AF4sd00000003bc07sc80i00")
	os.MkdirAll(filepath.Join(sys, "module"), 0o755)
	return dir, sys
}

// device adds a device to a sysfs tree the way the kernel lays it out: the
// device directory with its modalias, linked from its bus.
func device(t *testing.T, sys, bus, name, dir, modalias string) {
	t.Helper()
	write(t, filepath.Join(sys, dir, "modalias"), []byte(modalias+"\n"))
	link := filepath.Join(sys, "bus", bus, "devices", name)
	os.MkdirAll(filepath.Dir(link), 0o755)
	if err := os.Symlink(filepath.Join(sys, dir), link); err != nil {
		t.Fatal(err)
	}
}

// openFixture opens the index of fixture's module tree.
func openFixture(t *testing.T) (ix *Index, dir, sys string) {
	t.Helper()
	dir, sys = fixture(t)
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ix, dir, sys
}

// recorder loads into a fake kernel: it records the order, checks the
// image was decompressed, and makes the module appear in sysfs. Loading
// virtio_pci reveals the virtio devices behind it, as the kernel does.
func recorder(t *testing.T, l *Loader, sys string) *[]string {
	var order []string
	l.Sys = sys
	l.load = func(name, file string, image []byte) error {
		if string(image) != "ELF:"+name {
			t.Errorf("%s: inserted %q, want the decompressed image", file, image)
		}
		order = append(order, name)
		os.MkdirAll(filepath.Join(sys, "module", name), 0o755)
		if name == "virtio_pci" {
			device(t, sys, "virtio", "virtio0", "devices/pci0000:00/0000:00:02.0/virtio0", "virtio:d00000001v00001AF4")
			device(t, sys, "virtio", "virtio1", "devices/pci0000:00/0000:00:03.0/virtio1", "virtio:d00000003v00001AF4")
		}
		return nil
	}
	return &order
}

func TestLoadDependenciesFirst(t *testing.T) {
	ix, dir, sys := openFixture(t)
	l := NewLoader(ix)
	order := recorder(t, l, sys)
	for _, m := range []string{"virtio-net", "failover", "ext4"} {
		if _, err := l.Load(m); err != nil {
			t.Fatalf("Load(%s): %v", m, err)
		}
	}
	if want := []string{"failover", "net_failover", "virtio_net"}; !slices.Equal(*order, want) {
		t.Errorf("load order %v, want %v", *order, want)
	}
	if _, err := l.Load("nosuch"); err == nil || !strings.Contains(err.Error(), "nosuch: module not found in "+dir) {
		t.Errorf("Load(nosuch) = %v, want a not-found error naming the directory", err)
	}
}

func TestColdplug(t *testing.T) {
	ix, _, sys := openFixture(t)
	l := NewLoader(ix)
	order := recorder(t, l, sys)
	loaded, errs := l.Coldplug(5)
	if len(errs) > 0 {
		t.Errorf("errors: %v", errs)
	}
	want := []string{"virtio_pci", "virtio_net", "virtio_console"}
	if !slices.Equal(loaded, want) {
		t.Errorf("coldplug loaded %v, want %v", loaded, want)
	}
	if want := []string{"virtio_pci", "failover", "net_failover", "virtio_net", "virtio_console"}; !slices.Equal(*order, want) {
		t.Errorf("insert order %v, want %v", *order, want)
	}
}

func TestLookup(t *testing.T) {
	ix, _, _ := openFixture(t)
	for _, tc := range []struct {
		modalias string
		want     []string
	}{
		{"pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", []string{"e1000"}},
		{"pci:v00008086d000010D3sv00001AF4sd00001100bc02sc00i00", nil},
		{"acpi:LNXPWRBN:", []string{"button"}},
		{"virtio:d00000001v00001AF4", []string{"virtio_net"}},
		{"x", nil},
	} {
		got := ix.Lookup(tc.modalias)
		if len(got) == 0 {
			got = nil
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Lookup(%s) = %v, want %v", tc.modalias, got, tc.want)
		}
	}
}

func TestRequestByNameOrAlias(t *testing.T) {
	ix, _, _ := openFixture(t)
	for _, tc := range []struct {
		request string
		want    []string // modules resolved to
		loaded  []string // inserted, in order
		err     bool
	}{
		{request: "virtio-net", want: []string{"virtio_net"}, loaded: []string{"failover", "net_failover", "virtio_net"}},
		{request: "pci:v00008086d0000100Esv00008086sd00000001bc02sc00i00", want: []string{"e1000"}, loaded: []string{"e1000"}},
		{request: "ext4", want: []string{"ext4"}},
		{request: "fs-zfs", err: true},
	} {
		t.Run(tc.request, func(t *testing.T) {
			l := NewLoader(ix)
			order := recorder(t, l, t.TempDir())
			got, err := l.Request(tc.request)
			if (err != nil) != tc.err {
				t.Fatalf("Request(%q) error = %v, want error %v", tc.request, err, tc.err)
			}
			if !slices.Equal(got, tc.want) || !slices.Equal(*order, tc.loaded) {
				t.Errorf("Request(%q) = %v, inserted %v; want %v, inserted %v", tc.request, got, *order, tc.want, tc.loaded)
			}
		})
	}
}
