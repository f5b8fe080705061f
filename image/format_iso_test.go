package image

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
)

// TestISO builds cairn.iso twice: the same bytes, an El Torito UEFI boot
// entry, and an EFI partition holding systemd-boot and a live entry.
func TestISO(t *testing.T) {
	if _, err := exec.LookPath("xorriso"); err != nil {
		t.Skip("xorriso is not installed (make deps)")
	}
	initBin, _, err := buildInit(context.Background(), "", "amd64", t.TempDir(), nil)
	must(t, err)
	o := Options{Board: "qemu-x86_64", Out: t.TempDir(), Init: initBin, Formats: []string{"iso"}, SourceDateEpoch: 1700000000}
	res := build(t, o)
	iso := filepath.Join(res.Dir, "cairn.iso")
	report, err := exec.Command("xorriso", "-indev", iso, "-report_el_torito", "plain").CombinedOutput()
	must(t, err)
	if !strings.Contains(string(report), "UEFI") {
		t.Errorf("xorriso finds no UEFI El Torito entry:\n%s", report)
	}
	d, err := diskfs.Open(iso, diskfs.WithOpenMode(diskfs.ReadOnly))
	must(t, err)
	defer d.Close()
	esp, err := d.GetFilesystem(2)
	must(t, err)
	f, err := esp.OpenFile("/loader/entries/cairn-live.conf", os.O_RDONLY)
	must(t, err)
	entry, err := io.ReadAll(f)
	must(t, err)
	if !strings.Contains(string(entry), "cairn.system=live") {
		t.Errorf("live entry %q does not boot cairn.system=live", entry)
	}
	if _, err := esp.OpenFile("/EFI/BOOT/BOOTX64.EFI", os.O_RDONLY); err != nil {
		t.Errorf("the EFI partition has no BOOTX64.EFI: %v", err)
	}
	o.Out = t.TempDir()
	again := build(t, o)
	if a, b := res.Info.Artifacts[0], again.Info.Artifacts[0]; a != b {
		t.Errorf("two builds of the same inputs differ: %+v and %+v", a, b)
	}
}
